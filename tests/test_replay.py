"""Record a simulated line while it inspects, then replay the recording through the same
code: the same verdicts, ground truth carried along, and every way a recording can be damaged
met with a clear word and the rest replayed."""

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.config import PROHIBITED, EdgeConfig
from edge.sources.recording import Recorder, Recording, RecordingError, RecordingTruncated
from edge.tools.labelsets import LabelsetError
from edge.tools.replay import (
    PARCEL_STEM,
    ReplayHub,
    labelling_template,
    recorded_config,
    truths_from_labels,
)
from simulator.harness import SimulatedHub

pytestmark = pytest.mark.slow


def live_config(tmp_path):
    # A long belt to the diverter: the live run must inspect every parcel (the replay is
    # compared with it) even on a busy machine.
    return EdgeConfig(scanner={"seed": 7, "belt_speed_mm_s": 1500, "threat_share": 0.5},
                      plc={"type": "sim", "diverter_distance_mm": 9000},
                      calibration_dir=tmp_path / "cal")


def verdict_rows(verdicts):
    return sorted((p.seq, p.id, int(p.shape[1]), v.action.value, tuple(p.truth_labels))
                  for p, v in verdicts)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(a recording of 9 s of a live simulated line, the live verdicts, its summary)."""
    tmp_path = tmp_path_factory.mktemp("live")
    verdicts = []
    hub = SimulatedHub(live_config(tmp_path), log=lambda _: None,
                       show=lambda p, v: verdicts.append((p, v)), record=tmp_path / "rec")
    summary = hub.run(9.0)
    assert summary["uninspected"] == 0 and summary["parcels"] >= 8, summary
    return tmp_path / "rec", verdict_rows(verdicts), summary


def replay(folder, **kwargs):
    verdicts = []
    hub = ReplayHub(Recording(folder), log=lambda _: None,
                    show=lambda p, v: verdicts.append((p, v)), **kwargs)
    return hub.run(), verdict_rows(verdicts)


def test_a_replay_gives_exactly_the_live_verdicts(recorded):
    folder, live, live_summary = recorded
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] and manifest["chunks"] >= 4 and manifest["photos"] >= 8
    summary, replayed = replay(folder)
    # Same parcels (named from the recorded photos), same cuts, same actions, same truth.
    assert replayed == live
    assert summary["threat_parcels"] == live_summary["threat_parcels"] >= 1
    assert summary["missed_threats"] == sum(1 for *_, action, truth in live
                                            if truth and action == "clear")
    blocks = [b for chunk, _ in Recording(folder).chunks() for b in chunk]
    assert summary["uninspected"] == 0
    assert summary["recorded_s"] == pytest.approx(blocks[-1].t[-1] - blocks[0].t[0], abs=0.01)


def test_a_replay_at_real_time_gives_the_same_verdicts(recorded):
    folder, live, _ = recorded
    summary, replayed = replay(folder, speed=4.0)
    assert replayed == live
    assert summary["duration_s"] >= summary["recorded_s"] / 4 * 0.9


def test_a_recording_cut_off_replays_up_to_its_last_whole_chunk(recorded, tmp_path):
    folder, live, _ = recorded
    cut = shutil.copytree(folder, tmp_path / "cut")
    manifest = json.loads((cut / "manifest.json").read_text())
    (cut / "manifest.json").write_text(json.dumps(manifest | {"complete": False}))
    chunks = sorted((cut / "chunks").glob("*.npz"))
    for path in chunks[-2:]:
        path.unlink()
    (cut / "chunks" / "000099.part").write_bytes(b"half a chunk")   # the one being written
    with pytest.warns(RecordingTruncated, match="cut off while recording"):
        recording = Recording(cut)
    verdicts = []
    ReplayHub(recording, log=lambda _: None, show=lambda p, v: verdicts.append((p, v))).run()
    replayed = verdict_rows(verdicts)
    assert 1 <= len(replayed) < len(live)
    assert replayed == live[:len(replayed)]


def test_a_corrupt_chunk_is_named_and_skipped(recorded, tmp_path):
    folder, live, _ = recorded
    damaged = shutil.copytree(folder, tmp_path / "damaged")
    bad = sorted((damaged / "chunks").glob("*.npz"))[1]
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary, replayed = replay(damaged)
    messages = [str(w.message) for w in caught if w.category is RecordingTruncated]
    assert any(bad.name in m and "skipped" in m for m in messages), messages
    # The parcels before the damage replay as they were, those in it are lost, and the rest
    # replays to the end as it was.
    assert replayed[0] == live[0] and replayed[-1][1:] == live[-1][1:]
    assert len(replayed) < len(live) and summary["parcels"] == len(replayed)


def test_a_newer_format_or_no_recording_is_refused(recorded, tmp_path, capsys):
    folder, _, _ = recorded
    newer = shutil.copytree(folder, tmp_path / "newer")
    manifest = json.loads((newer / "manifest.json").read_text())
    (newer / "manifest.json").write_text(json.dumps(manifest | {"version": 2}))
    with pytest.raises(RecordingError, match="format version 2, newer than this edge's 1"):
        Recording(newer)
    assert main(["replay", str(newer)]) == 2
    assert "newer than this edge's 1" in capsys.readouterr().err
    with pytest.raises(RecordingError, match="no manifest.json"):
        Recording(tmp_path)


def test_recording_stops_at_its_size_limit_and_inspection_goes_on(tmp_path):
    config = live_config(tmp_path).model_copy(update={"plc": EdgeConfig(
        plc={"type": "none"}).plc})
    hub = SimulatedHub(config, log=lambda _: None, show=lambda p, v: None,
                       record=tmp_path / "small", record_max_bytes=20_000_000)
    summary = hub.run(6.0)
    assert summary["parcels"] >= 4 and summary["undecided"] == 0
    assert "size limit" in hub.recorder.stopped
    manifest = json.loads((tmp_path / "small" / "manifest.json").read_text())
    assert manifest["complete"] and "size limit" in manifest["stopped"]
    chunk_bytes = sum(p.stat().st_size for p in (tmp_path / "small" / "chunks").iterdir())
    assert chunk_bytes <= 20_000_000 + 100_000   # npz headers beside the arrays
    with pytest.warns(RecordingTruncated, match="stopped early"):
        Recording(tmp_path / "small")


def test_a_recorder_wants_a_folder_of_its_own(tmp_path, recorded):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(RecordingError, match="not empty"):
        Recorder(tmp_path / "busy", "", Recording(recorded[0]).flat())
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"


def test_the_recorded_config_is_replayed_without_plc_or_faults(recorded, tmp_path):
    config = recorded_config(Recording(recorded[0]), model=tmp_path / "other.onnx")
    assert config.plc.type == "none" and config.faults.active == []
    assert config.scanner.seed == 7 and config.detector.model == tmp_path / "other.onnx"


def test_replay_report_comparison_and_thresholds_from_the_replay(recorded, tmp_path, capsys):
    from edge.shipping import shipped_file
    folder, live, _ = recorded
    out = tmp_path / "report"
    model = shipped_file("lite0.int8.onnx")
    # The same model twice: the comparison must find no difference on the same parcels.
    assert main(["replay", str(folder), "--report", str(out), "--quiet",
                 "--model", str(model), "--model", str(model)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    first, second = metrics["runs"]
    assert first["parcels"] == len(live) == second["parcels"]
    threats = sum(1 for *_, truth in live if truth)
    diverted_threats = sum(1 for *_, action, truth in live if truth and action != "clear")
    assert first["parcel"]["recorded"]["pd"] == pytest.approx(diverted_threats / threats)
    applied = metrics["comparison"]["applied"]
    assert applied["pd_b_minus_a"] == 0 and applied["far_b_minus_a"] == 0
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html and "data:image/png;base64" in html
    capsys.readouterr()
    table = tmp_path / "thresholds.json"
    assert main(["calibrate", "thresholds", "--replay", str(out), "--target-pd", "0.5",
                 "--out", str(table), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    written = json.loads(table.read_text())
    assert written["model_version"] == first["version"]
    assert report["on_data"]["calibrated"]["threat_images"] == threats
    assert report["on_data"]["calibrated"]["threat_diverted"] >= 0.5 * threats


def test_labelled_images_replay_as_parcels(tmp_path, capsys):
    assert main(["sim", "--parcels", "3", "--seed", "4", "--out", str(tmp_path / "set"),
                 "--quiet"]) == 0
    coco = json.loads((tmp_path / "set" / "annotations.json").read_text())
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["replay", str(tmp_path / "set" / "annotations.json"), "--report",
                 str(out)]) == 0
    run = json.loads((out / "metrics.json").read_text())["runs"][0]
    assert run["parcels"] == run["parcels_with_truth"] == len(coco["images"])
    threat_images = {a["image_id"] for a in coco["annotations"]}
    assert run["parcel"]["recorded"]["threat_parcels"] == len(threat_images)
    (tmp_path / "empty").mkdir()
    assert main(["replay", str(tmp_path / "empty")]) == 2
    assert "not a recording (no manifest.json) nor a labelled set" in capsys.readouterr().err


def test_labels_drawn_on_exported_parcels_score_a_recording_without_truth(recorded, tmp_path):
    folder, _, _ = recorded
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    (bare / "truth.jsonl").unlink()
    exported = tmp_path / "parcels"
    scored, _ = replay(folder, export=exported)
    template = json.loads(labelling_template(exported, list(PROHIBITED)).read_text())
    assert len(template["images"]) == scored["parcels"] and template["annotations"] == []
    # Label the pictures as a person would, here from the simulator's own truth.
    truth = {t.encoder: t for t in Recording(folder).truths()}
    category = {c["name"]: c["id"] for c in template["categories"]}
    labelled = dict(template, annotations=[])
    for image in template["images"]:
        start, end = PARCEL_STEM.search(Path(image["file_name"]).stem).groups()
        record = truth[(int(start), int(end))]
        for label, (x1, y1, x2, y2) in zip(record.labels, record.boxes.tolist(), strict=True):
            labelled["annotations"].append({
                "id": len(labelled["annotations"]) + 1, "image_id": image["id"],
                "category_id": category[label], "bbox": [x1, y1, x2 - x1, y2 - y1]})
    (exported / "labels.json").write_text(json.dumps(labelled))

    unscored, _ = replay(bare)
    assert "threat_parcels" not in unscored
    relabelled, _ = replay(bare, truths=truths_from_labels(exported / "labels.json"))
    assert scored["threat_parcels"] > 0
    for key in ("threat_parcels", "missed_threats", "false_diverts"):
        assert relabelled[key] == scored[key], key
    # The same from the command line.
    assert main(["replay", str(bare), "--quiet", "--labels", str(exported / "labels.json"),
                 "--summary", str(tmp_path / "summary.json")]) == 0
    from_cli = json.loads((tmp_path / "summary.json").read_text())
    assert from_cli["threat_parcels"] == scored["threat_parcels"]


def test_labels_on_pictures_not_named_by_replay_are_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "bag.png"), np.full((8, 8, 3), 255, np.uint8))
    (tmp_path / "labels.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "bag.png", "width": 8, "height": 8}],
        "annotations": [], "categories": [{"id": 1, "name": "gun"}]}))
    with pytest.raises(LabelsetError, match="does not say which parcel"):
        truths_from_labels(tmp_path / "labels.json")


def test_a_replay_at_real_time_drives_a_simulated_plc_as_the_live_run_did(recorded):
    folder, live, live_summary = recorded
    summary, verdicts = replay(folder, speed=1.0, plc=True)
    assert verdicts == live
    # The simulated diverter saw every parcel and did with it what it did live.
    assert summary["diverter_seen"] == summary["parcels"] == live_summary["parcels"]
    assert summary["lost_commands"] == 0 and summary["plc"]["link"]["acked"] > 0
    for key in ("diverted", "threat_parcels", "missed_threats", "false_diverts"):
        assert summary[key] == live_summary[key], key
    with pytest.raises(ValueError, match="real time"):
        ReplayHub(Recording(folder), speed=None, plc=True, log=lambda _: None)
