"""The replay report: figures worked by hand on a small made-up replay, AP cross-checked
against faster-coco-eval, and the files it writes (valid JSON, an HTML page that opens
offline, galleries drawn where thumbnails exist)."""

import base64
import json
import math
import re

import cv2
import numpy as np
import pytest

from edge.tools.replay import THUMBNAIL_SCALE, ParcelRecord, ReplayRun
from edge.tools.report import roc, threshold_at_pd, write_report
from edge.tools.report_html import thumbnail
from edge.types import Detections

CLASSES = ("gun", "knife")
THRESHOLDS = {"gun": 0.5, "knife": 0.6}
BOX = [40, 20, 160, 100]   # px of the parcel; its thumbnail is THUMBNAIL_SCALE of that
PARCEL_HW = (200, 400)


def dets(*items) -> Detections:
    """``(class, score)`` pairs, every box at BOX."""
    if not items:
        return Detections.empty()
    return Detections(np.array([BOX] * len(items), np.float32), [s for _, s in items],
                      [c for c, _ in items])


def rec(seq, threat, action, found=(), truth=(), latency_s=0.02) -> ParcelRecord:
    truth_dets = None if threat is None else dets(*((c, 1.0) for c in truth))
    return ParcelRecord(seq, f"P{seq:03d}", PARCEL_HW[1], action, "", threat, latency_s,
                        dets(*found), truth_dets)


def run_a(thumbnails=None, summary=None) -> ReplayRun:
    """3 threat parcels (2 diverted), 4 clear (1 diverted), 1 without truth."""
    records = [
        rec(1, True, "divert", [(0, 0.9)], [0]),
        rec(2, True, "clear", [(1, 0.55)], [1]),     # knife under its 0.6: missed
        rec(3, True, "divert", [(0, 0.7)], [0]),
        rec(4, False, "divert", [(1, 0.65)]),        # a false alarm
        rec(5, False, "clear", [(0, 0.3)]),
        rec(6, False, "clear", []),
        rec(7, False, "clear", [(0, 0.45)], latency_s=None),
        rec(8, None, "divert", [(0, 0.95)]),         # no truth: in no rate
    ]
    return ReplayRun("a.onnx", "a1", CLASSES, dict(THRESHOLDS), "defaults", records,
                     summary or {}, thumbnails)


def run_b() -> ReplayRun:
    """The same parcels, another model: every threat diverted, 2 of 4 clear ones too."""
    records = [rec(1, True, "divert", [(0, 0.8)], [0]), rec(2, True, "divert", [(0, 0.52)], [1]),
               rec(3, True, "divert", [(0, 0.6)], [0]), rec(4, False, "divert", [(0, 0.75)]),
               rec(5, False, "divert", [(0, 0.5)]), rec(6, False, "clear", [(0, 0.1)]),
               rec(7, False, "clear", []), rec(8, None, "clear", [])]
    return ReplayRun("b.onnx", "b1", CLASSES, dict(THRESHOLDS), "site table", records, {}, None)


def write_thumbnails(folder, seqs):
    folder.mkdir()
    for seq in seqs:
        h, w = (int(n * THUMBNAIL_SCALE) for n in PARCEL_HW)
        cv2.imwrite(str(folder / f"{seq}.jpg"), np.full((h, w, 3), 128, np.uint8))
    return folder


def strict_json(text: str):
    def refuse(token):
        raise ValueError(f"{token} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_pd_and_far_at_the_applied_thresholds(tmp_path):
    m = write_report(tmp_path, [run_a()], "rec")["runs"][0]
    for how in ("recorded", "recomputed"):
        assert m["parcel"][how] == {"pd": 2 / 3, "far": 1 / 4, "threat_parcels": 3,
                                    "threat_diverted": 2, "clear_parcels": 4,
                                    "clear_diverted": 1}
    assert m["parcel"]["disagree"] == []
    assert (m["parcels"], m["parcels_with_truth"]) == (8, 7)
    assert m["thresholds"] == pytest.approx(THRESHOLDS)


def test_recorded_and_recomputed_verdicts_are_both_reported_when_they_differ(tmp_path):
    run = run_a()
    run.records[4].action = "uninspected"   # clear parcel 5 diverted without a decision
    m = write_report(tmp_path, [run], "rec")["runs"][0]
    assert m["parcel"]["recorded"]["far"] == 2 / 4
    assert m["parcel"]["recomputed"]["far"] == 1 / 4
    assert m["parcel"]["disagree"] == [5]
    assert m["latency"]["uninspected"] == 1 and m["latency"]["uninspected_share"] == 1 / 8
    assert "differ on 1 parcels (seq 5)" in (tmp_path / "report.html").read_text()


def test_roc_runs_from_0_0_to_1_1_and_never_decreases():
    score = np.array([0.9, 0.55, 0.7, 0.65, 0.3, 0.0, 0.45])
    threat = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    curve = roc(score, threat)
    assert (curve["far"][0], curve["pd"][0]) == (0, 0) and curve["threshold"][0] == np.inf
    assert (curve["far"][-1], curve["pd"][-1]) == (1, 1) and curve["threshold"][-1] == 0
    assert (np.diff(curve["pd"]) >= 0).all() and (np.diff(curve["far"]) >= 0).all()
    at = list(curve["threshold"]).index(0.65)
    assert (curve["pd"][at], curve["far"][at]) == (2 / 3, 1 / 4)
    # Every parcel scoring above 0: the sweep still ends with all of them diverted.
    assert roc(score + 0.01, threat)["threshold"][-1] == 0


@pytest.mark.parametrize("target, threshold, pd, far", [
    (2 / 3, 0.7, 2 / 3, 0.0),     # the 2nd threat score: the highest that keeps two
    (1.0, 0.55, 1.0, 1 / 4),      # the lowest threat score; 0.65 of a clear parcel passes
    (0.5, 0.7, 2 / 3, 0.0),       # at least half: two of three
    (0.0, math.inf, 0.0, 0.0),    # nothing to reach: divert nothing
])
def test_threshold_at_pd(target, threshold, pd, far):
    score = np.array([0.9, 0.55, 0.7, 0.65, 0.3, 0.0, 0.45])
    threat = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    assert threshold_at_pd(score, threat, target) == {"target_pd": target,
                                                       "threshold": threshold, "pd": pd,
                                                       "far": far}


def test_two_runs_are_compared_at_their_thresholds_and_at_equal_pd(tmp_path):
    metrics = write_report(tmp_path, [run_a(), run_b()], "rec")
    c = metrics["comparison"]
    assert (c["a"], c["b"], c["same_parcels"]) == ("a.onnx", "b.onnx", True)
    assert c["applied"] == pytest.approx({"pd_a": 2 / 3, "pd_b": 1.0, "far_a": 0.25,
                                          "far_b": 0.5, "pd_b_minus_a": 1 / 3,
                                          "far_b_minus_a": 0.25})
    # B at A's Pd 2/3: its 2nd threat score 0.6, where only the clear 0.75 passes.
    assert c["equal_pd"]["b_at_pd_of_a"] == pytest.approx(
        {"target_pd": 2 / 3, "threshold": 0.6, "pd": 2 / 3, "far": 0.25, "far_a": 0.25})
    # A at B's Pd 1: its lowest threat score 0.55, where the clear 0.65 passes.
    assert c["equal_pd"]["a_at_pd_of_b"] == pytest.approx(
        {"target_pd": 1.0, "threshold": 0.55, "pd": 1.0, "far": 0.25, "far_b": 0.5})
    page = (tmp_path / "report.html").read_text()
    assert "Comparison: B against A" in page and "+33.3 points" in page and "b.onnx" in page
    assert page.count('alt="ROC curves of both runs"') == 1


def test_object_pr_confusion_and_latency(tmp_path):
    m = write_report(tmp_path, [run_a(summary={"parcels": 8, "uninspected": 0,
                                               "duration_s": 2.0, "recorded_s": 8.0,
                                               "speedup": 4.0, "lost_commands": 0,
                                               "stages": {"detect_ms": {"p50": 5.0,
                                                                        "p99": 9.0,
                                                                        "max": 9.5}}})],
                     "rec")["runs"][0]
    # Kept at the thresholds: gun 0.9 and 0.7 on their objects, knife 0.65 on none.
    assert m["pr"]["operating"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3})
    assert m["pr"]["recall"][-1] == 1.0 and m["pr"]["objects"] == 3
    assert m["confusion"] == {"rows": ["gun", "knife", "false alarm"],
                              "columns": ["gun", "knife", "missed"],
                              "counts": [[2, 0, 0], [0, 0, 1], [0, 1, 0]]}
    assert m["latency"]["decision_ms"] == {"p50": 20.0, "p99": 20.0, "max": 20.0}
    assert m["latency"]["detect_ms"] == {"p50": 5.0, "p99": 9.0, "max": 9.5}
    assert m["replay"] == {"parcels": 8, "uninspected": 0, "duration_s": 2.0,
                           "recorded_s": 8.0, "speedup": 4.0}


def test_a_run_loaded_from_file_has_no_summary_figures(tmp_path):
    run_a().save(tmp_path / "detections.jsonl")
    m = write_report(tmp_path / "out", [ReplayRun.load(tmp_path / "detections.jsonl")],
                     "rec")["runs"][0]
    assert m["replay"] == {} and "detect_ms" not in m["latency"]
    assert m["parcel"]["recorded"]["pd"] == 2 / 3


def test_metrics_json_round_trips_and_the_page_opens_offline(tmp_path):
    metrics = write_report(tmp_path, [run_a(), run_b()], "rec")
    text = (tmp_path / "metrics.json").read_text()
    assert strict_json(text) == metrics
    assert metrics["runs"][0]["roc"]["threshold"][0] is None   # +inf: above every score
    assert metrics["runs"][0]["detection"]["classes"]["knife"]["AP50"] is not None
    page = (tmp_path / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pngs) == 2 * 2 + 1   # per run ROC and PR, and both ROCs together
    assert all(base64.b64decode(p).startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)


def test_galleries_show_thumbnails_where_kept(tmp_path):
    thumbs = write_thumbnails(tmp_path / "thumbs", [2, 4])
    m = write_report(tmp_path / "out", [run_a(thumbnails=thumbs)], "rec")["runs"][0]
    assert [e["seq"] for e in m["galleries"]["misses"]] == [2]
    assert [e["seq"] for e in m["galleries"]["false_alarms"]] == [4]
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 2
    (thumbs / "2.jpg").unlink()
    page = (write_report(tmp_path / "out", [run_a(thumbnails=thumbs)], "rec"),
            (tmp_path / "out" / "report.html").read_text())[1]
    assert page.count("data:image/jpeg;base64,") == 1 and "1 without a thumbnail" in page
    write_report(tmp_path / "none", [run_a()], "rec")
    page = (tmp_path / "none" / "report.html").read_text()
    assert "data:image/jpeg" not in page and "no thumbnails kept" in page


def test_a_thumbnail_draws_kept_detections_at_its_scale(tmp_path):
    run = run_a(thumbnails=write_thumbnails(tmp_path / "thumbs", [4]))
    image = cv2.imdecode(np.frombuffer(base64.b64decode(thumbnail(run, 4)), np.uint8),
                         cv2.IMREAD_COLOR).astype(int)
    x1, y1, x2, y2 = (round(v * THUMBNAIL_SCALE) for v in BOX)
    redness = image[..., 2] - image[..., 1]
    assert redness[y1 + 5:y2 - 5, x1].mean() > 60       # the box's left edge, in red
    assert abs(redness[y1 + 5:y2 - 5, (x1 + x2) // 2]).mean() < 15   # inside: untouched
    assert thumbnail(run, 5) is None                     # no file: no thumbnail


# --- cross-check against faster-coco-eval -------------------------------------------------

def random_replay(seed: int, n_parcels: int = 40) -> ReplayRun:
    """Parcels with 0-5 objects of 3 classes; detections jittered about them (some missed,
    some twice, some of the wrong class) and random false alarms, scores uniform."""
    rng = np.random.default_rng(seed)
    records = []
    for seq in range(n_parcels):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 300, (n, 2))
        gt = np.concatenate([xy, xy + rng.uniform(10, 90, (n, 2))], 1)
        gt_cls = rng.integers(0, 3, n)
        copies = np.repeat(np.arange(n), rng.integers(0, 3, n))
        size = np.tile(gt[copies, 2:] - gt[copies, :2], 2)
        hit = gt[copies] + rng.normal(0, 0.1, (len(copies), 4)) * size
        hit_cls = np.where(rng.random(len(copies)) < 0.1, rng.integers(0, 3, len(copies)),
                           gt_cls[copies])
        n_fp = int(rng.integers(0, 4))
        fp_xy = rng.uniform(0, 300, (n_fp, 2))
        fp = np.concatenate([fp_xy, fp_xy + rng.uniform(10, 90, (n_fp, 2))], 1)
        found = Detections(np.concatenate([hit, fp]), rng.random(len(copies) + n_fp),
                           np.concatenate([hit_cls, rng.integers(0, 3, n_fp)]))
        truth = Detections(gt, np.ones(n), gt_cls)
        records.append(ParcelRecord(seq, str(seq), 400, "clear", "", n > 0, None, found, truth))
    return ReplayRun("r.onnx", None, ("gun", "knife", "blade"), dict.fromkeys(
        ("gun", "knife", "blade"), 0.5), "defaults", records, {}, None)


def coco_ap(run: ReplayRun) -> tuple[np.ndarray, np.ndarray]:
    """faster-coco-eval's AP50 and AP50:95 per class ``[K]`` (area "all", maxDets 100)."""
    from faster_coco_eval import COCO, COCOeval_faster

    def xywh(box):
        x1, y1, x2, y2 = map(float, box)   # the float32 values the report scores
        return [x1, y1, x2 - x1, y2 - y1]
    gts, dts = [], []
    for r in run.records:
        for box, cls in zip(r.truth.xyxy, r.truth.class_id, strict=True):
            b = xywh(box)
            gts.append({"id": len(gts) + 1, "image_id": r.seq + 1, "bbox": b, "iscrowd": 0,
                        "area": b[2] * b[3], "category_id": int(cls) + 1})
        dts += [{"image_id": r.seq + 1, "bbox": xywh(box), "score": float(s),
                 "category_id": int(c) + 1}
                for box, s, c in zip(r.found.xyxy, r.found.score, r.found.class_id, strict=True)]
    assert max(len(r.found) for r in run.records) <= 100
    coco = COCO({"images": [{"id": r.seq + 1, "width": 400, "height": 400} for r in run.records],
                 "annotations": gts,
                 "categories": [{"id": k + 1, "name": n} for k, n in enumerate(run.classes)]})
    evaluator = COCOeval_faster(coco, coco.loadRes(dts), iouType="bbox")
    evaluator.params.maxDets = [1, 10, 100]
    evaluator.evaluate()
    evaluator.accumulate()
    assert evaluator.params.areaRngLbl[0] == "all"
    precision = np.asarray(evaluator.eval["precision"])[:, :, :, 0, -1]   # [T, R, K]
    precision = np.where(precision > -1, precision, np.nan)
    return precision[0].mean(axis=0), precision.mean(axis=(0, 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ap_per_class_agrees_with_faster_coco_eval(tmp_path, seed):
    run = random_replay(seed)
    detection = write_report(tmp_path, [run], "random")["runs"][0]["detection"]
    ap50, ap = coco_ap(run)
    ours50 = [detection["classes"][c]["AP50"] for c in run.classes]
    ours = [detection["classes"][c]["AP50_95"] for c in run.classes]
    np.testing.assert_allclose(ours50, ap50, rtol=0, atol=1e-3)
    np.testing.assert_allclose(ours, ap, rtol=0, atol=1e-3)
    assert detection["mAP50"] == pytest.approx(ap50.mean(), abs=1e-3)
    assert detection["mAP50_95"] == pytest.approx(ap.mean(), abs=1e-3)
    assert 0.1 < detection["mAP50_95"] < detection["mAP50"] < 0.95   # not a trivial set


def test_a_recording_without_truth_reports_what_it_can(tmp_path):
    run = run_a()
    for r in run.records:
        r.threat, r.truth = None, None
    metrics = write_report(tmp_path, [run, run_b()], "real hub")
    m = metrics["runs"][0]
    assert m["parcels_with_truth"] == 0 and m["detection"]["mAP50"] is None
    assert m["parcel"]["recorded"]["pd"] is None and m["parcel"]["recorded"]["far"] is None
    assert m["galleries"] == {"misses": [], "false_alarms": []}
    assert m["latency"]["decision_ms"]["p50"] == 20.0
    assert metrics["comparison"]["equal_pd"]["b_at_pd_of_a"]["far"] is None
    assert not metrics["comparison"]["same_parcels"]
    strict_json((tmp_path / "metrics.json").read_text())
