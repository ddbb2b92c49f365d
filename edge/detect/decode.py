"""Decoding the detector head: boxes and scores from its grids, per-class thresholds, and
mapping tiles back to the image they were cut from, merged by class-aware NMS
(``edge.detect.nms``). Pure, vectorised NumPy: no Python loop over boxes or grid cells.

Head contract (``models/README.md``): one tensor ``[N, 4 + C]`` per image, cells ordered stride
by stride and row-major within a stride; columns ``l, t, r, b`` are non-negative distances from
the cell centre to the box sides in units of the stride, then ``C`` class logits.

Most parcels are clear, so the runtime's path (``decode_tiles``) compares the raw logits with
the thresholds' logits first and decodes only the cells that pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache

import numpy as np

from edge.detect.boxes import clip_to_image
from edge.detect.nms import batched_nms, box_vote
from edge.types import Detections

LOGIT_MARGIN = 0.05   # the logit pre-filter passes a hair more than the thresholds (far above
                      # float32 sigmoid error), so the exact score test still decides


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


def passing(found: Detections, thresholds: np.ndarray | float, classes: int) -> np.ndarray:
    """Mask of the detections whose score reaches their class's threshold (as ``select``)."""
    thr = _class_thresholds(thresholds, classes)
    return found.score >= thr[found.class_id]


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
    clip_to_image(xyxy, image_shape)


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
