"""Held-out styles and scanner set-ups (models.styles): the transforms, the table, and that
one seed gives the same parcels at every pitch."""

import json

import cv2
import numpy as np
import pytest
from test_calibrate import write_set
from test_model import planted_head, write_model

from edge.detect.model import Detector
from models import styles
from models.data import coco_records
from models.evaluate import evaluate


@pytest.fixture(scope="module")
def colour():
    rng = np.random.default_rng(0)
    img = np.full((64, 80, 3), 230, np.uint8)
    img[10:40, 20:60] = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    return img


@pytest.mark.parametrize("name", list(styles.STYLES))
def test_every_style_keeps_the_image_shape(name, colour):
    style = styles.STYLES[name]
    if style is None:
        return
    out = style(colour, np.random.default_rng(1))
    assert out.shape == colour.shape and out.dtype == np.uint8
    assert not np.array_equal(out, colour)
    grey = cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert style(grey, np.random.default_rng(1)).shape == grey.shape


def test_styles_do_what_their_names_say(colour):
    rng = np.random.default_rng(2)
    bright, dark = styles.STYLES["gamma 0.4 (bright)"], styles.STYLES["gamma 2.5 (dark)"]
    assert bright(colour, rng).mean() > colour.mean() > dark(colour, rng).mean()
    grey = np.repeat(colour[..., :1], 3, axis=2)
    turned = styles.STYLES["palette turned 90 degrees"]
    assert np.array_equal(turned(grey, rng), grey)          # no palette to turn
    hue = cv2.cvtColor(colour, cv2.COLOR_BGR2HSV)[..., 0].astype(int)
    turned_hue = cv2.cvtColor(turned(colour, rng), cv2.COLOR_BGR2HSV)[..., 0].astype(int)
    saturated = cv2.cvtColor(colour, cv2.COLOR_BGR2HSV)[..., 1] > 100
    shift = (turned_hue - hue) % 180
    assert np.median(shift[saturated]) == pytest.approx(45, abs=2)   # 90 degrees in OpenCV


def test_table_scores_every_style_against_its_baseline(tmp_path):
    model = write_model(tmp_path / "m.onnx", planted_head([(16, 1, 2, 0, 1.5)]))
    write_set(tmp_path)
    coco = json.loads((tmp_path / "set.json").read_text())
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    records = coco_records(tmp_path, classes=("gun", "knife"))   # the planted model's
    det = Detector(model)
    from test_verify import tiny_verifier

    from edge.detect.verify import Verifier
    verifier = Verifier(tiny_verifier(tmp_path / "v.onnx", classes=("gun", "knife")))
    looked_at, rescore = [], verifier.rescore
    verifier.rescore = lambda image, found: looked_at.append(len(found)) or rescore(image, found)
    rows = styles.style_table([("m", det.raw, det.info, None),
                               ("m + v", det.raw, det.info, verifier)], records,
                              {styles.CONTROL: records, "other": records[:2]})
    assert [r["style"] for r in rows] == [*styles.STYLES, styles.CONTROL, "other"]
    assert {r["against"] for r in rows[:len(styles.STYLES)]} == {"as simulated"}
    assert rows[-1]["against"] == styles.CONTROL and rows[-1]["images"] == 2
    plain = evaluate(det.raw, det.info, records)
    assert rows[0]["models"]["m"]["mAP50"] == plain["mAP50"]
    assert len(looked_at) == sum(r["images"] for r in rows)      # every image, every row
    second = evaluate(det.raw, det.info, records, verifier=verifier)   # rescored as at run time
    assert rows[0]["models"]["m + v"]["mAP50"] == second["mAP50"]
    text = styles.report(rows)
    assert "JPEG quality 30" in text and "(+0.000)" in text


def test_one_seed_gives_the_same_parcels_at_every_pitch(tmp_path):
    folders = styles.setup_sets(tmp_path, parcels=1)
    assert list(folders) == list(styles.SETUPS)
    images = {name: json.loads((f / "annotations.json").read_text())["images"]
              for name, f in folders.items()}
    kinds = {name: [(im["kind"], tuple(im["families"])) for im in ims]
             for name, ims in images.items()}
    assert len({json.dumps(k) for k in kinds.values()}) == 1
    widths = {name: ims[0]["width"] for name, ims in images.items()}
    heights = {name: ims[0]["height"] for name, ims in images.items()}
    assert heights == {name: px for name, (_, px) in styles.SETUPS.items()}
    assert widths["pitch 0.5 mm (1536 px)"] > widths[styles.CONTROL] > \
        widths["pitch 2.0 mm (384 px)"]


def test_the_second_look_rescores_only_the_detector_named_first(tmp_path):
    from test_verify import tiny_verifier
    model = write_model(tmp_path / "m.onnx", planted_head([(16, 1, 2, 0, 1.5)]))
    det = Detector(model)
    models = [("m", det.raw, det.info, None), ("peer", det.raw, det.info, None)]
    looked = styles.with_second_look(models, tiny_verifier(tmp_path / "v.onnx",
                                                           classes=("gun", "knife")))
    assert [name for name, *_ in looked] == ["m", "peer", f"m + {tmp_path / 'v.onnx'}"]
    assert looked[-1][3].classes == ("gun", "knife")
    with pytest.raises(SystemExit, match="name its own detector first"):
        styles.with_second_look(models, tiny_verifier(tmp_path / "w.onnx", classes=("gun",)))
