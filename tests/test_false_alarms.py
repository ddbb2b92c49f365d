"""What a false alarm sits on: the simulator's item boxes and models.false_alarms."""

import json
from pathlib import Path

import numpy as np
import pytest

from models.false_alarms import ClearParcel, main, read_clear, sits_on, without

ROOT = Path(__file__).resolve().parents[1]


def simulated(tmp_path: Path, threat_share: float, parcels: int = 3) -> Path:
    from edge.config import EdgeConfig
    from simulator.dataset import write_dataset
    config = EdgeConfig()
    config = config.model_copy(update={"scanner": config.scanner.model_copy(
        update={"threat_share": threat_share})})
    out = tmp_path / f"set-{threat_share}"
    write_dataset(config, parcels, out, seed=5, raw_and_photo=False)
    return out / "annotations.json"


def test_the_writer_boxes_every_item_where_the_image_shows_it(tmp_path):
    coco = json.loads(simulated(tmp_path, 1.0).read_text())
    labelled = 0
    for im in coco["images"]:
        boxes = np.asarray(im["item_boxes"], np.float32).reshape(-1, 4)
        assert len(boxes) == len(im["families"]) >= 3
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] > 0).all()
        assert (boxes[:, 0] + boxes[:, 2] <= im["width"] + 0.1).all()
        assert (boxes[:, 1] + boxes[:, 3] <= im["height"] + 0.1).all()
        # A labelled threat is one of the parcel's items: its label box is that item's box,
        # both mapped from the scene by the same belt geometry.
        for a in coco["annotations"]:
            if a["image_id"] == im["id"]:
                labelled += 1
                assert np.abs(boxes - np.asarray(a["bbox"], np.float32)).max(1).min() < 0.2
    assert labelled >= 2


def test_an_alarm_sits_on_the_item_it_overlaps_or_lies_within():
    items = np.array([[0, 0, 100, 20], [200, 200, 260, 260]], np.float32)
    assert sits_on(np.array([5, 0, 100, 22], np.float32), items) == 0            # IoU 0.86
    assert sits_on(np.array([210, 210, 240, 240], np.float32), items) == 1       # inside
    assert sits_on(np.array([400, 400, 450, 450], np.float32), items) == -1      # clutter
    assert sits_on(np.array([0, 0, 10, 10], np.float32), items[:0]) == -1
    # Half on an item, half beside it: neither close enough nor inside.
    assert sits_on(np.array([80, 0, 120, 20], np.float32), items) == -1


def test_alarms_left_without_some_families():
    def parcel(families, alarms):
        return ClearParcel(Path("x.png"), "box", families, np.zeros((len(families), 4)),
                           alarms)
    parcels = [parcel(["spanner", "book"], [("gun_part", 0)]),
               parcel(["spanner", "book"], [("gun_part", 0), ("explosive", 1)]),
               parcel(["book"], []),
               parcel(["pens"], [("knife", -1)])]
    gone, free, count = without(parcels, {"spanner"})
    assert gone == pytest.approx(2 / 4)          # the book's alarm and the clutter's stay
    assert (free, count) == (pytest.approx(1 / 2), 2)
    assert without(parcels, set())[0] == pytest.approx(3 / 4)


def test_only_clear_images_with_item_boxes_are_read(tmp_path):
    parcels, threats = read_clear([simulated(tmp_path, 1.0)], "colour")
    assert parcels == [] and threats == 3
    path = simulated(tmp_path, 0.0)
    parcels, threats = read_clear([path], None)
    assert len(parcels) == 6 and threats == 0
    coco = json.loads(path.read_text())
    for im in coco["images"]:
        del im["item_boxes"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(coco))
    with pytest.raises(SystemExit, match="simulate the set again"):
        read_clear([old], "colour")


def test_the_shipped_pair_names_what_its_alarms_sit_on(tmp_path, capsys):
    path = simulated(tmp_path, 0.0)
    args = ["--model", str(ROOT / "models/lite0/lite0.int8.onnx"),
            "--verifier", str(ROOT / "models/lite0/verifier.int8.onnx"), "--data", str(path)]
    out = tmp_path / "alarms.json"
    assert main([*args, "--threshold", "0.02", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "clear parcels diverted: 3 of 3 (100.0%)" in text
    rows = json.loads(out.read_text())
    assert len(rows) == 3 and all(r["alarms"] for r in rows)
    named = [f for r in rows for _, f in r["alarms"]]
    assert all(f is None or f in {g for r in rows for g in r["families"]} for f in named)
    assert any(f is not None for f in named)
    assert main([*args, "--threshold", "1.01"]) == 0
    assert "clear parcels diverted: 0 of 3 (0.0%)" in capsys.readouterr().out
