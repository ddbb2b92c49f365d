"""The NumPy post-processing core against plain, slow reference implementations."""

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edge.detect.decode import (
    decode,
    decode_select,
    decode_tiles,
    grid,
    merge_tiles,
    select,
    to_parcel,
)
from edge.detect.nms import batched_nms, box_vote, nms
from edge.types import Detections


@contextmanager
def tuned(**constants):
    """Set ``edge.detect.nms``'s tuning constants for one block (paths forced on small sets)."""
    import edge.detect.nms as module

    saved = {name: getattr(module, name) for name in constants}
    for name, value in constants.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def reference_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def reference_batched_nms(xyxy, scores, classes, thr):
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept = []
    for i in order:
        box = [float(v) for v in xyxy[i]]
        if all(classes[k] != classes[i] or reference_iou([float(v) for v in xyxy[k]], box) <= thr
               for k in kept):
            kept.append(i)
    return kept


@st.composite
def box_sets(draw, max_n=60):
    n = draw(st.integers(0, max_n))
    # Integer corners on a small canvas: many overlaps, exact ties, degenerate boxes.
    corners = draw(arrays(np.int64, (n, 4), elements=st.integers(0, 40)))
    x1 = np.minimum(corners[:, 0], corners[:, 2])
    x2 = np.maximum(corners[:, 0], corners[:, 2])
    y1 = np.minimum(corners[:, 1], corners[:, 3])
    y2 = np.maximum(corners[:, 1], corners[:, 3])
    xyxy = np.stack([x1, y1, x2, y2], 1).astype(np.float32)
    scores = draw(arrays(np.float32, n, elements=st.sampled_from([0.1, 0.5, 0.5, 0.7, 0.9])))
    classes = draw(arrays(np.int64, n, elements=st.integers(0, 2)))
    thr = draw(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
    return xyxy, scores, classes, thr


@settings(max_examples=300, deadline=None)
@given(box_sets())
def test_batched_nms_matches_reference(case):
    xyxy, scores, classes, thr = case
    kept = batched_nms(xyxy, scores, classes, thr)
    assert kept.tolist() == reference_batched_nms(xyxy, scores, classes, thr)


@settings(max_examples=50, deadline=None)
@given(box_sets(max_n=200))
def test_batched_nms_matches_reference_on_larger_sets(case):
    xyxy, scores, classes, thr = case
    xyxy = xyxy * 7.3 + 100.25  # non-integer coordinates
    assert batched_nms(xyxy, scores, classes, thr).tolist() == reference_batched_nms(
        xyxy, scores, classes, thr)


def test_nms_chain_and_tile_seam():
    # Each box overlaps the next only: greedy keeps every other one.
    xyxy = np.array([[i * 6, 0, i * 6 + 10, 10] for i in range(9)], np.float32)
    scores = np.linspace(0.9, 0.1, 9).astype(np.float32)
    assert nms(xyxy, scores, 0.2).tolist() == [0, 2, 4, 6, 8]
    # A box cut at a tile seam and its whole copy from the next tile merge into the whole one.
    whole = Detections([[90, 10, 150, 60]], [0.8], [1])
    cut = Detections([[90, 10, 128, 60]], [0.6], [1])
    merged = merge_tiles([cut, whole], iou_threshold=0.5)
    assert len(merged) == 1 and merged.xyxy[0].tolist() == [90, 10, 150, 60]


@pytest.mark.parametrize(
    ("xyxy", "scores", "classes", "message"),
    [
        (np.zeros((3, 5)), np.zeros(3), np.zeros(3), "shape"),  # wrong box width
        (np.zeros((3, 4)), np.zeros(2), np.zeros(3), "shape"),  # scores too short
        (np.zeros((2, 4)), np.array([0.5, np.nan]), np.zeros(2), "finite"),  # NaN score
        (np.full((1, 4), np.inf), np.ones(1), np.zeros(1), "finite"),  # inf box
    ],
)
def test_bad_input_gets_a_clear_error(xyxy, scores, classes, message):
    with pytest.raises(ValueError, match=message):
        batched_nms(xyxy, scores, classes, 0.5)


def test_empty_input():
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.5).shape == (0,)
    assert len(merge_tiles([Detections.empty()], 0.5)) == 0


def reference_decode(raw, input_size, strides):
    boxes, scores = [], []
    row = 0
    for s in strides:
        for gy in range(input_size[0] // s):
            for gx in range(input_size[1] // s):
                cx, cy = gx * s + s / 2, gy * s + s / 2
                left, top, right, bottom = (max(float(v), 0.0) * s for v in raw[row, :4])
                boxes.append([cx - left, cy - top, cx + right, cy + bottom])
                scores.append([1 / (1 + np.exp(-float(v))) for v in raw[row, 4:]])
                row += 1
    return np.array(boxes), np.array(scores)


@pytest.mark.parametrize("input_size", [(64, 64), (32, 96)])
def test_decode_matches_reference(input_size):
    strides = (8, 16, 32)
    n = len(grid(input_size, strides)[0])
    raw = np.random.default_rng(0).normal(0, 3, (n, 4 + 3)).astype(np.float32)
    boxes, scores = decode(raw, input_size, strides)
    ref_boxes, ref_scores = reference_decode(raw, input_size, strides)
    np.testing.assert_allclose(boxes, ref_boxes, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.25, 0.5, 0.999, 1.0, 1.5]),
       st.floats(1, 20), st.integers(1, 50))
def test_decode_select_equals_select_after_decode(seed, thr, spread, most):
    # The fused path skips cells by their logits; it must keep exactly what the plain path
    # keeps, in the same order, including scores that round to the threshold and per-class
    # thresholds, and the same cap on candidates.
    input_size, strides = (64, 96), (8, 16, 32)
    n = len(grid(input_size, strides)[0])
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, spread, (n, 4 + 3)).astype(np.float32)
    thresholds = np.array([thr, 0.5, 0.9], np.float32)
    want = select(*decode(raw, input_size, strides), thresholds, max_candidates=most)
    got = decode_select(raw, input_size, strides, thresholds, max_candidates=most)
    assert got.class_id.tolist() == want.class_id.tolist()
    assert got.score.tolist() == want.score.tolist()
    assert got.xyxy.tolist() == want.xyxy.tolist()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.sampled_from([0.0, 0.3, 0.7]),
       st.sampled_from([0.37, 0.5, 1.0, 1.6]))
def test_decode_tiles_equals_each_tile_decoded_and_mapped(seed, tiles, thr, scale):
    # All tiles at once must give what decoding each tile and mapping it to the image gives:
    # the same boxes, bit for bit, tile after tile, clipped to the image.
    input_size, strides = (64, 96), (8, 16, 32)
    n = len(grid(input_size, strides)[0])
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 3, (tiles, n, 4 + 3)).astype(np.float32)
    offsets = np.stack([np.arange(tiles) * 70.0, rng.uniform(0, 9, tiles)], 1).astype(np.float32)
    thresholds = np.array([thr, 0.5, 0.9], np.float32)
    image_shape = (int(64 / scale), int((96 + 70 * (tiles - 1)) / scale))
    want = Detections.merge([
        to_parcel(decode_select(raw[k], input_size, strides, thresholds), -offsets[k], scale,
                  image_shape) for k in range(tiles)])
    got = decode_tiles(raw, offsets, scale, image_shape, input_size, strides, thresholds)
    assert got.class_id.tolist() == want.class_id.tolist()
    assert got.score.tolist() == want.score.tolist()
    assert got.xyxy.tolist() == want.xyxy.tolist()


def test_decode_tiles_rejects_bad_heads():
    n = len(grid((64, 64), (8, 16, 32))[0])
    raw = np.zeros((2, n, 6), np.float32)
    offsets = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"head output must be \[3, 84, 4 \+ classes\]"):
        decode_tiles(raw, np.zeros((3, 2), np.float32), 1.0, (64, 64), (64, 64), (8, 16, 32), 0.5)
    with pytest.raises(ValueError, match="one per class"):
        decode_tiles(raw, offsets, 1.0, (64, 64), (64, 64), (8, 16, 32), [0.5, 0.5, 0.5])
    raw[1, 7, 5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        decode_tiles(raw, offsets, 1.0, (64, 64), (64, 64), (8, 16, 32), 0.5)


def test_decode_select_rejects_bad_heads():
    n = len(grid((64, 64), (8, 16, 32))[0])
    raw = np.zeros((n, 6), np.float32)
    raw[0, 4] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        decode_select(raw, (64, 64), (8, 16, 32), 0.5)
    with pytest.raises(ValueError, match="head output must be"):
        decode_select(raw[:-1], (64, 64), (8, 16, 32), 0.5)


def test_decode_rejects_bad_heads():
    with pytest.raises(ValueError, match="head output must be"):
        decode(np.zeros((10, 7)), (64, 64), (8, 16, 32))
    n = len(grid((64, 64), (8, 16, 32))[0])
    raw = np.zeros((n, 6), np.float32)
    raw[3, 5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        decode(raw, (64, 64), (8, 16, 32))


def test_select_applies_per_class_thresholds_and_maps_to_parcel():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    scores = np.array([[0.6, 0.2], [0.3, 0.45]], np.float32)
    det = select(boxes, scores, np.array([0.5, 0.4]))
    order = np.argsort(det.class_id)
    assert det.class_id[order].tolist() == [0, 1]
    assert det.score[order].tolist() == pytest.approx([0.6, 0.45])
    mapped = to_parcel(det, offset_xy=(4, 8), scale=2.0, parcel_shape=(100, 100))
    assert mapped.xyxy[det.class_id == 1][0].tolist() == [8, 6, 18, 16]


@settings(max_examples=150, deadline=None)
@given(box_sets(max_n=120), st.sampled_from([1, 3, 7, 16]), st.sampled_from([0, 4, 64]))
def test_batched_nms_matches_reference_across_chunks(case, chunk, dense_round):
    # Rounds forced on small sets, with chunks of a few boxes: every chunk boundary case (kept
    # set meets new chunk) is common; rounds settle their chunk by a sweep or by every pair.
    xyxy, scores, classes, thr = case
    with tuned(CHUNK=chunk, DENSE_MAX=0, DENSE_ROUND=dense_round):
        kept = batched_nms(xyxy, scores, classes, thr)
    assert kept.tolist() == reference_batched_nms(xyxy, scores, classes, thr)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.sampled_from([0.3, 0.5, 0.7]))
def test_rounds_find_overlaps_on_the_edge_of_their_float32_window(seed, n, thr):
    # The rounds' x index sorts and searches float32 keys of the class-shifted x1, whose steps
    # are 8 to 16 times coarser there than near x = 1000. Each box gets a lower-scored partner
    # of its height, nested at its right edge and a float32 step or two wider than the
    # threshold allows: IoU just above it, and x1 just inside the search window, its key tied
    # with the window's end.
    rng = np.random.default_rng(seed)
    f32 = np.float32
    step = np.spacing(f32(1000))
    x1 = f32(1000) + rng.integers(0, 30, n).astype(f32) * f32(0.1)
    y1 = rng.integers(0, 4, n).astype(f32) * 3
    w = rng.choice(np.array([1, 2, 3, 4], f32), n)
    h = rng.choice(np.array([3, 5], f32), n)
    x2 = x1 + w
    partner_w = f32(thr) * w + rng.integers(1, 3, n).astype(f32) * step
    xyxy = np.concatenate([np.stack([x1, y1, x2, y1 + h], 1),
                           np.stack([x2 - partner_w, y1, x2, y1 + h], 1)]).astype(f32)
    scores = np.concatenate([rng.choice([0.6, 0.8], n), rng.choice([0.2, 0.4], n)]).astype(f32)
    classes = np.tile(rng.integers(0, 8, n), 2)
    with tuned(CHUNK=3, DENSE_MAX=0):
        kept = batched_nms(xyxy, scores, classes, thr)
    assert kept.tolist() == reference_batched_nms(xyxy, scores, classes, thr)


def test_nms_benchmark_reports_peers_on_the_same_sets():
    from edge.tools.bench_detect import bench_nms

    result = bench_nms(sizes=(100, 1000), repeats=1)
    assert "opencv" in result["peers"]
    for row in result["rows"]:
        assert row["edge_ms"] > 0 and row["opencv_ms"] > 0
        assert row["opencv_same_kept"], row  # same boxes kept: the race is fair


def reference_vote(xyxy, scores, classes, kept, thr):
    out = []
    for k in kept:
        members = [j for j in range(len(scores)) if j == k or (
            classes[j] == classes[k]
            and reference_iou([float(v) for v in xyxy[k]], [float(v) for v in xyxy[j]]) > thr)]
        w = np.array([float(scores[j]) for j in members])
        boxes = np.array([[float(v) for v in xyxy[j]] for j in members])
        out.append((w[:, None] * boxes).sum(0) / max(w.sum(), 1e-12))
    return np.array(out).reshape(-1, 4)


@settings(max_examples=200, deadline=None)
@given(box_sets(), st.sampled_from([0, 8192]))
def test_box_vote_matches_reference(case, dense_pairs):
    # Both ways of finding each kept box's neighbours: every pair, or the x-sorted index.
    xyxy, scores, classes, thr = case
    scores = np.maximum(scores, 0.1)
    kept = batched_nms(xyxy, scores, classes, thr)
    with tuned(DENSE_VOTE_PAIRS=dense_pairs):
        got = box_vote(xyxy, scores, classes, kept, thr)
    np.testing.assert_allclose(got, reference_vote(xyxy, scores, classes, kept, thr),
                               atol=1e-3)


def test_box_vote_pulls_a_kept_box_towards_its_neighbours():
    xyxy = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.9, 0.8], np.float32)
    classes = np.array([0, 0, 0])
    kept = batched_nms(xyxy, scores, classes, 0.5)
    assert kept.tolist() == [0, 2]
    fused = box_vote(xyxy, scores, classes, kept, 0.5)
    np.testing.assert_allclose(fused, [[1, 0, 11, 10], [50, 50, 60, 60]])
    merged = merge_tiles([Detections(xyxy, scores, classes)], 0.5, vote=True)
    np.testing.assert_allclose(merged.xyxy, fused)


@settings(max_examples=60, deadline=None)
@given(box_sets(max_n=200), st.sampled_from([-7, 5000, 2**40]))
def test_batched_nms_takes_any_integer_class_ids(case, base):
    # Small non-negative ids shift boxes apart as they are; others are renumbered first.
    xyxy, scores, classes, thr = case
    classes = classes * 3 + base
    assert batched_nms(xyxy, scores, classes, thr).tolist() == reference_batched_nms(
        xyxy, scores, classes, thr)


def test_ranking_handles_signed_zeros_negative_and_extreme_scores():
    scores = np.array([0.0, -0.0, -1.5, 3e38, -3e38, 1e-45, -1e-45, 0.5, 0.5, -0.0],
                      np.float32)
    n = len(scores)
    xyxy = np.stack([np.arange(n) * 10.0, np.zeros(n), np.arange(n) * 10.0 + 5, np.full(n, 5.0)],
                    1).astype(np.float32)   # apart: nothing suppressed, only the order counts
    want = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    for count in (n, 200):   # the one-matrix path and the rounds
        reps = -(-count // n)
        big_xyxy = np.concatenate([xyxy + [k * 200, 0, k * 200, 0] for k in range(reps)])
        big_scores = np.tile(scores, reps)
        classes = np.zeros(len(big_scores), np.int64)
        got = batched_nms(big_xyxy, big_scores, classes, 0.5).tolist()
        assert got == sorted(range(len(big_scores)), key=lambda i: (-float(big_scores[i]), i))
    assert batched_nms(xyxy, scores, np.zeros(n, np.int64), 0.5).tolist() == want


@settings(max_examples=60, deadline=None)
@given(st.integers(129, 700).flatmap(lambda n: arrays(
    np.float32, n, elements=st.sampled_from([0.0, -0.0, 0.25, 0.5, -0.5, 1.0, 1e-45, -1e-45,
                                             3e38, -3e38, 0.123456, 0.1234561]))))
def test_rounds_rank_by_descending_score_then_index(scores):
    # Boxes far apart: nothing is suppressed, so the kept list is the ranking itself, here
    # on more boxes than the every-pair path takes (the 16-bit radix passes).
    n = len(scores)
    x = np.arange(n, dtype=np.float32) * 10
    xyxy = np.stack([x, np.zeros(n), x + 5, np.full(n, 5.0)], 1).astype(np.float32)
    got = batched_nms(xyxy, scores, np.zeros(n, np.int64), 0.5).tolist()
    assert got == sorted(range(n), key=lambda i: (-float(scores[i]), i))


@pytest.mark.parametrize("xyxy, score, class_id, message", [
    (np.zeros((2, 3)), np.zeros(2), np.zeros(2), r"xyxy must be a 2D array with shape \(N, 4\)"),
    (np.zeros(4), np.zeros(1), np.zeros(1), r"xyxy must be a 2D array"),
    (np.zeros((2, 4)), np.zeros(3), np.zeros(2), r"score must have shape \(2,\).*\(3,\)"),
    (np.zeros((2, 4)), np.zeros(2), np.zeros((2, 1)), r"class_id must have shape \(2,\)"),
])
def test_detections_name_the_array_of_the_wrong_shape(xyxy, score, class_id, message):
    with pytest.raises(ValueError, match=message):
        Detections(xyxy, score, class_id)
