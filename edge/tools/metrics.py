"""Object-detection accuracy the COCO way: greedy matching, 101-point interpolated AP, mAP50:95.

Agrees with pycocotools / faster-coco-eval for boxes with ``iscrowd=0``, area range "all" and
no per-image cap on detections. NumPy only, no torch: the runtime and the replay tools use it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from edge.detect.boxes import box_iou
from edge.types import Detections

# Built the way pycocotools builds them, so thresholds are the very same floats
# (0.7000000000000001, not 0.7) and recall comparisons at the points' edges agree.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _match(det: Detections, truth: Detections, thresholds: np.ndarray) -> np.ndarray:
    """True-positive flags ``[D, T]`` of each detection at each IoU threshold ``[T]``."""
    tp = np.zeros((len(det), len(thresholds)), bool)
    iou = box_iou(det.xyxy, truth.xyxy)
    iou[det.class_id[:, None] != truth.class_id[None, :]] = -1.0  # only GT of its own class
    can_match = (iou >= thresholds.min()).any(axis=1)
    taken = np.zeros((len(thresholds), len(truth)), bool)
    rows = np.arange(len(thresholds))
    # Greedy is sequential in score order; the loop skips detections that overlap nothing
    # (most false positives) and settles all thresholds of one detection at once.
    for d in np.argsort(-det.score, kind="stable"):
        if not can_match[d]:
            continue
        free = np.where(taken | (iou[d] < thresholds[:, None]), -np.inf, iou[d])  # [T, G]
        # Of GTs with equal IoU COCO keeps the last; argmax over the reversed row agrees.
        best = free.shape[1] - 1 - np.argmax(free[:, ::-1], axis=1)
        hit = np.isfinite(free[rows, best])
        tp[d] = hit
        taken[rows[hit], best[hit]] = True
    return tp


def match_image(det_xyxy, det_scores, det_classes, gt_xyxy, gt_classes,
                iou_threshold: float = 0.5) -> np.ndarray:
    """COCO greedy matching on one image: bool ``[D]``, True where a detection is a true positive.

    det_xyxy ``[D, 4]`` and gt_xyxy ``[G, 4]`` in px; scores ``[D]``; classes int ``[D]``/``[G]``.
    Detections go in descending score; each takes the unmatched GT of its class with the
    highest IoU >= iou_threshold. A second detection of a matched GT is a false positive."""
    det = Detections(det_xyxy, det_scores, det_classes)
    truth = Detections(gt_xyxy, np.ones(len(gt_classes), np.float32), gt_classes)
    return _match(det, truth, np.array([iou_threshold], np.float64))[:, 0]


def _interpolated_ap(score: np.ndarray, tp: np.ndarray, n_gt: int) -> np.ndarray:
    """COCO AP of one class at each threshold: float ``[T]``, NaN without GT.

    score ``[D]``; tp bool ``[D, T]``. AP is the mean, over 101 recall points, of the
    precision envelope (best precision at any recall at or above the point); 0 past the
    highest recall reached."""
    if n_gt == 0:
        return np.full(tp.shape[1], np.nan)
    # Stable: equal scores keep the order images were added, as COCO keeps image order.
    order = np.argsort(-score, kind="stable")
    tp_sum = np.cumsum(tp[order], axis=0)
    recall = tp_sum / n_gt
    precision = tp_sum / np.arange(1, len(order) + 1)[:, None]
    envelope = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
    ap = np.zeros(tp.shape[1])
    for t in range(tp.shape[1]):
        first = np.searchsorted(recall[:, t], RECALL_POINTS, side="left")  # rank reaching each
        reached = first < len(order)
        ap[t] = envelope[first[reached], t].sum() / len(RECALL_POINTS)
    return ap


def _mean_without_nan(values) -> float:
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


class OperatingPoint(NamedTuple):
    """A score threshold for one class and what keeping detections at or above it gives."""

    threshold: float
    recall: float
    precision: float
    reached: bool      # False: the target recall is out of reach even at the lowest score


def threshold_for_recall(score: np.ndarray, tp: np.ndarray, n_gt: int,
                         target: float) -> OperatingPoint | None:
    """The highest score threshold at which the kept detections find ``target`` of the
    ``n_gt`` objects (score ``[D]``, tp bool ``[D]``). Where no threshold gets there, the
    one that keeps the best recall reached; None when there is nothing to find or nothing
    found (no threshold then helps)."""
    if not 0 < target <= 1:
        raise ValueError(f"target recall must lie in (0, 1], got {target}")
    found = int(np.count_nonzero(tp))
    if n_gt == 0 or found == 0:
        return None
    order = np.argsort(-score, kind="stable")
    hits = np.cumsum(tp[order])
    need = min(int(np.ceil(target * n_gt - 1e-9)), found)
    threshold = float(score[order][np.searchsorted(hits, need)])
    kept = score >= threshold            # ties with the threshold are kept too
    caught = int(np.count_nonzero(tp[kept]))
    return OperatingPoint(threshold, caught / n_gt, caught / int(kept.sum()),
                          caught >= target * n_gt - 1e-9)


class PrecisionRecall(NamedTuple):
    """Of one class at one score threshold; NaN where the ratio is 0/0."""

    precision: float
    recall: float
    true_positives: int
    detections: int
    ground_truth: int


class Accumulator:
    """Matches detections image by image, then reports AP over the whole set.

    Per detection it keeps score, class and its true-positive flag at each of
    ``IOU_THRESHOLDS``; per class, the GT count. Every query is computed from those."""

    def __init__(self) -> None:
        self.n_images = 0
        self._scores = [np.zeros(0, np.float32)]
        self._classes = [np.zeros(0, np.int64)]
        self._tp = [np.zeros((0, len(IOU_THRESHOLDS)), bool)]
        self._gt_classes = [np.zeros(0, np.int64)]

    def add(self, detections: Detections, truth: Detections) -> None:
        """One image: its detections and its ground truth (``truth.score`` is not used)."""
        self.n_images += 1
        self._scores.append(detections.score)
        self._classes.append(detections.class_id)
        self._tp.append(_match(detections, truth, IOU_THRESHOLDS))
        self._gt_classes.append(truth.class_id)

    def gt_counts(self) -> dict[int, int]:
        ids, counts = np.unique(np.concatenate(self._gt_classes), return_counts=True)
        return {int(k): int(n) for k, n in zip(ids, counts, strict=True)}

    def _per_class(self):
        """(class id, scores [D], tp [D, T], GT count) of every class seen in GT or detections."""
        score, cls, tp = (np.concatenate(x) for x in (self._scores, self._classes, self._tp))
        gt = self.gt_counts()
        for k in np.union1d(cls, np.array(list(gt), np.int64)):
            mine = cls == k
            yield int(k), score[mine], tp[mine], gt.get(int(k), 0)

    def _ap_table(self) -> dict[int, np.ndarray]:
        return {k: _interpolated_ap(s, tp, n) for k, s, tp, n in self._per_class()}

    def average_precision(self, iou: float = 0.5) -> dict[int, float]:
        """Per class AP at one of ``IOU_THRESHOLDS``; NaN for a class without GT."""
        t = _threshold_index(iou)
        return {k: float(ap[t]) for k, ap in self._ap_table().items()}

    def average_precision_50_95(self) -> dict[int, float]:
        """Per class AP averaged over IoU 0.50:0.05:0.95 (COCO's "AP")."""
        return {k: float(ap.mean()) for k, ap in self._ap_table().items()}

    def mean_ap(self, iou: float = 0.5) -> float:
        """Mean AP over classes with GT; NaN when no class has any."""
        return _mean_without_nan(self.average_precision(iou).values())

    def mean_ap_50_95(self) -> float:
        return _mean_without_nan(self.average_precision_50_95().values())

    def precision_recall_at(self, score_threshold: float,
                            iou: float = 0.5) -> dict[int, PrecisionRecall]:
        """Per class precision and recall keeping detections with score >= score_threshold."""
        t = _threshold_index(iou)
        result = {}
        for k, score, tp, n_gt in self._per_class():
            kept = score >= score_threshold
            hits, n_det = int(tp[kept, t].sum()), int(kept.sum())
            result[k] = PrecisionRecall(hits / n_det if n_det else float("nan"),
                                        hits / n_gt if n_gt else float("nan"), hits, n_det, n_gt)
        return result

    def operating_points(self, target: float,
                         iou: float = 0.5) -> dict[int, OperatingPoint | None]:
        """Per class the highest score threshold that still finds ``target`` of its objects."""
        t = _threshold_index(iou)
        return {k: threshold_for_recall(score, tp[:, t], n_gt, target)
                for k, score, tp, n_gt in self._per_class()}

    def summary(self, class_names: list[str]) -> dict:
        """JSON-ready report: mAP50, mAP50:95 and per class AP50, AP50:95 and GT count."""
        ap50, ap = self.average_precision(0.5), self.average_precision_50_95()
        unknown = sorted(k for k in ap if not 0 <= k < len(class_names))
        if unknown:
            raise ValueError(f"class ids {unknown} have no name in class_names "
                             f"({len(class_names)} names: {class_names})")
        gt = self.gt_counts()
        nan = float("nan")
        return {
            "images": self.n_images,
            "mAP50": _mean_without_nan(ap50.values()),
            "mAP50_95": _mean_without_nan(ap.values()),
            "classes": {name: {"AP50": ap50.get(k, nan), "AP50_95": ap.get(k, nan),
                               "gt": gt.get(k, 0)}
                        for k, name in enumerate(class_names)},
        }


def confusion(det: Detections, truth: Detections, classes: int, score_threshold: float,
              iou_threshold: float = 0.5) -> np.ndarray:
    """What the model called each labelled object of one image: int64 ``[C + 1, C + 1]``.

    Of the detections scoring at least ``score_threshold``, each object is credited to the
    class of the best-scoring one that overlaps it with IoU >= ``iou_threshold``, whatever its
    class (row: the object's class; column: the class found), or to the last column when none
    does (missed). The last row counts detections that overlap no object at all (false alarms).
    Unlike AP, a detection may answer for several objects: the table asks what each object was
    seen as, not how many boxes were right."""
    det = det[det.score >= score_threshold]
    for ids in (det.class_id, truth.class_id):
        if len(ids) and not (0 <= ids.min() and ids.max() < classes):
            raise ValueError(f"class ids must lie in [0, {classes}), got {ids.min()} to "
                             f"{ids.max()}")
    overlap = box_iou(truth.xyxy, det.xyxy) >= iou_threshold                  # [G, D]
    seen_as = np.full(len(truth), classes, np.int64)
    found = overlap.any(axis=1)
    if found.any():
        # Best score among the overlapping detections; ties go to the earlier detection.
        best = np.argmax(np.where(overlap[found], det.score[None, :], -np.inf), axis=1)
        seen_as[found] = det.class_id[best]
    alone = ~overlap.any(axis=0)
    cells = np.concatenate([truth.class_id * (classes + 1) + seen_as,
                            classes * (classes + 1) + det.class_id[alone]])
    return np.bincount(cells, minlength=(classes + 1) ** 2).reshape(classes + 1, classes + 1)


def _threshold_index(iou: float) -> int:
    hit = np.flatnonzero(np.isclose(IOU_THRESHOLDS, iou))
    if len(hit) == 0:
        raise ValueError(f"iou must be one of {[round(float(t), 2) for t in IOU_THRESHOLDS]}, "
                         f"got {iou}")
    return int(hit[0])


def json_ready(value):
    """NaN (a ratio with nothing to count, the AP of a class with no objects) as null, in
    nested dicts and lists: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value
