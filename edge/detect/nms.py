"""Greedy non-maximum suppression, exact and vectorised: class-aware (``batched_nms``) or not
(``nms``), and box voting after it (``box_vote``).

Greedy NMS keeps a box unless a kept box of higher score (ties: lower index) overlaps it with
IoU above the threshold. Box by box that is a Python loop over thousands of candidates; here
loops run over rounds, never over boxes, and the keep set is still exactly the greedy one:

- Ranking: two stable radix passes over the 16-bit halves of order-keeping integer keys
  (NumPy sorts 16-bit integers in linear time): twice as fast as sorting (score, index) at
  5,000 boxes, three times at 20,000.
- Few boxes: every pair is tested at once, from a cached list of index pairs (an n x n IoU
  matrix costs more).
- Rounds: a detector emits dense clusters, each settled by its best box. So boxes go in rank
  order in rounds that double in size: the best few are settled among themselves, then every
  lower box that a box kept in the round overlaps is dropped at once, found through one index
  of the boxes sorted by x1. A few rounds clear the clusters.
- Sweep: when a round drops little (boxes far apart), the rest is settled at once from its
  overlapping pairs, found by a sort-and-sweep along x (IoU <= x overlap / width, so only
  boxes near in x are candidates), band by band in y on a tall canvas.
- Fixed point: given the overlapping pairs, the keep set is the one fixed point of "keep a
  box unless a kept, better box overlaps it". Iterating that rule from "keep all" settles one
  more link of every suppression chain per pass: as many passes as the longest chain, a
  handful in practice.
- Classes: each class is shifted to its own stretch of the x axis, so one class-blind pass
  serves them all; boxes are float64 inside, so the shift costs no precision.

IoU itself comes from ``edge.detect.boxes``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from edge.detect.boxes import area, intersection, iou_above, iou_above_pairs, overlap

# Where one path starts to beat another (``edge bench post`` times the whole); tests shrink
# them to force every path on small sets.
DENSE_MAX = 128         # up to this many boxes, testing every pair beats rounds (and the
                        # cached pair list stays near 130 kB: fresh pages cost more above that)
DENSE_ROUND = 64        # a round up to this many boxes is settled pair by pair, not swept
CHUNK = 64              # boxes of the first round; each further round takes twice as many
SPARSE = 0.1            # a round that drops less than this share of the rest ends the rounds
BAND_MIN_BOXES = 256    # below this many boxes one sweep is cheaper than banding
DENSE_VOTE_PAIRS = 8192  # box voting tests every (kept, box) pair up to this many pairs
SMALL_CLASS_IDS = 4096  # class ids in [0, this) shift boxes apart as they are (no renumbering)
MAX_FIXED_POINT_ROUNDS = 10_000  # a chain of N boxes each suppressing the next needs N passes


def batched_nms(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                iou_threshold: float) -> np.ndarray:
    """Class-aware greedy NMS: boxes only suppress boxes of their own class.

    xyxy float [N, 4] (px), scores [N], class_ids int [N]. Returns the kept indices, sorted by
    descending score (ties by index)."""
    xyxy, scores, class_ids = _check_boxes(xyxy, scores, class_ids)
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    if len(xyxy) <= DENSE_MAX:
        order = _rank(scores)
        return order[_greedy_dense(xyxy[order], class_ids[order], iou_threshold)]
    return nms(_apart_by_class(xyxy, class_ids), scores, iou_threshold)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS, every box against every other: indices kept, by descending score (ties:
    lower index first). In rounds, then one sweep (see the module's docstring)."""
    xyxy, scores, _ = _check_boxes(xyxy, scores, np.zeros(len(scores), np.int64))
    order = _rank(scores)
    ranked = xyxy[order]
    by_x = _XSorted(ranked, np.arange(len(order)))
    undecided = np.ones(len(order), bool)
    alive = np.arange(len(order))
    kept: list[np.ndarray] = []
    size = CHUNK
    while len(alive):
        if len(alive) <= size:
            kept.append(alive[_greedy_within(ranked[alive], iou_threshold)])
            break
        chunk, rest = alive[:size], alive[size:]
        settled = chunk[_greedy_within(ranked[chunk], iou_threshold)]
        kept.append(settled)
        undecided[chunk] = False
        undecided[by_x.pairs(ranked[settled], iou_threshold, undecided)[1]] = False
        alive = rest[undecided[rest]]
        if len(alive) < len(by_x.ids) // 2:   # mostly decided: sweep only the open ones
            by_x = _XSorted(ranked[alive], alive)
        if len(rest) - len(alive) < SPARSE * len(rest):
            kept.append(alive[_greedy_within(ranked[alive], iou_threshold)])
            break
        size *= 2
    return order[np.concatenate(kept)] if kept else np.zeros(0, np.int64)


def box_vote(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, kept: np.ndarray,
             iou_threshold: float) -> np.ndarray:
    """Weighted box fusion after NMS: each kept box becomes the score-weighted mean of every
    box of its class that overlaps it above the threshold (itself included). Returns the
    refined [len(kept), 4] boxes; scores and classes stay those of the kept boxes."""
    xyxy, scores, class_ids = _check_boxes(xyxy, scores, class_ids)
    kept = np.asarray(kept, np.int64)
    if len(kept) == 0:
        return np.zeros((0, 4), np.float32)
    n = len(xyxy)
    if len(kept) * n <= DENSE_VOTE_PAIRS:   # few: test every (kept, box) pair
        i, j = np.repeat(np.arange(len(kept)), n), np.tile(np.arange(n), len(kept))
        same = class_ids[kept[i]] == class_ids[j]
        i, j = i[same], j[same]
        # A kept box always counts itself, even when its IoU with itself is not "above" 1.0.
        hit = iou_above_pairs(xyxy, kept[i], j, iou_threshold) | (kept[i] == j)
        i, j = i[hit], j[hit]
    else:
        shifted = _apart_by_class(xyxy, class_ids)
        i, j = _XSorted(shifted, np.arange(n)).pairs(shifted[kept], iou_threshold)
        i, j = np.concatenate([i, np.arange(len(kept))]), np.concatenate([j, kept])
        unique = np.unique(i * n + j)
        i, j = unique // n, unique % n
    w = scores[j]
    total = np.bincount(i, w, minlength=len(kept))
    fused = np.stack([np.bincount(i, w * xyxy[j, k], minlength=len(kept)) for k in range(4)], 1)
    return (fused / np.maximum(total, 1e-12)[:, None]).astype(np.float32)


def overlapping_pairs(xyxy: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (a, b), a < b, of boxes [N, 4] whose IoU exceeds the threshold.

    IoU > t needs a y overlap above t * height for both boxes, so the tops of such a pair lie
    less than reach = (1 - t) * tallest apart. On a tall canvas the boxes are cut into bands
    of 2 * reach by their tops, twice (the second grid offset by half a band): every such pair
    shares a band in one of the grids, and each band is swept on its own, which keeps the
    sweep's candidates to the boxes near in y as well as in x."""
    n = len(xyxy)
    empty = np.zeros(0, np.int64)
    if n < 2 or iou_threshold >= 1:
        return empty, empty   # IoU never exceeds 1
    height = np.maximum(xyxy[:, 3] - xyxy[:, 1], 0)
    band = 2 * max((1 - iou_threshold) * float(height.max()), 1e-9)
    top = xyxy[:, 1] - xyxy[:, 1].min()
    if n < BAND_MIN_BOXES or float(top.max()) < 3 * band:
        return _sweep(xyxy, iou_threshold)
    span = float(xyxy[:, [0, 2]].max() - xyxy[:, [0, 2]].min()) + 1.0
    found_a, found_b = [], []
    grid_a = np.floor(top / band)
    for grid in (grid_a, np.floor(top / band + 0.5)):
        shifted = xyxy.copy()
        shifted[:, [0, 2]] += (grid * 2 * span)[:, None]   # bands apart along x
        a, b = _sweep(shifted, iou_threshold)
        if grid is not grid_a:   # pairs both grids found: count once
            fresh = grid_a[a] != grid_a[b]
            a, b = a[fresh], b[fresh]
        found_a.append(a)
        found_b.append(b)
    return np.concatenate(found_a), np.concatenate(found_b)


def _sweep(xyxy: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a < b) with IoU above the threshold, by sort-and-sweep along x.

    IoU <= overlap_x / width for either box, so after sorting by x1, box j (x1_j >= x1_i) can
    only matter when x1_j < x2_i - threshold * width_i (the sweep window) and its x overlap
    exceeds threshold * width_j (the first filter); y is looked at only for the survivors."""
    order = np.argsort(xyxy[:, 0])   # any order among equal x1 will do
    sx1, sy1, sx2, sy2 = (np.ascontiguousarray(xyxy[order, k]) for k in range(4))
    width = np.maximum(sx2 - sx1, 0)
    n = len(order)
    index = np.arange(n, dtype=np.intp)
    ends = np.searchsorted(sx1, sx2 - iou_threshold * width, side="left")
    counts = np.maximum(ends - index - 1, 0)
    starts = np.cumsum(counts) - counts
    total = int(starts[-1] + counts[-1]) if n else 0
    empty = np.zeros(0, np.int64)
    if total == 0:
        return empty, empty
    # Candidate k of box i is box i + 1 + (k - starts[i]): one repeat builds every index.
    second = np.arange(total, dtype=np.intp)
    second += np.repeat(index + 1 - starts, counts)
    # Both boxes overlap in x by more than threshold * width_j: x2_i - x1_j > t * w_j.
    iw = np.repeat(sx2, counts)
    np.minimum(iw, sx2[second], out=iw)
    iw -= sx1[second]
    near = iw > iou_threshold * width[second]
    if iou_threshold == 0:
        near &= iw > 0
    hits = np.flatnonzero(near)
    second, inter = second[hits], iw[hits]   # their x overlap (x1 sorted), > 0 past the filter
    first = np.searchsorted(starts, hits, side="right") - 1
    inter *= overlap(sy1, sy2, sy1, sy2, first, second)
    areas = area((sx1, sy1, sx2, sy2))
    hit = iou_above(inter, areas[first], areas[second], iou_threshold)
    a, b = order[first[hit]], order[second[hit]]
    return np.minimum(a, b), np.maximum(a, b)


class _XSorted:
    """Boxes (known by ``ids``) sorted by x1 once, for rounds that each ask which of them a
    few boxes overlap."""

    def __init__(self, boxes: np.ndarray, ids: np.ndarray):
        self.ids = ids
        # Sorted by x1 rounded to float32 (two radix passes instead of a comparison sort);
        # windows are searched in those keys, widened to whole runs of equal keys, and every
        # pair is then tested on the exact float64 values.
        x1 = boxes[:, 0].astype(np.float32)
        self.order = _radix_order(x1)
        self.keys = x1[self.order]
        self.sorted_ids = ids[self.order]
        self.x1, self.y1, self.x2, self.y2 = (np.ascontiguousarray(boxes[self.order, k])
                                              for k in range(4))
        self.areas = area((self.x1, self.y1, self.x2, self.y2))
        self.widest = float(np.max(self.x2 - self.x1, initial=0))

    def pairs(self, by: np.ndarray, iou_threshold: float, among: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (i, id) where box ``by[i]`` ([K, 4]) overlaps an indexed box with IoU above
        the threshold; ``among`` (bool, indexed by id) limits the indexed boxes looked at.
        Box j can only if x1_j lies in (x1 + t * w - reach, x2 - t * w) of by's box, where
        reach bounds w_j: the widest box, and w / t (their x overlap exceeds t * w_j yet
        cannot exceed w), which narrows the window for small boxes among large ones."""
        empty = np.zeros(0, np.int64)
        bx1, by1, bx2, by2 = (np.ascontiguousarray(by[:, k]) for k in range(4))
        width = np.maximum(bx2 - bx1, 0)
        margin = iou_threshold * width
        # (a hair wider than w / t, so that rounding never drops a box on the bound)
        reach = np.minimum(width * (1.0 + 1e-6) / iou_threshold + 1e-6, self.widest) \
            if iou_threshold > 0 else self.widest
        # Rounding to float32 keeps order (a < b gives f(a) <= f(b)), so every x1 inside the
        # window has its key between the rounded bounds, equal keys included.
        lo = np.searchsorted(self.keys, (bx1 + margin - reach).astype(np.float32), side="left")
        hi = np.searchsorted(self.keys, (bx2 - margin).astype(np.float32), side="right")
        counts = np.maximum(hi - lo, 0)
        total = int(counts.sum())
        if total == 0:
            return empty, empty
        starts = np.cumsum(counts) - counts
        pos = np.arange(total) + np.repeat(lo - starts, counts)
        i = np.repeat(np.arange(len(by)), counts)
        if among is not None:
            open_ = among[self.sorted_ids[pos]]
            pos, i = pos[open_], i[open_]
        mine = (bx1, by1, bx2, by2)
        inter = intersection(mine, (self.x1, self.y1, self.x2, self.y2), i, pos)
        hit = iou_above(inter, area(mine)[i], self.areas[pos], iou_threshold)
        return i[hit], self.sorted_ids[pos[hit]]


def _greedy_within(ranked: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS of boxes already in rank order: bool keep mask."""
    if len(ranked) <= DENSE_ROUND:
        a, b = _pairs_dense(ranked, iou_threshold)
    else:
        a, b = overlapping_pairs(ranked, iou_threshold)  # a outranks b
    return _keep_unsuppressed(len(ranked), a, b)


def _greedy_dense(ranked: np.ndarray, class_ids: np.ndarray, iou_threshold: float
                  ) -> np.ndarray:
    """Greedy NMS of a few boxes in rank order, every pair tested: bool keep mask."""
    a, b = _pairs_dense(ranked, iou_threshold, class_ids)
    return _keep_unsuppressed(len(ranked), a, b)


def _pairs_dense(ranked: np.ndarray, iou_threshold: float,
                 class_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a < b) of a few boxes whose IoU exceeds the threshold (and whose classes agree,
    when given), by testing all n (n - 1) / 2 of them: one gather per pair beats both an
    n x n matrix and a sweep's bookkeeping at this size."""
    a, b = _upper_pairs(len(ranked))
    if class_ids is not None:
        same = class_ids[a] == class_ids[b]
        a, b = a[same], b[same]
    hit = iou_above_pairs(ranked, a, b, iou_threshold)
    return a[hit], b[hit]


@lru_cache(maxsize=32)
def _upper_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every index pair (a < b) below n, row by row (n at most DENSE_MAX: 130 kB)."""
    a, b = (np.asarray(v, np.intp) for v in np.triu_indices(n, 1))
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def _keep_unsuppressed(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Keep mask of n ranked boxes where box a[k] (better) overlaps box b[k] (worse): the
    fixed point of greedy NMS's rule, iterated from "keep all"."""
    keep = np.ones(n, bool)
    for _ in range(MAX_FIXED_POINT_ROUNDS):
        kept_next = np.ones(n, bool)
        kept_next[b[keep[a]]] = False
        if not (kept_next ^ keep).any():
            break
        keep = kept_next
    return keep


def _rank(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, ties by index."""
    if len(scores) <= DENSE_MAX:   # few: one stable sort costs less than building the keys
        return np.argsort(np.negative(scores), kind="stable")   # -0.0 ties +0.0 here
    return _radix_order(np.negative(scores, dtype=np.float32))


def _radix_order(values: np.ndarray) -> np.ndarray:
    """Stable ascending order of float32 ``values`` (-0 and +0 alike): unsigned 32-bit keys in
    the same order, sorted by two stable 16-bit passes, low half then high half."""
    bits = (values + np.float32(0.0)).view(np.int32)   # -0.0 + 0.0 is +0.0
    # Negative floats: flip the magnitude bits, so that larger magnitudes sort first; then
    # flip the sign bit, so that negatives sort below positives as unsigned integers.
    key = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).view(np.uint32) ^ np.uint32(0x80000000)
    order = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    return order[np.argsort((key[order] >> 16).astype(np.uint16), kind="stable")]


def _apart_by_class(xyxy: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Shift each class to its own stretch of the x axis: no two classes can overlap then."""
    span = float(xyxy[:, [0, 2]].max() - xyxy[:, [0, 2]].min()) + 1.0
    if len(class_ids) and 0 <= class_ids.min() and class_ids.max() < SMALL_CLASS_IDS:
        dense = class_ids   # already small: no need to renumber (which sorts)
    else:
        _, dense = np.unique(class_ids, return_inverse=True)
    shifted = xyxy.copy()
    shifted[:, [0, 2]] += (dense.astype(np.float64) * 2 * span)[:, None]
    return shifted


def _check_boxes(xyxy, scores, class_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes as float64 [N, 4] (class offsets must not cost box precision), scores float32
    [N], class ids int64 [N]; a wrong shape or a NaN or inf is an error."""
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
