"""The edge command end to end, as a user runs it."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest


def edge(*args, env=None, timeout=120):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, check=True)


def test_sim_writes_a_coco_dataset(tmp_path):
    out = tmp_path / "set"
    result = edge("sim", "--parcels", "3", "--out", str(out), "--seed", "5", "--quiet",
                  env={"EDGE_SCANNER__THREAT_SHARE": "1.0"})
    assert json.loads(result.stdout)["parcels"] == 3
    coco = json.loads((out / "annotations.json").read_text())
    assert {c["name"] for c in coco["categories"]} >= {"gun", "knife", "explosive"}
    assert len(coco["images"]) == 6 and coco["annotations"]
    images = {im["id"]: im for im in coco["images"]}
    for ann in coco["annotations"]:
        im = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= im["width"] + 1e-3 and y + h <= im["height"] + 1e-3
    first = coco["images"][0]
    colour = cv2.imread(str(out / first["file_name"]), cv2.IMREAD_UNCHANGED)
    assert colour.shape == (first["height"], first["width"], 3)
    raw = cv2.imread(str(out / "raw" / f"{first['parcel_id']}_hi.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == colour.shape[:2]
    assert (out / "photo" / f"{first['parcel_id']}.jpg").exists()


def test_bench_sim_prints_its_figures():
    result = edge("bench", "sim", "--parcels", "2", "--json")
    f = json.loads(result.stdout)
    # The figures hang together: belt time is the lines at the line rate, and the ratio to
    # real time is belt time over wall time, as the two rates say.
    assert f["parcels"] == 2 and f["lines"] > 0
    assert f["belt_s"] == pytest.approx(f["lines"] * 1.0 / f["belt_speed_mm_s"], abs=1e-3)
    assert f["realtime_ratio"] == pytest.approx(f["belt_s"] / f["wall_s"], rel=0.02)
    assert f["parcels_per_s"] / f["scanner_parcels_per_s"] == \
        pytest.approx(f["realtime_ratio"], rel=0.02)


def test_calibrate_then_run(tmp_path):
    flat = tmp_path / "cal" / "flatfield.npz"
    edge("calibrate", "flatfield", "--lines", "64", "--out", str(flat))
    assert flat.exists()
    summary = tmp_path / "summary.json"
    # A fast belt and a near diverter keep the run short; the stand-in detector needs no model.
    result = edge("run", "--duration", "4", "--summary", str(summary), "--no-dashboard",
                  env={"EDGE_SCANNER__BELT_SPEED_MM_S": "1500",
                       "EDGE_PLC__DIVERTER_DISTANCE_MM": "4000",
                       "EDGE_PIPELINE__DETECTOR": "ground-truth",
                       "EDGE_CALIBRATION_DIR": str(flat.parent)})
    lines = [line for line in result.stdout.splitlines() if line.startswith("parcel ")]
    assert len(lines) >= 2
    assert "EDG00" in lines[0]
    report = json.loads(summary.read_text())
    assert report["parcels"] == len(lines)
    assert report["missed_threats"] == 0 and report["lost_commands"] == 0
    assert "ground-truth stand-in" in report["detector"]
    assert "calibrating" not in result.stdout  # the stored tables were used


def test_run_without_its_model_refuses_to_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "run", "--duration", "1"], capture_output=True,
        text=True, timeout=120, env={**os.environ, "EDGE_PIPELINE__DETECTOR": "model",
                                     "EDGE_DETECTOR__MODEL": str(tmp_path / "none.onnx"),
                                     "EDGE_CALIBRATION_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "cannot start: model file not found" in result.stderr
    assert "parcel " not in result.stdout


def test_bench_post_reports_the_nms_race_and_a_parcels_stages(tmp_path):
    parcel = tmp_path / "parcel.png"
    cv2.imwrite(str(parcel), np.random.default_rng(0).integers(0, 256, (400, 300, 3), np.uint8))
    result = edge("bench", "post", "--model", "models/parcelnet/parcelnet.int8.onnx",
                  "--image", str(parcel), "--json")
    figures = json.loads(result.stdout)
    assert figures["peers"] == ["edge", "opencv"] and figures["iou_threshold"] == 0.5
    assert len(figures["rows"]) >= 8
    # Timed against OpenCV's NMS on the same candidates, keeping the same boxes.
    assert all(row["opencv_same_kept"] for row in figures["rows"])
    stages = figures["stages"]
    assert (stages["parcel"], stages["image"], stages["tiles"]) == (str(parcel), [400, 300, 3], 1)
    assert stages["kept"] <= stages["candidates"]
    share = (stages["pre_ms"] + stages["post_ms"]) / stages["session_run_ms"]
    assert stages["pre_post_share_of_run"] == pytest.approx(share, rel=0.02, abs=0.001)


def another_network(path):
    """The shipped model's file, written to ``path`` naming another version."""
    import onnx

    from edge.config import SHIPPED_MODEL
    proto = onnx.load(str(SHIPPED_MODEL))
    for prop in proto.metadata_props:
        if prop.key == "version":
            prop.value = "another-network"
    onnx.save(proto, str(path))
    return path


def test_bench_model_per_parcel_pairs_each_model_with_its_own_second_look(tmp_path):
    """The configured second look was trained on the configured model's boxes: another
    network is timed alone unless given a second look of its own, and a flag given per model
    must name one value for every model or one each."""
    from edge.config import SHIPPED_MODEL, SHIPPED_VERIFIER
    shipped, other = SHIPPED_MODEL, another_network(tmp_path / "other.onnx")
    base = ("bench", "model", "--per-parcel", "--parcels", "1", "--json", "--models",
            str(shipped), str(other))

    rows = json.loads(edge(*base).stdout)["rows"]
    paired = [(r["model"], r.get("verifier")) for r in rows]
    assert paired == [(str(shipped), None), (str(other), None),
                      (str(shipped), str(SHIPPED_VERIFIER))]

    rows = json.loads(edge(*base, "--verifier", "none", str(SHIPPED_VERIFIER),
                           "--verify-at", "0.3").stdout)["rows"]
    assert [(r["model"], r.get("verifier"), r.get("verify_at")) for r in rows] == [
        (str(shipped), None, None), (str(other), None, None),
        (str(other), str(SHIPPED_VERIFIER), 0.3)]

    refused = subprocess.run([sys.executable, "-m", "edge.cli", *base, "--verifier", "none",
                              "none", "none"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "--verifier takes one value for every model or one per model (2), got 3" \
        in refused.stderr


def test_the_configured_second_look_serves_any_file_of_the_configured_network(tmp_path):
    """Scored as they are timed: a copy of the configured model (as its float graph) is the
    network the configured second look was trained on, and ``edge evaluate`` scores it with
    that look, as ``edge bench model`` times it; a file naming another version is scored
    alone."""
    import shutil

    from edge.config import SHIPPED_MODEL, SHIPPED_VERIFIER
    copy = shutil.copy(SHIPPED_MODEL, tmp_path / "copy.onnx")
    other = another_network(tmp_path / "other.onnx")
    edge("sim", "--parcels", "1", "--out", str(tmp_path / "set"), "--seed", "5", "--quiet")
    scored = json.loads(edge("evaluate", "--json", str(SHIPPED_MODEL), str(copy), str(other),
                             "--data", str(tmp_path / "set" / "annotations.json")).stdout)
    look = SHIPPED_VERIFIER.name
    assert list(scored["models"]) == [f"{SHIPPED_MODEL} + {look}", f"{copy} + {look}",
                                      str(other)]
    assert scored["models"][f"{copy} + {look}"] == scored["models"][f"{SHIPPED_MODEL} + {look}"]
