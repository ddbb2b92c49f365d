"""Segmentation of a corrected line stream into parcels, on synthetic belts built here."""

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import SegmentConfig
from edge.imaging.segment import Segmenter

N_PIXELS = 160
CONFIG = SegmentConfig(threshold=0.08, min_pixels=4, min_gap_mm=40, min_length_mm=60,
                       max_length_mm=1600, margin_mm=20, touch_jump_mm=25)
MARGIN, MAX_LENGTH = 20, 1600  # lines at 1 mm pitch


def belt(length: int, seed: int = 0) -> np.ndarray:
    """Empty belt [length, N_PIXELS]: air noise of 20,000 photons and two hot pixels."""
    att = np.random.default_rng(seed).normal(0, 0.007, (length, N_PIXELS)).astype(np.float32)
    att[:, [5, 77]] = 0.9  # fewer than min_pixels: never a parcel
    return att


def box(att, start, stop, top, bottom, yaw_deg=0.0, wall=4, fill=0.0):
    """A cardboard box seen from above: side walls edge-on (dense), faces light, optional
    contents ``fill``; yawed about its centre. Lines x, pixels y."""
    x, y = np.mgrid[0:att.shape[0], 0:att.shape[1]] + 0.5
    cx, cy = (start + stop) / 2, (top + bottom) / 2
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    u, v = np.abs((x - cx) * c + (y - cy) * s), np.abs(-(x - cx) * s + (y - cy) * c)
    half_l, half_w = (stop - start) / 2, (bottom - top) / 2
    inside = (u < half_l) & (v < half_w)
    inner = (u < half_l - wall) & (v < half_w - wall)
    att[inside & ~inner] += 0.6
    att[inner] += 0.03 + fill  # two faces of board, under the threshold when empty
    return att


def bag(att, start, stop, top, bottom):
    """A soft bag: a pillow whose fabric shows only near its rim, with light contents."""
    x, y = np.mgrid[0:att.shape[0], 0:att.shape[1]] + 0.5
    u = (x - (start + stop) / 2) / ((stop - start) / 2)
    v = (y - (top + bottom) / 2) / ((bottom - top) / 2)
    r4 = u ** 4 + v ** 4
    rim = np.where(r4 < 1, 0.03 / np.sqrt(np.clip(1 - r4, 0.01, 1)), 0)
    att += rim.astype(np.float32)
    att[(r4 < 0.5)] += 0.15
    return att


def run(att, blocks, config=CONFIG, pitch_mm=1.0, watch=None):
    """Feed ``att`` in blocks of the given sizes (cycled), then flush; lo = 1.3 hi."""
    seg = Segmenter(config, pitch_mm)
    t = np.arange(len(att)) / 500.0
    enc = np.arange(len(att), dtype=np.int64) * 4 + 1000
    sizes = blocks if isinstance(blocks, list) else [blocks]
    out, i, k = [], 0, 0
    while i < len(att):
        sl = slice(i, i + sizes[k % len(sizes)])
        out += seg.feed(att[sl], att[sl] * 1.3, t[sl], enc[sl])
        if watch is not None:
            watch(seg)
        i, k = sl.stop, k + 1
    return out + seg.flush()


def spans(segments):
    return [(s.start_line, s.stop_line) for s in segments]


def stream():
    """Four boxes and a bag on 2,600 lines; one starts right at a 64-line block border."""
    att = belt(2600)
    box(att, 100, 400, 20, 100, fill=0.2)
    box(att, 640, 720, 40, 70)  # short: 80 lines
    box(att, 1000, 1600, 30, 130, yaw_deg=4)  # spans pixels 9-151 yawed
    bag(att, 1856, 2100, 30, 130)  # 1856 = 29 * 64
    box(att, 2300, 2550, 60, 120, fill=0.1)
    return att


STREAM = stream()
TRUTH = [(100, 400), (640, 720), (998, 1602), (1856, 2100), (2300, 2550)]


@pytest.mark.parametrize("block", [1, 7, 64, 333, 2600])
def test_every_parcel_found_with_its_extent(block):
    segments = run(STREAM, block)
    assert len(segments) == len(TRUTH)
    for seg, (start, stop) in zip(segments, TRUTH, strict=True):
        assert abs(seg.start_line - (start - MARGIN)) <= 3, (seg.start_line, start)
        assert abs(seg.stop_line - (stop + MARGIN)) <= 3, (seg.stop_line, stop)
        # parcel layout [pixels, lines], the stream's own values, lo and hi together
        assert seg.hi.shape == seg.lo.shape == (N_PIXELS, seg.stop_line - seg.start_line)
        np.testing.assert_array_equal(seg.hi.T, STREAM[seg.start_line:seg.stop_line])
        np.testing.assert_allclose(seg.lo, seg.hi * 1.3, rtol=1e-6)
        assert seg.encoder[0] == 1000 + 4 * seg.start_line and np.all(np.diff(seg.encoder) == 4)
        assert seg.t[0] == pytest.approx(seg.start_line / 500.0)
        assert seg.t.shape == seg.encoder.shape == (seg.hi.shape[1],)


@cache
def whole_stream():
    return run(STREAM, len(STREAM))


@settings(max_examples=15, deadline=None)
@given(blocks=st.lists(st.integers(1, 300), min_size=1, max_size=6))
def test_block_sizes_do_not_change_the_result(blocks):
    """Parcels shorter than max_length are cut the same however the stream arrives."""
    expected = whole_stream()
    got = run(STREAM, blocks)
    assert spans(got) == spans(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.hi, b.hi)


def test_specks_noise_and_hot_pixels_make_no_parcel():
    att = belt(1500, seed=1)
    att[:, 78] = 2.0  # with the belt's two, three hot pixels, two of them neighbours
    box(att, 200, 230, 50, 90)  # a 30-line speck: shorter than min_length
    att[700:703, 40:120] = 1.0  # a 3-line flash
    assert run(att, 64) == []


def test_empty_box_with_only_its_walls_stays_whole():
    """Through the middle of an empty box only the two side walls attenuate (8 pixels); the
    parcel must not fall apart there."""
    att = box(belt(900), 100, 700, 30, 130, wall=4)
    segments = run(att, 64)
    assert spans(segments) == [(80, 720)]


@pytest.mark.parametrize(
    ("name", "draw"),
    [
        ("yawed box", lambda a: box(a, 200, 560, 40, 120, yaw_deg=15, fill=0.2)),
        ("bag", lambda a: bag(a, 200, 560, 20, 140)),
        # contents poking 30 px out of the box for 40 lines (a bump, not a step)
        ("bump", lambda a: _poke(box(a, 200, 560, 20, 100, fill=0.2), 330, 370, 100, 130)),
        # a dense item inside across the whole width for 40 lines: no neck, no step
        ("ridge", lambda a: _poke(box(a, 200, 560, 20, 100), 330, 370, 20, 100)),
    ],
)
def test_one_parcel_is_not_split(name, draw):
    segments = run(draw(belt(800, seed=2)), 64)
    assert len(segments) == 1, f"{name}: {spans(segments)}"


def _poke(att, start, stop, top, bottom):
    att[start:stop, top:bottom] += 0.5
    return att


# Two parcels that touch: how to draw them, and where segment 1 starts, the cut, where
# segment 2 stops (lines).
TOUCHING = {
    # butted square, different widths and positions
    "step": ([(box, 150, 450, 20, 100, 0, 0.2), (box, 450, 750, 50, 150, 0, 0.1)],
             (130, 450, 770)),
    # aligned on the guide rail side, different widths
    "rail": ([(box, 150, 450, 10, 70, 0, 0.2), (box, 450, 750, 10, 140, 0, 0.1)],
             (130, 450, 770)),
    # the same box twice, 20 lines apart (under min_gap): cut in the middle of the gap
    "gap": ([(box, 150, 440, 30, 120, 0, 0.2), (box, 460, 750, 30, 120, 0, 0.2)],
            (130, 450, 770)),
    # yawed +8 and -8 degrees, their corners meeting at line 445.6 (x extent 291 each)
    "yawed": ([(box, 160, 440, 30, 130, 8, 0.2), (box, 451, 731, 30, 130, -8, 0.2)],
              (134, 446, 757)),
    # two bags end to end: the rounded ends make a neck
    "bags": ([(bag, 150, 450, 20, 140), (bag, 450, 750, 20, 140)], (130, 450, 770)),
}


def _draw(parts, length=1000, seed=3):
    att = belt(length, seed)
    for draw, start, stop, top, bottom, *box_args in parts:
        if box_args:
            draw(att, start, stop, top, bottom, yaw_deg=box_args[0], fill=box_args[1])
        else:
            draw(att, start, stop, top, bottom)
    return att


@pytest.mark.parametrize("kind", sorted(TOUCHING))
@pytest.mark.parametrize("block", [1, 64])
def test_touching_parcels_are_split(kind, block):
    parts, (first_start, cut, second_stop) = TOUCHING[kind]
    segments = run(_draw(parts), block)
    assert len(segments) == 2, spans(segments)
    first, second = segments
    assert abs(first.stop_line - cut) <= 6, spans(segments)
    assert first.stop_line == second.start_line  # no margin into the neighbour, no line lost
    assert abs(first.start_line - first_start) <= 2 and abs(second.stop_line - second_stop) <= 2


def test_a_train_of_touching_parcels():
    att = belt(1400, seed=4)
    for i, (top, bottom) in enumerate([(20, 90), (40, 150), (10, 60), (70, 140)]):
        box(att, 100 + 300 * i, 400 + 300 * i, top, bottom, fill=0.15)
    cuts = [s.start_line for s in run(att, 64)]
    assert len(cuts) == 4 and all(abs(c - e) <= 4 for c, e in zip(cuts[1:], (400, 700, 1000),
                                                                  strict=True))


@pytest.mark.parametrize("block", [1, 64, 500])
def test_over_long_runs_split_with_bounded_memory(block):
    att = box(belt(4300, seed=5), 50, 4000, 20, 100, fill=0.2)  # 3,950 lines of one parcel
    held = []
    segments = run(att, block, watch=lambda seg: held.append(seg.buffered))
    assert len(segments) == 3
    assert [s.stop_line for s in segments[:-1]] == [s.start_line for s in segments[1:]]
    assert segments[0].start_line == 50 - MARGIN and segments[-1].stop_line == 4000 + MARGIN
    assert all(s.hi.shape[1] <= MAX_LENGTH + 2 * MARGIN for s in segments)
    assert max(held) <= MAX_LENGTH + MARGIN + 40 + block


def test_flush_emits_the_last_parcel():
    att = box(belt(600, seed=6), 300, 590, 20, 100)  # the stream ends 10 lines after it
    seg = Segmenter(CONFIG, 1.0)
    t, enc = np.zeros(600), np.zeros(600, np.int64)
    assert seg.feed(att, att, t, enc) == []  # its trailing margin is not complete yet
    (last,) = seg.flush()
    assert (last.start_line, last.stop_line) == (280, 600)
    cut_short = box(belt(500, seed=6), 300, 600, 20, 100)[:500]  # ends mid-parcel
    assert spans(run(cut_short, 64)) == [(280, 500)]


def test_margins_stop_at_the_stream_start():
    att = box(belt(400, seed=7), 5, 200, 20, 100)
    assert spans(run(att, 64)) == [(0, 220)]


def test_lengths_follow_the_pitch():
    """min_length is 60 mm: a 40-line object is 40 mm at 1 mm pitch, 80 mm at 2 mm."""
    att = box(belt(400, seed=8), 150, 190, 20, 100)
    assert run(att, 64, pitch_mm=1.0) == []
    (seg,) = run(att, 64, pitch_mm=2.0)
    assert (seg.start_line, seg.stop_line) == (140, 200)  # margin 20 mm = 10 lines


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([(np.zeros((4, 8)), np.zeros((4, 9)), np.zeros(4), np.zeros(4))],
         r"\(4, 8\) and \(4, 9\)"),
        ([(np.zeros(8), np.zeros(8), np.zeros(1), np.zeros(1))], "2D"),
        ([(np.zeros((4, 8)), np.zeros((4, 8)), np.zeros(3), np.zeros(4))], "need 4 entries"),
        ([(np.zeros((4, 8)),) * 2 + (np.zeros(4),) * 2,
          (np.zeros((4, 9)),) * 2 + (np.zeros(4),) * 2], "9 pixels per line, the stream so far 8"),
    ],
)
def test_bad_blocks_are_refused(blocks, message):
    seg = Segmenter(CONFIG, 1.0)
    with pytest.raises(ValueError, match=message):
        for block in blocks:
            seg.feed(*block)


def test_bad_pitch_is_refused():
    with pytest.raises(ValueError, match="pitch_mm must be > 0, got 0"):
        Segmenter(CONFIG, 0)
