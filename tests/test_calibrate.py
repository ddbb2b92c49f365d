"""Per-class threshold calibration: the pure choice of a threshold, then ``edge calibrate
thresholds`` end to end through a real ONNX graph with a planted box."""

import json

import cv2
import numpy as np
import pytest
from test_detect_cli import scan
from test_model import planted_head, write_model

from edge.cli import main
from edge.config import EdgeConfig
from edge.decide import Policy
from edge.detect.model import Detector
from edge.tools.metrics import threshold_for_recall


def test_threshold_for_recall_hand_worked():
    score = np.array([0.9, 0.8, 0.7, 0.6])
    tp = np.array([True, False, True, True])
    half = threshold_for_recall(score, tp, 4, 0.5)
    assert half.threshold == 0.7 and half.recall == 0.5 and half.precision == 2 / 3
    assert half.reached
    out_of_reach = threshold_for_recall(score, tp, 4, 1.0)   # 3 of 4 is the best there is
    assert out_of_reach.threshold == 0.6 and out_of_reach.recall == 0.75
    assert not out_of_reach.reached
    # Ties with the threshold are kept, and count against precision.
    tie = threshold_for_recall(np.array([0.9, 0.8, 0.8, 0.7]),
                               np.array([True, True, False, True]), 3, 0.6)
    assert tie.threshold == 0.8 and tie.recall == 2 / 3 and tie.precision == 2 / 3
    assert threshold_for_recall(score, tp, 0, 0.9) is None          # nothing to find
    assert threshold_for_recall(score, np.zeros(4, bool), 2, 0.9) is None  # nothing found
    with pytest.raises(ValueError, match="target recall"):
        threshold_for_recall(score, tp, 4, 0.0)


@pytest.mark.parametrize("seed", range(40))
def test_threshold_for_recall_is_the_highest_that_reaches_the_target(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    score = rng.choice(np.linspace(0.05, 1, 8), n)       # coarse: many ties
    tp = rng.random(n) < 0.5
    n_gt = int(tp.sum() + rng.integers(0, 4))
    target = float(rng.choice([0.3, 0.5, 0.9, 1.0]))
    point = threshold_for_recall(score, tp, n_gt, target)
    if n_gt == 0 or not tp.any():
        assert point is None
        return
    recall = {float(t): tp[score >= t].sum() / n_gt for t in np.unique(score)}
    reaching = [t for t, r in recall.items() if r >= target - 1e-9]
    best = max(reaching) if reaching else max(t for t, r in recall.items()
                                              if r == max(recall.values()))
    assert point.threshold == best and point.reached == bool(reaching)
    assert point.recall == recall[best]
    assert point.precision == tp[score >= best].mean()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """Classes gun and knife; on a 128 px scan, one gun at [0, 32, 96, 128] (logit 6)."""
    return write_model(tmp_path_factory.mktemp("model") / "m.onnx",
                       planted_head([(16, 1, 2, 0, 1.5)]))


def write_set(folder):
    """Three grey scans the planted model sees alike (one gun box, score PLANTED_SCORE):
    a gun where the model puts it, nothing, and a knife it never finds."""
    names = ["gun.png", "clear.png", "knife.png"]
    for name in names:
        assert cv2.imwrite(str(folder / name), scan(128, 128))
    coco = {"images": [{"id": k + 1, "file_name": name, "width": 128, "height": 128}
                       for k, name in enumerate(names)],
            "categories": [{"id": 1, "name": "gun"}, {"id": 2, "name": "knife"},
                           {"id": 3, "name": "scissors"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 32, 96, 96]},
                {"id": 2, "image_id": 2, "category_id": 3, "bbox": [5, 5, 20, 20]},
                {"id": 3, "image_id": 3, "category_id": 2, "bbox": [90, 10, 20, 20]}]}
    path = folder / "set.json"
    path.write_text(json.dumps(coco))
    return path


def test_calibrate_thresholds_writes_the_table_the_policy_reads(tmp_path, model, capsys):
    labelled = write_set(tmp_path)
    out = tmp_path / "cal" / "thresholds.json"
    code = main(["calibrate", "thresholds", "--data", str(labelled), "--model", str(model),
                 "--recall", "0.9", "--out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    written = json.loads(out.read_text())
    table = written["thresholds"]
    planted = 1 / (1 + np.exp(-6.0))                    # 0.99753: the planted logit is 6
    assert table == {"gun": 0.9975}                     # rounded down: the gun still passes
    version = Detector(model).info.version
    assert written["model_version"] == version
    gun = report["classes"]["gun"]
    assert gun["threshold"] == pytest.approx(planted, abs=1e-6)
    assert gun["recall"] == 1.0 and gun["precision"] == pytest.approx(1 / 3) and gun["reached"]
    assert report["classes"]["knife"] is None                 # labelled, never found
    assert report["ignored_labels"] == {"scissors": 1}
    # Every scan shows the planted gun, so every parcel is diverted at either setting.
    assert report["on_data"]["calibrated"] == {"threat_images": 2, "threat_diverted": 2,
                                               "clear_images": 1, "clear_diverted": 1}
    assert report["held_out"] is None
    config = EdgeConfig().model_copy(update={"calibration_dir": out.parent})
    policy = Policy.from_config(config, ("gun", "knife"), version)
    assert policy.thresholds.tolist() == pytest.approx([table["gun"],
                                                        config.detector.score_threshold])


def test_held_out_check_judges_the_chosen_thresholds(tmp_path, model, capsys):
    labelled = write_set(tmp_path)
    held = tmp_path / "held"
    held.mkdir()
    held_set = write_set(held)
    code = main(["calibrate", "thresholds", "--data", str(labelled), "--check", str(held_set),
                 "--model", str(model), "--out", str(tmp_path / "t.json"), "--json"])
    assert code == 0
    checked = json.loads(capsys.readouterr().out)["held_out"]
    assert checked["images"] == 3 and checked["objects"] == {"gun": 1, "knife": 1}
    assert checked["recall"] == {"gun": 1.0, "knife": 0.0}
    assert checked["precision"]["gun"] == pytest.approx(1 / 3)
    assert checked["precision"]["knife"] is None                 # no knife detection kept
    assert checked["calibrated"]["clear_diverted"] == 1


def test_calibrate_thresholds_readable_report_and_bad_input(tmp_path, model, capsys):
    labelled = write_set(tmp_path)
    out = tmp_path / "thresholds.json"
    assert main(["calibrate", "thresholds", "--data", str(labelled), "--model", str(model),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "gun" in text and "(none found)" in text and f"wrote {out}" in text
    assert main(["calibrate", "thresholds", "--model", str(model)]) == 2
    assert "needs --data" in capsys.readouterr().err
    missing = tmp_path / "nowhere.json"
    assert main(["calibrate", "thresholds", "--data", str(missing), "--model", str(model),
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "nowhere.json" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def scored_images(best_scores, threats):
    """A scored set whose image k has one detection scoring ``best_scores[k]`` (None: no
    detection) and holds a labelled threat when ``threats[k]``."""
    from edge.tools.calibrate import ScoredSet
    from edge.types import Detections
    scored = ScoredSet(("gun", "knife"))
    box = np.array([[0, 0, 10, 10]], np.float32)
    for score, threat in zip(best_scores, threats, strict=True):
        found = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                           np.zeros(0, np.int64)) if score is None else \
            Detections(box, np.array([score], np.float32), np.array([1], np.int64))
        truth = Detections(box[:int(threat)], np.ones(int(threat), np.float32),
                           np.zeros(int(threat), np.int64))
        scored.images.append((found, truth))
    return scored


def test_parcel_threshold_for_a_share_of_threat_images_hand_worked():
    from edge.tools.calibrate import calibrate_parcels, threshold_for_parcels
    # Threat images score 0.9, 0.7, 0.5, 0.3 and one nothing; clear ones 0.6, 0.2, 0.05.
    scored = scored_images([0.9, 0.7, 0.5, 0.3, None, 0.6, 0.2, 0.05],
                           [1, 1, 1, 1, 1, 0, 0, 0])
    assert threshold_for_parcels(scored, pd=0.6) == 0.5       # 3 of 5 at 0.5 or more
    assert threshold_for_parcels(scored, pd=0.8) == 0.3       # 4 of 5
    assert threshold_for_parcels(scored, pd=0.61) == 0.3      # 3.05 of 5 needs a fourth
    assert threshold_for_parcels(scored, pd=1.0) is None      # one threat image shows nothing
    # At most one clear image of three: just above the second highest clear score.
    assert threshold_for_parcels(scored, far=0.34) == pytest.approx(0.2001)
    assert threshold_for_parcels(scored, far=0.0) == pytest.approx(0.6001)
    cal = calibrate_parcels(scored, 0.25, pd=0.8)
    assert cal.thresholds == {"gun": 0.3, "knife": 0.3}
    o = cal.on_data.calibrated
    assert (o.threat_diverted, o.threat_images, o.clear_diverted, o.clear_images) == (4, 5, 1, 3)
    with pytest.raises(ValueError, match="exactly one"):
        threshold_for_parcels(scored, pd=0.5, far=0.1)


@pytest.mark.parametrize("seed", range(20))
def test_parcel_threshold_is_the_highest_that_reaches_the_share(seed):
    """Against a brute force over every candidate threshold, on random scores."""
    from edge.tools.calibrate import threshold_for_parcels
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 40))
    scores = [None if rng.random() < 0.1 else float(np.round(rng.uniform(0.02, 1), 3))
              for _ in range(n)]
    threats = (rng.random(n) < 0.5).tolist()
    threats[0] = True
    pd = float(rng.uniform(0.05, 1))
    scored = scored_images(scores, threats)
    got = threshold_for_parcels(scored, pd=pd)
    threat_scores = [s or 0.0 for s, t in zip(scores, threats, strict=True) if t]

    def diverted(t):
        return sum(s >= t for s in threat_scores) / len(threat_scores)
    reachable = [t for t in sorted(set(threat_scores)) if t >= 0.01 and diverted(t) >= pd]
    if not reachable:
        assert got is None
    else:
        assert diverted(got) >= pd and max(reachable) - 1.01e-4 <= got <= max(reachable)


def test_calibrate_thresholds_for_whole_parcels(tmp_path, model, capsys):
    labelled = write_set(tmp_path)
    out = tmp_path / "thresholds.json"
    assert main(["calibrate", "thresholds", "--data", str(labelled), "--model", str(model),
                 "--target-pd", "0.95", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # The planted gun scores 0.99753 in every scan: one threshold for both classes, just
    # under it, diverts both threat scans (and the clear one).
    assert json.loads(out.read_text())["thresholds"] == {"gun": 0.9975, "knife": 0.9975}
    assert report["on_data"]["calibrated"] == {"threat_images": 2, "threat_diverted": 2,
                                               "clear_images": 1, "clear_diverted": 1}
    assert main(["calibrate", "thresholds", "--data", str(labelled), "--model", str(model),
                 "--target-far", "0.0", "--out", str(out)]) == 0
    assert "lowest" in capsys.readouterr().out
    assert json.loads(out.read_text())["thresholds"] == {"gun": 0.9976, "knife": 0.9976}
    with pytest.raises(SystemExit):
        main(["calibrate", "thresholds", "--data", str(labelled), "--model", str(model),
              "--target-pd", "0.9", "--recall", "0.8"])


def test_held_out_images_are_judged_by_folder(tmp_path, model, capsys):
    """``--by-folder`` splits the --check images by their folder (the simulator's colour/ and
    grey/) and judges the written thresholds on each."""
    labelled = write_set(tmp_path)
    names = {"colour/gun.png": "gun", "colour/clear.png": None, "grey/gun.png": "gun",
             "grey/knife.png": "knife"}
    images, annotations = [], []
    for k, (name, label) in enumerate(names.items(), 1):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        assert cv2.imwrite(str(tmp_path / name), scan(128, 128))
        images.append({"id": k, "file_name": name, "width": 128, "height": 128})
        if label:
            annotations.append({"id": k, "image_id": k, "category_id": 1 + (label == "knife"),
                                "bbox": [0, 32, 96, 96]})
    held_out = tmp_path / "held.json"
    held_out.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": 1, "name": "gun"}, {"id": 2, "name": "knife"}]}))
    args = ["calibrate", "thresholds", "--data", str(labelled), "--check", str(held_out),
            "--model", str(model), "--target-pd", "0.95", "--out", str(tmp_path / "t.json"),
            "--by-folder"]
    assert main([*args, "--json"]) == 0
    folders = json.loads(capsys.readouterr().out)["held_out_by_folder"]
    assert folders["colour"]["calibrated"] == {"threat_images": 1, "threat_diverted": 1,
                                               "clear_images": 1, "clear_diverted": 1}
    assert folders["grey"]["calibrated"] == {"threat_images": 2, "threat_diverted": 2,
                                             "clear_images": 0, "clear_diverted": 0}
    assert folders["grey"]["objects"] == {"gun": 1, "knife": 1}
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "colour:" in text and "grey:" in text and "by folder" in text
