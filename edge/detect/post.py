"""Post-processing core: decode the head on its grids, per-class thresholds, class-aware NMS,
tile merging, and mapping boxes back to parcel pixels. Pure, vectorised NumPy: no Python loop
over boxes or grid cells.

Head contract (``models/README.md``): one tensor ``[N, 4 + C]`` per image, cells ordered stride
by stride and row-major within a stride; columns ``l, t, r, b`` are non-negative distances from
the cell centre to the box sides in units of the stride, then ``C`` class logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from edge.types import Detections

MAX_FIXED_POINT_ROUNDS = 10_000  # a chain of N boxes each suppressing the next needs N rounds


# --- grids and decoding -------------------------------------------------------------------------

@cache
def grid(input_size: tuple[int, int], strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres float32 [N, 2] (x, y, input pixels) and their stride float32 [N]."""
    h, w = input_size
    centres, cell_strides = [], []
    for s in strides:
        ys, xs = np.mgrid[0:h // s, 0:w // s]
        centres.append(np.stack([xs.ravel(), ys.ravel()], axis=1) * s + s / 2)
        cell_strides.append(np.full(xs.size, s))
    out = np.concatenate(centres).astype(np.float32), np.concatenate(cell_strides).astype(
        np.float32)
    for a in out:
        a.setflags(write=False)
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # tanh form: no overflow warnings for large |x|


def decode(raw: np.ndarray, input_size: tuple[int, int], strides: Sequence[int]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Head output [N, 4 + C] -> boxes xyxy float32 [N, 4] (input pixels), scores [N, C]."""
    raw = np.asarray(raw)
    centres, cell_strides = grid(tuple(input_size), tuple(strides))
    if raw.ndim != 2 or raw.shape[0] != len(centres) or raw.shape[1] < 5:
        raise ValueError(f"head output must be [{len(centres)}, 4 + classes] for input "
                         f"{tuple(input_size)} and strides {tuple(strides)}, got {raw.shape}")
    if not np.isfinite(raw).all():
        bad = int(np.count_nonzero(~np.isfinite(raw)))
        raise ValueError(f"head output holds {bad} non-finite values (NaN or inf)")
    dist = np.maximum(raw[:, :4], 0) * cell_strides[:, None]
    boxes = np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1)
    return boxes.astype(np.float32), sigmoid(raw[:, 4:].astype(np.float32))


def select(boxes: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | float,
           max_candidates: int = 30_000) -> Detections:
    """Every (cell, class) whose score reaches its class threshold, best ``max_candidates``."""
    thr = np.broadcast_to(np.asarray(thresholds, np.float32), (scores.shape[1],))
    cells, classes = np.nonzero(scores >= thr[None, :])
    conf = scores[cells, classes]
    if len(conf) > max_candidates:
        top = np.argpartition(-conf, max_candidates - 1)[:max_candidates]
        cells, classes, conf = cells[top], classes[top], conf[top]
    return Detections(boxes[cells], conf, classes)


# --- NMS ----------------------------------------------------------------------------------------

def _check_boxes(xyxy, scores, class_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # float64 inside: class offsets must not cost box precision.
    xyxy = np.asarray(xyxy, dtype=np.float64)
    if xyxy.size == 0:
        xyxy = xyxy.reshape(0, 4)
    scores = np.asarray(scores, dtype=np.float32)
    class_ids = np.asarray(class_ids, dtype=np.int64)
    if xyxy.ndim != 2 or xyxy.shape[1] != 4:
        raise ValueError(f"xyxy must have shape (N, 4), got {xyxy.shape}")
    n = len(xyxy)
    if scores.shape != (n,) or class_ids.shape != (n,):
        raise ValueError(f"scores and class_ids must have shape ({n},), got {scores.shape} "
                         f"and {class_ids.shape}")
    if not (np.isfinite(xyxy).all() and np.isfinite(scores).all()):
        raise ValueError("boxes and scores must be finite (no NaN or inf)")
    return xyxy, scores, class_ids


def overlapping_pairs(xyxy: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (a, b), a < b, whose IoU exceeds the threshold, by sort-and-sweep along x.

    IoU <= overlap_x / width for either box, so after sorting by x1, box j (x1_j >= x1_i) can
    only matter when x1_j < x2_i - threshold * width_i (the sweep window) and its x overlap
    exceeds threshold * width_j (the first filter); y is looked at only for the survivors."""
    order = np.argsort(xyxy[:, 0], kind="stable")
    sx1, sy1, sx2, sy2 = (np.ascontiguousarray(xyxy[order, k]) for k in range(4))
    width, height = np.maximum(sx2 - sx1, 0), np.maximum(sy2 - sy1, 0)
    n = len(order)
    ends = np.searchsorted(sx1, sx2 - iou_threshold * width, side="left")
    counts = np.maximum(ends - np.arange(n) - 1, 0)
    total = int(counts.sum())
    empty = np.zeros(0, np.int64)
    if total == 0:
        return empty, empty
    first = np.repeat(np.arange(n), counts)
    second = first + 1 + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
    iw = np.minimum(np.repeat(sx2, counts), sx2[second]) - sx1[second]
    near = iw > iou_threshold * width[second]
    if iou_threshold == 0:
        near &= iw > 0
    first, second, iw = first[near], second[near], iw[near]
    ih = np.minimum(sy2[first], sy2[second]) - np.maximum(sy1[first], sy1[second])
    inter = iw * np.maximum(ih, 0)
    union = width[first] * height[first] + width[second] * height[second] - inter
    hit = (inter > iou_threshold * union) & (inter > 0)  # IoU > threshold, no division
    a, b = order[first[hit]], order[second[hit]]
    return np.minimum(a, b), np.maximum(a, b)


def pairs_between(a_box: np.ndarray, b_box: np.ndarray, iou_threshold: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) of a_box[i], b_box[j] ([K, 4] each) with IoU above the threshold: b is
    swept along x, each a box compared only with the b boxes whose x1 falls in its window."""
    empty = np.zeros(0, np.int64)
    if len(a_box) == 0 or len(b_box) == 0:
        return empty, empty
    order = np.argsort(b_box[:, 0], kind="stable")
    bx1, by1, bx2, by2 = (np.ascontiguousarray(b_box[order, k]) for k in range(4))
    # x overlap must exceed threshold * width of a, so x1_b lies in
    # (x1_a + t * w_a - widest_b, x2_a - t * w_a).
    widest = float(np.max(bx2 - bx1, initial=0))
    margin = iou_threshold * np.maximum(a_box[:, 2] - a_box[:, 0], 0)
    lo = np.searchsorted(bx1, a_box[:, 0] + margin - widest, side="left")
    hi = np.searchsorted(bx1, a_box[:, 2] - margin, side="left")
    counts = np.maximum(hi - lo, 0)
    total = int(counts.sum())
    if total == 0:
        return empty, empty
    i = np.repeat(np.arange(len(a_box)), counts)
    j = np.repeat(lo, counts) + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
    ax1, ay1, ax2, ay2 = (a_box[i, k] for k in range(4))
    iw = np.minimum(ax2, bx2[j]) - np.maximum(ax1, bx1[j])
    ih = np.minimum(ay2, by2[j]) - np.maximum(ay1, by1[j])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area_a = np.maximum(ax2 - ax1, 0) * np.maximum(ay2 - ay1, 0)
    area_b = np.maximum(bx2[j] - bx1[j], 0) * np.maximum(by2[j] - by1[j], 0)
    hit = (inter > iou_threshold * (area_a + area_b - inter)) & (inter > 0)
    return i[hit], order[j[hit]]


def _greedy_within(ranked: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS of boxes already in rank order: bool keep mask."""
    a, b = overlapping_pairs(ranked, iou_threshold)  # a outranks b
    keep = np.ones(len(ranked), bool)
    # Greedy NMS keeps a box unless a kept, better box overlaps it. That rule has one fixed
    # point; iterating it from "keep all" settles one more rank of the suppression chain each
    # round, so rounds = the longest chain, a handful in practice.
    for _ in range(MAX_FIXED_POINT_ROUNDS):
        suppressed = np.zeros(len(ranked), bool)
        suppressed[b[keep[a]]] = True
        if np.array_equal(~suppressed, keep):
            break
        keep = ~suppressed
    return keep


CHUNK = 1024  # boxes resolved together; later chunks only meet the boxes kept so far


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: indices kept, by descending score (ties: lower index first).

    Boxes go in rank order, a chunk at a time: a chunk first loses every box that a box kept
    from earlier chunks overlaps, then resolves the rest among themselves. Dense clusters
    (what detectors emit) are settled by their first kept box, so later chunks compare few
    pairs; the loop runs over chunks, never over boxes."""
    xyxy, scores, _ = _check_boxes(xyxy, scores, np.zeros(len(scores), np.int64))
    order = np.lexsort((np.arange(len(scores)), -scores))
    ranked = xyxy[order]
    kept: list[np.ndarray] = []
    kept_boxes = np.zeros((0, 4))
    for start in range(0, len(order), CHUNK):
        chunk = np.arange(start, min(start + CHUNK, len(order)))
        hit, _ = pairs_between(ranked[chunk], kept_boxes, iou_threshold)
        alive = np.ones(len(chunk), bool)
        alive[hit] = False
        chunk = chunk[alive]
        chunk = chunk[_greedy_within(ranked[chunk], iou_threshold)]
        kept.append(chunk)
        kept_boxes = np.concatenate([kept_boxes, ranked[chunk]])
    return order[np.concatenate(kept)] if kept else np.zeros(0, np.int64)


def batched_nms(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                iou_threshold: float) -> np.ndarray:
    """Class-aware greedy NMS: boxes only suppress boxes of their own class.

    xyxy float [N, 4], scores [N], class_ids int [N]. Returns the kept indices, sorted by
    descending score (ties by index)."""
    xyxy, scores, class_ids = _check_boxes(xyxy, scores, class_ids)
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    return nms(_apart_by_class(xyxy, class_ids), scores, iou_threshold)


def _apart_by_class(xyxy: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Shift each class to its own stretch of the x axis: no two classes can overlap then."""
    span = float(xyxy[:, [0, 2]].max() - xyxy[:, [0, 2]].min()) + 1.0
    _, dense = np.unique(class_ids, return_inverse=True)
    shifted = xyxy.copy()
    shifted[:, [0, 2]] += (dense.astype(np.float64) * 2 * span)[:, None]
    return shifted


# --- tiles and parcels --------------------------------------------------------------------------

def to_parcel(det: Detections, offset_xy, scale: float, parcel_shape) -> Detections:
    """Map boxes from model-input pixels to parcel pixels: ``(xy - offset) / scale``, clipped."""
    h, w = parcel_shape
    xyxy = (det.xyxy - np.tile(np.asarray(offset_xy, np.float32), 2)) / scale
    xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
    return Detections(xyxy, det.score, det.class_id)


def box_vote(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, kept: np.ndarray,
             iou_threshold: float) -> np.ndarray:
    """Weighted box fusion after NMS: each kept box becomes the score-weighted mean of every
    box of its class that overlaps it above the threshold (itself included). Returns the
    refined [len(kept), 4] boxes; scores and classes stay those of the kept boxes."""
    xyxy, scores, class_ids = _check_boxes(xyxy, scores, class_ids)
    kept = np.asarray(kept, np.int64)
    if len(kept) == 0:
        return np.zeros((0, 4), np.float32)
    shifted = _apart_by_class(xyxy, class_ids)
    i, j = pairs_between(shifted[kept], shifted, iou_threshold)
    # A kept box always counts itself, even when its IoU with itself is not "above" 1.0.
    i, j = np.concatenate([i, np.arange(len(kept))]), np.concatenate([j, kept])
    unique = np.unique(i * len(xyxy) + j)
    i, j = unique // len(xyxy), unique % len(xyxy)
    w = scores[j]
    total = np.bincount(i, w, minlength=len(kept))
    fused = np.stack([np.bincount(i, w * xyxy[j, k], minlength=len(kept)) for k in range(4)], 1)
    return (fused / np.maximum(total, 1e-12)[:, None]).astype(np.float32)


def merge_tiles(parts: Sequence[Detections], iou_threshold: float,
                vote: bool = False) -> Detections:
    """Join detections already mapped to parcel pixels from overlapping tiles, one per object:
    class-aware NMS over all of them (an object seen whole in one tile outranks its cut-off
    copy in the next, whose IoU with it is high because tiles overlap by more than an object).
    ``vote`` refines each kept box by weighted box fusion (``box_vote``)."""
    merged = Detections.merge(list(parts))
    if len(merged) == 0:
        return merged
    kept = batched_nms(merged.xyxy, merged.score, merged.class_id, iou_threshold)
    out = merged[kept]
    if vote:
        out.xyxy = box_vote(merged.xyxy, merged.score, merged.class_id, kept, iou_threshold)
    return out
