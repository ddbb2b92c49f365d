"""Post-processing core: decode the head on its grids, per-class thresholds, class-aware NMS,
tile merging, and mapping boxes back to parcel pixels. Pure, vectorised NumPy: no Python loop
over boxes or grid cells.

Head contract (``models/README.md``): one tensor ``[N, 4 + C]`` per image, cells ordered stride
by stride and row-major within a stride; columns ``l, t, r, b`` are non-negative distances from
the cell centre to the box sides in units of the stride, then ``C`` class logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache

import numpy as np

from edge.types import Detections

MAX_FIXED_POINT_ROUNDS = 10_000  # a chain of N boxes each suppressing the next needs N rounds
BAND_MIN_BOXES = 256            # below this one sweep is cheaper than banding
LOGIT_MARGIN = 0.05              # decode_select's pre-filter, in logits
SMALL_CLASS_IDS = 4096          # class ids below this shift boxes apart as they are
DENSE_MAX = 128                 # up to this many boxes, testing every pair beats NMS rounds
DENSE_ROUND = 64                # ... and beats a sweep within a round up to this many
DENSE_VOTE_PAIRS = 8192         # box voting tests every (kept, box) pair up to this many


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


def _check_head(raw: np.ndarray, cells: int, input_size, strides, tiles: int | None = None
                ) -> None:
    """One tile's head output [cells, 4 + C], or ``tiles`` of them [tiles, cells, 4 + C]."""
    lead = () if tiles is None else (tiles,)
    if raw.shape[:-1] != (*lead, cells) or raw.shape[-1] < 5:
        raise ValueError(f"head output must be [{', '.join(map(str, (*lead, cells)))}, "
                         f"4 + classes] for input {tuple(input_size)} and strides "
                         f"{tuple(strides)}, got {raw.shape}")
    if not np.isfinite(raw).all():
        bad = int(np.count_nonzero(~np.isfinite(raw)))
        raise ValueError(f"head output holds {bad} non-finite values (NaN or inf)")


def decode(raw: np.ndarray, input_size: tuple[int, int], strides: Sequence[int]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Head output [N, 4 + C] -> boxes xyxy float32 [N, 4] (input pixels), scores [N, C]."""
    raw = np.asarray(raw)
    anchors, reach = _cell_boxes(tuple(input_size), tuple(strides))
    _check_head(raw, len(anchors), input_size, strides)
    boxes = np.maximum(raw[:, :4], 0) * reach + anchors
    return boxes.astype(np.float32), sigmoid(raw[:, 4:].astype(np.float32))


def select(boxes: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | float,
           max_candidates: int = 30_000) -> Detections:
    """Every (cell, class) whose score reaches its class threshold, best ``max_candidates``."""
    thr = _class_thresholds(thresholds, scores.shape[1])
    cells, classes = np.nonzero(scores >= thr[None, :])
    conf = scores[cells, classes]
    if len(conf) > max_candidates:
        top = np.argpartition(-conf, max_candidates - 1)[:max_candidates]
        cells, classes, conf = cells[top], classes[top], conf[top]
    return Detections(boxes[cells], conf, classes)


def _class_thresholds(thresholds: np.ndarray | float, classes: int) -> np.ndarray:
    """One score threshold, or one per class, as float32 [classes]."""
    thr = np.asarray(thresholds, np.float32)
    if thr.ndim == 0:
        return np.full(classes, thr)
    if thr.shape != (classes,):
        raise ValueError(f"thresholds must be one value or one per class ({classes}), got "
                         f"shape {thr.shape}")
    return thr


@lru_cache(maxsize=16)
def _logit_bounds(thresholds: bytes, cells: int) -> np.ndarray:
    """Bounds for one tile's head [cells, 4 + C] from float32 class thresholds (as bytes, to
    be cached): box columns inf; each class its threshold's logit less a margin far above
    float32 sigmoid error; at or below 0 every cell passes, at or above 1 only logits the
    sigmoid rounds up to 1. One row per cell: comparing two whole contiguous arrays is several
    times faster than broadcasting a row of a dozen values down the head."""
    thr = np.frombuffer(thresholds, np.float32)
    p = np.clip(thr.astype(np.float64), 1e-12, 1 - 1e-12)
    bound = np.where(thr <= 0, -np.inf, np.where(thr >= 1, 15.0,
                                                 np.log(p) - np.log1p(-p) - LOGIT_MARGIN))
    row = np.concatenate([np.full(4, np.inf), bound]).astype(np.float32)
    table = np.ascontiguousarray(np.broadcast_to(row, (cells, len(row))))
    table.setflags(write=False)
    return table


def decode_select(raw: np.ndarray, input_size: tuple[int, int], strides: Sequence[int],
                  thresholds: np.ndarray | float, max_candidates: int = 30_000) -> Detections:
    """``select(*decode(raw, ...), thresholds)`` without decoding every cell: logits are
    compared with the thresholds' logits first (a hair below, so the exact score test still
    decides), and only the cells that pass are turned into boxes and scores."""
    raw = np.asarray(raw)
    _check_head(raw, len(grid(tuple(input_size), tuple(strides))[0]), input_size, strides)
    _, boxes, conf, classes = _decode_passing(raw[None], input_size, strides, thresholds,
                                              max_candidates)
    return Detections(boxes, conf, classes)


def decode_tiles(raw: np.ndarray, offsets: np.ndarray, scale: float,
                 image_shape: tuple[int, int], input_size: tuple[int, int],
                 strides: Sequence[int], thresholds: np.ndarray | float,
                 max_candidates: int = 30_000) -> Detections:
    """Every tile's head output [B, N, 4 + C] at once -> the candidates of the whole image, in
    its own pixels: ``decode_select`` per tile, then ``to_parcel`` with that tile's offset
    (float32 [B, 2], scaled-image pixels). ``max_candidates`` caps the image, not each tile."""
    raw = np.asarray(raw)
    cells = len(grid(tuple(input_size), tuple(strides))[0])
    _check_head(raw, cells, input_size, strides, tiles=len(offsets))
    tile, boxes, conf, classes = _decode_passing(raw, input_size, strides, thresholds,
                                                 max_candidates)
    if len(tile):
        shift = np.asarray(offsets, np.float32)[:, [0, 1, 0, 1]]   # per tile, then per box
        _to_image(boxes, shift[tile], scale, image_shape)
    return Detections(boxes, conf, classes)


def _decode_passing(raw: np.ndarray, input_size, strides, thresholds, max_candidates):
    """(tile, boxes xyxy float32 in input pixels, scores, classes) of the (tile, cell, class)
    whose score reaches its threshold, of head outputs [B, N, 4 + C] already checked."""
    cols = raw.shape[-1]
    thr = _class_thresholds(thresholds, cols - 4)
    rows = raw.reshape(-1, cols)
    # One pass over the whole contiguous head (box columns never pass: their bound is inf);
    # one tile's table serves every tile.
    bounds = _logit_bounds(thr.tobytes(), raw.shape[1])
    flat = np.flatnonzero(raw[0] >= bounds if len(raw) == 1 else raw >= bounds)
    if len(flat) == 0:   # most parcels are clear: nothing more to do for them
        return (np.zeros(0, np.intp), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                np.zeros(0, np.int64))
    row, column = np.divmod(flat, cols)
    classes = column - 4
    conf = sigmoid(rows[row, column].astype(np.float32))
    sure = conf >= thr[classes]
    if not sure.all():
        row, classes, conf = row[sure], classes[sure], conf[sure]
    if len(conf) > max_candidates:
        top = np.argpartition(-conf, max_candidates - 1)[:max_candidates]
        row, classes, conf = row[top], classes[top], conf[top]
    tile, cell = np.divmod(row, raw.shape[1])
    anchors, reach = _cell_boxes(tuple(input_size), tuple(strides))
    boxes = np.maximum(rows[row, :4], 0) * reach[cell]
    boxes += anchors[cell]
    return tile, boxes.astype(np.float32, copy=False), conf, classes


@cache
def _cell_boxes(input_size: tuple[int, int], strides: tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, float32 [N, 4]: its centre as (x, y, x, y), and its stride signed as
    (-s, -s, s, s), so that a box is centre + max(ltrb, 0) * signed stride."""
    centres, cell_strides = grid(input_size, strides)
    anchors = np.concatenate([centres, centres], axis=1)
    reach = cell_strides[:, None] * np.array([-1, -1, 1, 1], np.float32)
    for a in (anchors, reach):
        a.setflags(write=False)
    return anchors, reach


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
    """All pairs (a, b), a < b, whose IoU exceeds the threshold.

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
    width, height = np.maximum(sx2 - sx1, 0), np.maximum(sy2 - sy1, 0)
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
    second, iw = second[hits], iw[hits]
    first = np.searchsorted(starts, hits, side="right") - 1
    ih = np.minimum(sy2[first], sy2[second]) - np.maximum(sy1[first], sy1[second])
    inter = iw * np.maximum(ih, 0)
    union = width[first] * height[first] + width[second] * height[second] - inter
    hit = (inter > iou_threshold * union) & (inter > 0)  # IoU > threshold, no division
    a, b = order[first[hit]], order[second[hit]]
    return np.minimum(a, b), np.maximum(a, b)


def _greedy_within(ranked: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS of boxes already in rank order: bool keep mask."""
    if len(ranked) <= DENSE_ROUND:
        a, b = _pairs_dense(ranked, iou_threshold)
    else:
        a, b = overlapping_pairs(ranked, iou_threshold)  # a outranks b
    return _keep_unsuppressed(len(ranked), a, b)


def _keep_unsuppressed(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Keep mask of n ranked boxes where box a[k] (better) overlaps box b[k] (worse).

    Greedy NMS keeps a box unless a kept, better box overlaps it. That rule has one fixed
    point; iterating it from "keep all" settles one more rank of the suppression chain each
    round, so rounds = the longest chain, a handful in practice."""
    keep = np.ones(n, bool)
    for _ in range(MAX_FIXED_POINT_ROUNDS):
        kept_next = np.ones(n, bool)
        kept_next[b[keep[a]]] = False
        if not (kept_next ^ keep).any():
            break
        keep = kept_next
    return keep


CHUNK = 64      # boxes of the first round; each further round takes twice as many
SPARSE = 0.1    # a round that suppresses less than this share of the rest ends the rounds


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: indices kept, by descending score (ties: lower index first).

    Boxes go in rank order, in rounds: the best few are settled among themselves, then every
    lower box that a box kept in that round overlaps is dropped at once. Detector output is
    dense clusters, each settled by its best box, so a few small rounds clear most of it. When
    a round drops little (boxes far apart), the rest is settled in one banded sweep. Loops
    run over rounds, never over boxes."""
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
        self.area = np.maximum(self.x2 - self.x1, 0) * np.maximum(self.y2 - self.y1, 0)
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
        iw = np.minimum(bx2[i], self.x2[pos])
        iw -= np.maximum(bx1[i], self.x1[pos])
        ih = np.minimum(by2[i], self.y2[pos])
        ih -= np.maximum(by1[i], self.y1[pos])
        np.maximum(iw, 0, out=iw)
        np.maximum(ih, 0, out=ih)
        inter = iw
        inter *= ih
        union = (width * np.maximum(by2 - by1, 0))[i]
        union += self.area[pos]
        union -= inter
        hit = (inter > iou_threshold * union) & (inter > 0)
        return i[hit], self.sorted_ids[pos[hit]]


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
    if len(xyxy) <= DENSE_MAX:
        order = _rank(scores)
        return order[_greedy_dense(xyxy[order], class_ids[order], iou_threshold)]
    return nms(_apart_by_class(xyxy, class_ids), scores, iou_threshold)


def _rank(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score, ties by index.

    The negated float32 scores become unsigned 32-bit keys in the same order (-0 and +0
    alike), sorted by two stable 16-bit passes, low half then high half: NumPy sorts 16-bit
    integers stably by radix, in linear time: twice as fast as sorting 64-bit keys (score,
    index) at 5,000 scores, three times at 20,000."""
    if len(scores) <= DENSE_MAX:   # few: one stable sort costs less than building the keys
        return np.argsort(np.negative(scores), kind="stable")   # -0.0 ties +0.0 here
    return _radix_order(np.negative(scores, dtype=np.float32))


def _radix_order(values: np.ndarray) -> np.ndarray:
    """Stable ascending order of float32 ``values`` (-0 and +0 alike)."""
    bits = (values + np.float32(0.0)).view(np.int32)   # -0.0 + 0.0 is +0.0
    # Negative floats: flip the magnitude bits, so that larger magnitudes sort first; then
    # flip the sign bit, so that negatives sort below positives as unsigned integers.
    key = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).view(np.uint32) ^ np.uint32(0x80000000)
    order = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    return order[np.argsort((key[order] >> 16).astype(np.uint16), kind="stable")]


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
    hit = _overlap(ranked, a, b, iou_threshold)
    return a[hit], b[hit]


def _overlap(boxes: np.ndarray, a: np.ndarray, b: np.ndarray, iou_threshold: float
             ) -> np.ndarray:
    """Bool per pair (a[k], b[k]) of ``boxes``: IoU above the threshold."""
    x1, y1, x2, y2 = boxes.T   # column views: the gathers below need no copies first
    iw = np.minimum(x2[a], x2[b]) - np.maximum(x1[a], x1[b])
    ih = np.minimum(y2[a], y2[b]) - np.maximum(y1[a], y1[b])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    return (inter > iou_threshold * (area[a] + area[b] - inter)) & (inter > 0)


@lru_cache(maxsize=32)
def _upper_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every index pair (a < b) below n, row by row (n at most DENSE_MAX: 130 kB)."""
    a, b = (np.asarray(v, np.intp) for v in np.triu_indices(n, 1))
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


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


# --- tiles and parcels --------------------------------------------------------------------------

def to_parcel(det: Detections, offset_xy, scale: float, parcel_shape) -> Detections:
    """Map boxes from model-input pixels to parcel pixels: ``(xy - offset) / scale``, clipped."""
    xyxy = det.xyxy.copy()
    _to_image(xyxy, -np.asarray(offset_xy, np.float32)[[0, 1, 0, 1]], scale, parcel_shape)
    return Detections(xyxy, det.score, det.class_id)


def _to_image(xyxy: np.ndarray, shift: np.ndarray, scale: float, image_shape) -> None:
    """In place: float32 boxes ``(xyxy + shift) / scale``, clipped to the image."""
    xyxy += shift
    xyxy /= np.float32(scale)
    h, w = image_shape
    np.maximum(xyxy, 0, out=xyxy)
    np.minimum(xyxy, np.array([w, h, w, h], np.float32), out=xyxy)


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
        hit = _overlap(xyxy, kept[i], j, iou_threshold) | (kept[i] == j)
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


def merge_tiles(parts: Sequence[Detections], iou_threshold: float,
                vote: bool = False) -> Detections:
    """Join detections already mapped to parcel pixels from overlapping tiles, one per object:
    class-aware NMS over all of them (an object seen whole in one tile outranks its cut-off
    copy in the next, whose IoU with it is high because tiles overlap by more than an object).
    ``vote`` refines each kept box by weighted box fusion (``box_vote``)."""
    found = [p for p in parts if len(p)]
    if not found:
        return Detections.empty()
    merged = found[0] if len(found) == 1 else Detections.merge(found)
    kept = batched_nms(merged.xyxy, merged.score, merged.class_id, iou_threshold)
    out = merged[kept]
    if vote:
        out.xyxy = box_vote(merged.xyxy, merged.score, merged.class_id, kept, iou_threshold)
    return out
