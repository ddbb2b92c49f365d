"""COCO detection metrics: hand-worked cases, then a cross-check against faster-coco-eval."""

import math

import numpy as np
import pytest

from edge.tools.metrics import IOU_THRESHOLDS, Accumulator, box_iou, confusion, match_image
from edge.types import Detections

A = [0, 0, 10, 10]
B = [20, 20, 30, 30]
A_SHIFTED = [2, 0, 12, 10]  # IoU with A = 80 / 120 = 0.667


def dets(boxes, scores, classes) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, classes)


def truth(boxes, classes) -> Detections:
    return dets(boxes, np.ones(len(classes)), classes)


def ap50_of(*images) -> dict[int, float]:
    acc = Accumulator()
    for det, gt in images:
        acc.add(det, gt)
    return acc.average_precision(0.5)


def test_iou_is_a_continuous_area_ratio_with_no_plus_one():
    iou = box_iou(np.array([A]), np.array([[5, 0, 15, 10], A, B, [0, 0, 0, 0]]))
    np.testing.assert_allclose(iou, [[50 / 150, 1.0, 0.0, 0.0]])


@pytest.mark.parametrize("det_boxes, scores, det_cls, gt_boxes, gt_cls, thr, expected", [
    # one detection exactly on its GT
    ([A], [0.9], [0], [A], [0], 0.5, [True]),
    # a duplicate: the higher score takes the GT, the other is a false positive
    ([A, A], [0.8, 0.9], [0, 0], [A], [0], 0.5, [False, True]),
    # right box, wrong class
    ([A], [0.9], [1], [A], [0], 0.5, [False]),
    # each class matches its own GT even where boxes coincide
    ([A, A], [0.9, 0.8], [0, 1], [A, A], [1, 0], 0.5, [True, True]),
    # IoU 0.667: a hit at 0.5, a miss at 0.75
    ([A_SHIFTED], [0.9], [0], [A], [0], 0.5, [True]),
    ([A_SHIFTED], [0.9], [0], [A], [0], 0.75, [False]),
    # greedy by score: the better-scored, worse-fitting box claims A first
    ([A, A_SHIFTED], [0.5, 0.9], [0, 0], [A], [0], 0.5, [False, True]),
    # the first detection takes the GT it overlaps most (IoU 0.82, not 0.54 with A), which
    # leaves the second nothing (0.33 with A)
    ([[3, 0, 13, 10], [5, 0, 15, 10]], [0.9, 0.8], [0, 0], [A, [4, 0, 14, 10]], [0, 0], 0.5,
     [True, False]),
    # no GT / no detections
    ([A], [0.9], [0], [], [], 0.5, [False]),
    ([], [], [], [A], [0], 0.5, []),
])
def test_match_image(det_boxes, scores, det_cls, gt_boxes, gt_cls, thr, expected):
    flags = match_image(np.array(det_boxes, np.float32), scores, det_cls,
                        np.array(gt_boxes, np.float32), gt_cls, iou_threshold=thr)
    assert flags.dtype == bool
    assert flags.tolist() == expected


def test_match_image_takes_the_best_free_gt():
    # The first detection takes A (IoU 1); the second overlaps A best but A is gone, so it takes
    # A_SHIFTED (IoU 0.667).
    flags = match_image(np.array([A, A], np.float32), [0.9, 0.8], [0, 0],
                        np.array([A, A_SHIFTED], np.float32), [0, 0])
    assert flags.tolist() == [True, True]


@pytest.mark.parametrize("images, expected", [
    # perfect detections, two classes over two images
    ([(dets([A, B], [0.9, 0.8], [0, 1]), truth([A, B], [0, 1])),
      (dets([B], [0.7], [0]), truth([B], [0]))], {0: 1.0, 1: 1.0}),
    # a false positive ranked above the true positive: precision 1/2 at every recall point
    ([(dets([B, A], [0.9, 0.8], [0, 0]), truth([A], [0]))], {0: 0.5}),
    # a false positive ranked below: it costs nothing
    ([(dets([A, B], [0.9, 0.8], [0, 0]), truth([A], [0]))], {0: 1.0}),
    # one of two GT missed: precision 1 up to recall 0.50, that is 51 of 101 points
    ([(dets([A], [0.9], [0]), truth([A, B], [0, 0]))], {0: 51 / 101}),
    # the missed GT is in another image
    ([(dets([A], [0.9], [0]), truth([A], [0])), (Detections.empty(), truth([B], [0]))],
     {0: 51 / 101}),
    # a duplicate between two hits: precision 1 to recall 0.5, then 2/3 (envelope) to 1
    ([(dets([A, A, B], [0.9, 0.8, 0.7], [0, 0, 0]), truth([A, B], [0, 0]))],
     {0: (51 + 50 * 2 / 3) / 101}),
    # the right box with the wrong class: class 0 missed, class 1 has no GT
    ([(dets([A], [0.9], [1]), truth([A], [0]))], {0: 0.0, 1: math.nan}),
    # empty images add nothing
    ([(Detections.empty(), Detections.empty()), (dets([A], [0.9], [0]), truth([A], [0])),
      (Detections.empty(), Detections.empty())], {0: 1.0}),
    # GT and no detections at all
    ([(Detections.empty(), truth([A], [2]))], {2: 0.0}),
    # nothing at all
    ([(Detections.empty(), Detections.empty())], {}),
])
def test_average_precision_hand_worked(images, expected):
    got = ap50_of(*images)
    assert got.keys() == expected.keys()
    for k, value in expected.items():
        assert got[k] == pytest.approx(value, abs=1e-12, nan_ok=True), k


def test_mean_ap_leaves_out_classes_without_gt():
    acc = Accumulator()
    acc.add(dets([A, B], [0.9, 0.8], [0, 1]), truth([A, B], [0, 0]))  # class 1: no GT
    assert math.isnan(acc.average_precision()[1])
    assert acc.mean_ap() == pytest.approx(51 / 101)
    assert math.isnan(Accumulator().mean_ap())


def test_map_50_95_averages_the_ten_thresholds():
    acc = Accumulator()
    acc.add(dets([A_SHIFTED, B], [0.9, 0.8], [0, 1]), truth([A, B], [0, 1]))
    hits_0 = (IOU_THRESHOLDS <= 80 / 120).sum()  # class 0 is a hit up to IoU 0.667: 0.50..0.65
    assert acc.average_precision_50_95() == pytest.approx({0: hits_0 / 10, 1: 1.0})
    assert acc.mean_ap_50_95() == pytest.approx((hits_0 / 10 + 1.0) / 2)
    assert acc.average_precision(0.75)[0] == 0.0


def test_precision_recall_at_a_score_threshold():
    acc = Accumulator()
    acc.add(dets([A, B, A], [0.9, 0.6, 0.3], [0, 0, 1]), truth([A, B, B], [0, 0, 1]))
    at_half = acc.precision_recall_at(0.5)
    assert at_half[0] == (1.0, 1.0, 2, 2, 2)
    assert math.isnan(at_half[1].precision) and at_half[1].recall == 0.0  # nothing kept
    assert acc.precision_recall_at(0.8)[0][:2] == (1.0, 0.5)
    assert acc.precision_recall_at(0.0)[1][:2] == (0.0, 0.0)


def test_summary():
    acc = Accumulator()
    acc.add(dets([A], [0.9], [0]), truth([A, B], [0, 0]))
    acc.add(Detections.empty(), Detections.empty())
    report = acc.summary(["knife", "gun"])
    assert report["images"] == 2
    assert report["mAP50"] == pytest.approx(51 / 101)
    assert report["mAP50_95"] == pytest.approx(51 / 101)
    assert report["classes"]["knife"] == pytest.approx({"AP50": 51 / 101, "AP50_95": 51 / 101,
                                                        "gt": 2})
    assert math.isnan(report["classes"]["gun"]["AP50"]) and report["classes"]["gun"]["gt"] == 0


@pytest.mark.parametrize("call, message", [
    # not one of the COCO thresholds
    (lambda acc: acc.average_precision(0.62), r"iou must be one of \[0.5, 0.55"),
    (lambda acc: acc.precision_recall_at(0.5, iou=0.3), "got 0.3"),
    # a class id with no name
    (lambda acc: acc.summary(["knife"]), r"class ids \[1\] have no name"),
])
def test_errors_name_the_bad_value(call, message):
    acc = Accumulator()
    acc.add(dets([A], [0.9], [1]), truth([A], [0]))
    with pytest.raises(ValueError, match=message):
        call(acc)


def test_match_image_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="score must have shape"):
        match_image(np.array([A], np.float32), [0.9, 0.8], [0], np.array([A], np.float32), [0])


# --- cross-check against faster-coco-eval -------------------------------------------------

N_CLASSES = 3  # with GT; class N_CLASSES only ever appears as a false positive


def synthetic_set(seed: int, n_images: int = 30):
    """(detections, truth) per image: jittered GT, some GT missed, duplicates, random FPs."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        n_gt = rng.integers(0, 6)
        xy = rng.uniform(0, 400, (n_gt, 2))
        gt_xyxy = np.concatenate([xy, xy + rng.uniform(8, 80, (n_gt, 2))], 1)
        gt_cls = rng.integers(0, N_CLASSES, n_gt)
        found = rng.random(n_gt) < 0.8
        copies = np.repeat(np.flatnonzero(found), rng.integers(1, 3, found.sum()))
        size = np.tile(gt_xyxy[copies, 2:] - gt_xyxy[copies, :2], 2)
        # Jitter of ~10% of the size spreads IoUs over the whole 0.5..0.95 range.
        hit_xyxy = gt_xyxy[copies] + rng.normal(0, 0.1, (len(copies), 4)) * size
        n_fp = rng.integers(0, 4)
        fp_xy = rng.uniform(0, 400, (n_fp, 2))
        fp_xyxy = np.concatenate([fp_xy, fp_xy + rng.uniform(8, 80, (n_fp, 2))], 1)
        det = Detections(np.concatenate([hit_xyxy, fp_xyxy]),
                         rng.random(len(copies) + n_fp),
                         np.concatenate([gt_cls[copies], rng.integers(0, N_CLASSES + 1, n_fp)]))
        images.append((det, Detections(gt_xyxy, np.ones(n_gt), gt_cls)))
    return images


def coco_precision(images) -> np.ndarray:
    """faster-coco-eval's precision ``[T, R, K]`` (area "all", largest maxDets)."""
    from faster_coco_eval import COCO, COCOeval_faster

    def xywh(box):
        x1, y1, x2, y2 = (float(v) for v in box)  # float32 values, exactly as we score them
        return [x1, y1, x2 - x1, y2 - y1]

    gt_anns, dt_anns = [], []
    for image_id, (det, gt) in enumerate(images, start=1):
        for box, cls in zip(gt.xyxy, gt.class_id, strict=True):
            w, h = xywh(box)[2:]
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": image_id, "bbox": xywh(box),
                            "category_id": int(cls) + 1, "area": w * h, "iscrowd": 0})
        for box, score, cls in zip(det.xyxy, det.score, det.class_id, strict=True):
            dt_anns.append({"image_id": image_id, "bbox": xywh(box), "score": float(score),
                            "category_id": int(cls) + 1})
    coco_gt = COCO({"images": [{"id": i, "width": 500, "height": 500}
                               for i in range(1, len(images) + 1)],
                    "annotations": gt_anns,
                    "categories": [{"id": k + 1, "name": str(k)} for k in range(N_CLASSES + 1)]})
    evaluator = COCOeval_faster(coco_gt, coco_gt.loadRes(dt_anns), iouType="bbox")
    evaluator.params.maxDets = [1, 10, 1000]
    evaluator.evaluate()
    evaluator.accumulate()
    precision = np.asarray(evaluator.eval["precision"])  # [T, R, K, A, M]
    assert precision.shape[:3] == (10, 101, N_CLASSES + 1)
    assert evaluator.params.areaRngLbl[0] == "all" and evaluator.params.maxDets[-1] == 1000
    return precision[:, :, :, 0, -1]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agrees_with_faster_coco_eval(seed):
    images = synthetic_set(seed)
    acc = Accumulator()
    for det, gt in images:
        acc.add(det, gt)
    precision = coco_precision(images)
    valid = precision > -1  # -1: a class without GT
    theirs_ap = np.where(valid, precision, np.nan).mean(axis=1)  # [T, K]

    ours_ap50 = acc.average_precision(0.5)
    ours_ap = np.array([[acc.average_precision(t).get(k, np.nan) for k in range(N_CLASSES + 1)]
                        for t in IOU_THRESHOLDS])
    np.testing.assert_allclose(ours_ap, theirs_ap, rtol=0, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose([ours_ap50[k] for k in range(N_CLASSES + 1)], theirs_ap[0],
                               rtol=0, atol=1e-6, equal_nan=True)
    assert acc.mean_ap_50_95() == pytest.approx(precision[valid].mean(), abs=1e-6)
    assert acc.mean_ap(0.5) == pytest.approx(precision[0][valid[0]].mean(), abs=1e-6)
    # The set is not trivial: APs spread out, and the false-positive-only class is NaN.
    assert 0.2 < acc.mean_ap_50_95() < acc.mean_ap(0.5) < 0.95
    assert math.isnan(ours_ap50[N_CLASSES])


def _dets(boxes, scores, classes) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                      np.array(classes, np.int64))


def test_confusion_credits_each_object_to_its_best_overlapping_detection():
    truth = _dets([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60], [70, 0, 80, 10]],
                  [1, 1, 1, 1], [0, 1, 2, 2])
    det = _dets([[0, 0, 10, 10],    # class 0 on object 0, outscored by ...
                 [0, 0, 10, 9],     # ... class 1 on it (IoU 0.9): object 0 seen as class 1
                 [20, 20, 30, 30],  # object 1 found as itself
                 [80, 80, 90, 90],  # on no object: a false alarm of class 2
                 [50, 50, 60, 60],  # object 2, but under the score threshold: missed
                 [70, 0, 85, 10]],  # object 3 at IoU 10/15 < 0.7: found at 0.5, not at 0.7
                [0.5, 0.9, 0.8, 0.7, 0.1, 0.6], [0, 1, 1, 2, 2, 2])
    expected = np.zeros((4, 4), np.int64)
    expected[0, 1] = expected[1, 1] = expected[3, 2] = 1   # objects 0, 1; the false alarm
    expected[2, 3] = 1                                     # object 2 missed
    expected[2, 2] = 1                                     # object 3 found
    assert confusion(det, truth, 3, 0.25).tolist() == expected.tolist()
    strict = confusion(det, truth, 3, 0.25, iou_threshold=0.7)
    assert strict[2].tolist() == [0, 0, 0, 2] and strict[3].tolist() == [0, 0, 2, 0]
    # Every object lands in its own row once; every unmatched detection in the last row.
    assert confusion(det, truth, 3, 0.0).sum(axis=1)[:3].tolist() == [1, 1, 2]


def test_confusion_of_empty_images_and_bad_class_ids():
    truth = _dets([[0, 0, 10, 10]], [1], [1])
    empty = Detections.empty()
    assert confusion(empty, truth, 2, 0.25).tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert confusion(truth, empty, 2, 0.25).tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 0]]
    assert not confusion(empty, empty, 2, 0.25).any()
    with pytest.raises(ValueError, match="class ids"):
        confusion(truth, _dets([[0, 0, 1, 1]], [1], [2]), 2, 0.25)
