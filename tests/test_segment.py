"""Segmentation of a corrected line stream into parcels."""

import numpy as np
import pytest

from edge.config import SegmentConfig
from edge.imaging.segment import Segmenter

N_PIXELS = 128
CONFIG = SegmentConfig(threshold=0.08, min_gap_mm=40, min_length_mm=60, max_length_mm=1600,
                       margin_mm=20, touch_jump_mm=25)


def stream(parcels, length, seed=0):
    """Lines [length, N_PIXELS] of noisy empty belt with box-like parcels.

    parcels: (start, stop, top, bottom) in lines and pixels: walls dense, inside lighter."""
    rng = np.random.default_rng(seed)
    att = rng.normal(0, 0.01, (length, N_PIXELS)).astype(np.float32)
    att[:, 5] = 0.9  # a hot pixel never makes a parcel
    for start, stop, top, bottom in parcels:
        att[start:stop, top:bottom] += 0.3
        att[start:stop, top:top + 3] += 1.0
        att[start:stop, bottom - 3:bottom] += 1.0
    return att


def run(att, block):
    seg = Segmenter(CONFIG, pitch_mm=1.0)
    t = np.arange(len(att)) / 500.0
    enc = np.arange(len(att)) * 4
    out = []
    for i in range(0, len(att), block):
        sl = slice(i, i + block)
        out += seg.feed(att[sl], att[sl] * 1.3, t[sl], enc[sl])
    return out + seg.flush()


PARCELS = [(100, 400, 20, 100), (700, 760, 40, 60), (1000, 1600, 10, 120), (1700, 1900, 30, 90)]


@pytest.mark.parametrize("block", [1, 7, 64, 500, 4000])
def test_every_parcel_found_with_its_extent(block):
    att = stream(PARCELS, 2000)
    segments = run(att, block)
    assert len(segments) == len(PARCELS)
    for seg, (start, stop, _, _) in zip(segments, PARCELS, strict=True):
        first = seg.start_line
        last = first + seg.hi.shape[1]
        assert abs(first - (start - 20)) <= 2 and abs(last - (stop + 20)) <= 2
        assert seg.hi.shape[0] == N_PIXELS  # parcel layout: [pixels, lines]
        np.testing.assert_array_equal(seg.hi.T, att[first:last])
        assert seg.encoder[0] == first * 4 and len(seg.t) == seg.hi.shape[1]


def test_specks_dropped_and_empty_stretches_inside_a_parcel_kept():
    att = stream([(100, 130, 20, 100), (300, 700, 20, 100)], 900)
    att[500:520, 23:97] = 0.0  # nothing but the walls for 20 lines
    segments = run(att, 64)
    assert len(segments) == 1  # the 30-line speck is gone, the parcel whole
    assert abs(segments[0].start_line - 280) <= 2
    assert abs(segments[0].hi.shape[1] - 440) <= 4


def test_parcels_closer_than_min_gap_are_still_two():
    att = stream([(300, 500, 20, 100), (520, 700, 20, 100)], 900)
    segments = run(att, 64)
    assert len(segments) == 2
    for seg, start in zip(segments, (300, 520), strict=True):
        assert abs(seg.start_line - start) <= 22


def test_over_long_runs_split_and_lines_never_lost():
    att = stream([(50, 4000, 20, 100)], 4200)
    segments = run(att, 64)
    assert len(segments) == 3
    covered = np.zeros(4200, bool)
    for seg in segments:
        assert seg.hi.shape[1] <= 1600 + 2 * 20
        covered[seg.start_line:seg.start_line + seg.hi.shape[1]] = True
    assert covered[50:4000].all()


def test_touching_parcels_of_different_sizes_are_split():
    att = stream([(100, 400, 20, 100), (400, 700, 50, 120)], 900)
    segments = run(att, 64)
    assert len(segments) == 2
    cut = segments[1].start_line
    assert abs(cut - 400) <= 4
    assert segments[0].start_line + segments[0].hi.shape[1] == cut  # no margin into neighbour


def test_bad_blocks_are_refused():
    seg = Segmenter(CONFIG, 1.0)
    with pytest.raises(ValueError, match="shape"):
        seg.feed(np.zeros((4, 8)), np.zeros((4, 9)), np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="entries"):
        seg.feed(np.zeros((4, 8)), np.zeros((4, 8)), np.zeros(3), np.zeros(4))
