"""Box maths over plain arrays: area, intersection, IoU, clipping. The one place the runtime
computes IoU: NMS and box voting (``edge.detect.nms``) and the accuracy metrics
(``edge.tools.metrics``) call it.

Boxes are ``xyxy`` in pixels, continuous (no +1, as COCO); a box with ``x2 <= x1`` or
``y2 <= y1`` has area 0 and overlaps nothing. ``area`` and ``intersection`` take boxes as
columns ``(x1, y1, x2, y2)``: four arrays, or the ``.T`` of an ``[N, 4]`` array, so that NMS
hands over the sorted columns it keeps as they are. IoU comes in two forms: ``box_iou``
divides, for metrics that need its value; ``iou_above`` compares it with a threshold without
a division, for NMS, which tests millions of pairs: its expressions let NumPy reuse large
temporaries rather than map fresh pages, and still cost little on a handful of pairs.
"""

from __future__ import annotations

import numpy as np

# x1, y1, x2, y2: four arrays of one shape, or the .T of boxes [N, 4]
Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | np.ndarray


def area(boxes: Columns) -> np.ndarray:
    """Area (px²) of boxes given by their columns ``(x1, y1, x2, y2)``; 0 if degenerate."""
    x1, y1, x2, y2 = boxes
    return np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)


def intersection(a: Columns, b: Columns, i=..., j=...) -> np.ndarray:
    """Intersection area (px²) of boxes given by their columns ``(x1, y1, x2, y2)``: of
    ``a[i[k]]`` and ``b[j[k]]`` for index arrays ``i``, ``j``; without them, of ``a[k]`` and
    ``b[k]``, broadcasting (``[N, 1]`` columns against ``[1, M]`` give every pair)."""
    return overlap(a[0], a[2], b[0], b[2], i, j) * overlap(a[1], a[3], b[1], b[3], i, j)


def overlap(lo_a: np.ndarray, hi_a: np.ndarray, lo_b: np.ndarray, hi_b: np.ndarray,
            i=..., j=...) -> np.ndarray:
    """Length (px) shared by the spans ``[lo_a, hi_a][i]`` and ``[lo_b, hi_b][j]``, 0 where
    they are apart: a box intersection along one axis. The pairs are gathered one operand at a
    time, so that millions of them keep few arrays alive."""
    length = np.minimum(hi_a[i], hi_b[j]) - np.maximum(lo_a[i], lo_b[j])
    return np.maximum(length, 0, out=length)


def iou_above(inter: np.ndarray, area_a: np.ndarray, area_b: np.ndarray,
              iou_threshold: float) -> np.ndarray:
    """Bool per pair: IoU above the threshold, from the pair's intersection and areas.
    ``inter > t * union`` needs no division; a pair that does not touch never passes, not
    even at threshold 0."""
    return (inter > iou_threshold * (area_a + area_b - inter)) & (inter > 0)


def iou_above_pairs(xyxy: np.ndarray, a: np.ndarray, b: np.ndarray, iou_threshold: float
                    ) -> np.ndarray:
    """Bool per index pair ``(a[k], b[k])`` of boxes [N, 4]: IoU above the threshold."""
    columns = tuple(xyxy.T)   # views: only the gathers copy
    inter = intersection(columns, columns, a, b)
    areas = area(columns)
    return iou_above(inter, areas[a], areas[b], iou_threshold)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a [N, 4]`` and ``b [M, 4]``: float64 ``[N, M]``; a pair with
    zero union has IoU 0."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    inter = intersection(a.T[:, :, None], b.T[:, None, :])   # [N, 1] against [1, M]
    union = area(a.T)[:, None] + area(b.T)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def clip_to_image(xyxy: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """In place: boxes [N, 4] clipped to an image of ``(height, width)`` px; returns them."""
    h, w = image_shape
    np.maximum(xyxy, 0, out=xyxy)
    np.minimum(xyxy, np.array([w, h, w, h], xyxy.dtype), out=xyxy)
    return xyxy
