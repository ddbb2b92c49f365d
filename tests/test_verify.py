"""The second look (edge.detect.verify): crops cut around each box, a self-describing ONNX
classifier that rescores them, and the live loop's detector running it."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge.config import EdgeConfig
from edge.detect.model import ModelError
from edge.detect.verify import Verifier, box_crops, cascade_version, rescored, square_crops
from edge.types import Detections

CLASSES = ("gun", "gun_part", "ammunition", "knife", "blade", "shuriken", "baton", "explosive")


def tiny_verifier(path, classes=CLASSES, crop=32, weight=0.5, whiteness=4.0, drop=(),
                  shape=None):
    """A real ONNX verifier: logits from the crop's mean colour, the last ("none") growing
    with whiteness (an empty belt is white), the threat classes all at 0."""
    n = len(classes) + 1
    w = np.zeros((3, n), np.float32)
    w[:, -1] = whiteness / 3
    graph = helper.make_graph(
        [helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMean", ["f"], ["m"], axes=[2, 3], keepdims=0),
         helper.make_node("Div", ["m", "scale"], ["u"]),
         helper.make_node("MatMul", ["u", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=1)],
        "verifier",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", 3, crop, crop])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [255.0]),
         helper.make_tensor("w", TensorProto.FLOAT, [3, n], w.ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    meta = {"classes": json.dumps(list(classes)), "crop": "32", "context": "1.5",
            "min_side": "10", "weight": json.dumps(weight), "version": "tiny-1"}
    if shape is not None:
        meta["shape"] = json.dumps(shape)
    for key, value in meta.items():
        if key not in drop:
            model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def test_a_crop_is_centred_on_its_box_and_spans_the_context():
    image = np.full((200, 300, 3), 255, np.uint8)
    image[90:110, 140:180] = 0                        # a 40 x 20 px object, centre (160, 100)
    crop = square_crops(image, np.array([[140, 90, 180, 110]]), 60, context=1.5, min_side=8)[0]
    dark = np.argwhere(crop[..., 0] < 128)
    # 1.5 x 40 px = 60 px of image onto 60 px: the object spans 40 x 20 px, centred.
    assert dark[:, 1].min() == 10 and dark[:, 1].max() == 49
    assert dark[:, 0].min() == 20 and dark[:, 0].max() == 39


def test_beyond_the_image_a_crop_is_empty_belt_and_small_boxes_keep_context():
    image = np.zeros((50, 50, 3), np.uint8)
    crop = square_crops(image, np.array([[0, 0, 4, 4]]), 40, context=2.0, min_side=20)[0]
    # A 4 px box keeps 20 px x 2 of context: 40 px around (2, 2), most of it off the image.
    assert crop[0, 0].tolist() == [255, 255, 255]
    assert crop[-1, -1].tolist() == [0, 0, 0]
    assert square_crops(image, np.zeros((0, 4)), 40, 2.0, 20).shape == (0, 40, 40, 3)


def test_a_box_crop_fills_its_middle_with_the_box_whatever_its_shape():
    image = np.full((200, 300, 3), 255, np.uint8)
    image[90:110, 140:180] = 0                        # a 40 x 20 px object, centre (160, 100)
    crop = box_crops(image, np.array([[140, 90, 180, 110]]), 60, context=1.5, min_side=8)[0]
    dark = np.argwhere(crop[..., 0] < 128)
    # Each axis: 1.5 times the box's side onto 60 px, so the box spans the middle 40 x 40
    # (to a pixel: the 20 px side is scaled up twice, its last row half covered).
    assert dark[:, 1].min() == 10 and dark[:, 1].max() == 49
    assert dark[:, 0].min() == 10 and dark[:, 0].max() in (48, 49)
    # The same object in a box twice as wide shows half as wide, centred: the crop tells a
    # box that holds its object from one that does not.
    wide = box_crops(image, np.array([[120, 90, 200, 110]]), 60, context=1.5, min_side=8)[0]
    dark = np.argwhere(wide[..., 0] < 128)
    assert dark[:, 1].min() == 20 and dark[:, 1].max() == 39
    # A thin box keeps ``min_side`` of context across; none at all is an empty batch.
    thin = box_crops(image, np.array([[150, 90, 152, 110]]), 60, context=1.5, min_side=8)[0]
    dark = np.argwhere(thin[..., 0] < 128)
    assert dark[:, 1].min() == 0 and dark[:, 1].max() == 59      # 12 px of image across
    assert box_crops(image, np.zeros((0, 4)), 40, 2.0, 20).shape == (0, 40, 40, 3)
    with pytest.raises(ValueError, match="BGR uint8"):
        box_crops(image[..., 0], np.array([[0, 0, 4, 4]]), 40, 2.0, 20)


def test_a_verifier_cuts_the_crops_its_metadata_names(tmp_path):
    image = np.full((100, 200, 3), 255, np.uint8)
    image[20:60, 20:40] = 0
    boxes = np.array([[20, 20, 40, 60]])
    square = Verifier(tiny_verifier(tmp_path / "s.onnx"))
    box = Verifier(tiny_verifier(tmp_path / "b.onnx", shape="box"))
    assert (square.shape, box.shape) == ("square", "box")
    # The box's crop is dark in its whole middle; the square's is white beside the object.
    assert box.probabilities(image, boxes)[0, -1] < square.probabilities(image, boxes)[0, -1]
    with pytest.raises(ModelError, match="crop shape 'round'"):
        Verifier(tiny_verifier(tmp_path / "r.onnx", shape="round"))


def test_rescoring_only_lowers_scores():
    probs = np.array([[0.5, 0, 0, 0, 0, 0, 0, 0, 0.5], [0, 0, 0, 0, 0, 0, 0, 0, 1.0],
                      [0, 0.9, 0, 0, 0, 0, 0, 0, 0.1]])
    out = rescored(np.array([0.8, 0.9, 0.4]), probs, 0.5)
    np.testing.assert_allclose(out, [0.8 * 0.5 ** 0.5, 0.0, 0.4 * 0.9 ** 0.5], rtol=1e-6)


def test_a_verifier_rescores_boxes_by_what_its_crops_show(tmp_path):
    verifier = Verifier(tiny_verifier(tmp_path / "v.onnx"))
    assert verifier.classes == CLASSES and verifier.crop == 32 and verifier.weight == 0.5
    image = np.full((100, 200, 3), 255, np.uint8)
    image[20:60, 20:60] = 0                                       # something dense on the left
    found = Detections(np.array([[20, 20, 60, 60], [120, 20, 160, 60]]), np.array([0.6, 0.6]),
                       np.array([0, 3]))
    out = verifier.rescore(image, found)
    np.testing.assert_array_equal(out.xyxy, found.xyxy)
    np.testing.assert_array_equal(out.class_id, found.class_id)
    assert out.score[1] < out.score[0] < 0.6     # the empty belt is called "none" more surely
    probs = verifier.probabilities(image, found.xyxy)
    np.testing.assert_allclose(out.score, 0.6 * (1 - probs[:, -1]) ** 0.5, rtol=1e-6)
    empty = Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    assert len(verifier.rescore(image, empty)) == 0
    assert cascade_version("m-1", verifier) == "m-1 + tiny-1"
    assert cascade_version("m-1", None) == "m-1"


def test_a_verifier_batches_many_boxes_in_order(tmp_path):
    verifier = Verifier(tiny_verifier(tmp_path / "v.onnx"), batch=3)
    image = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (60, 1, 3))
    boxes = np.array([[x, 10, x + 20, 30] for x in range(0, 180, 20)], np.float32)
    one_by_one = np.concatenate([verifier.probabilities(image, b[None]) for b in boxes])
    np.testing.assert_allclose(verifier.probabilities(image, boxes), one_by_one, rtol=1e-6)


@pytest.mark.parametrize("key", ["classes", "crop", "weight"])
def test_a_verifier_without_its_metadata_is_refused_by_name(tmp_path, key):
    with pytest.raises(ModelError, match=f"lacks metadata {key}"):
        Verifier(tiny_verifier(tmp_path / "v.onnx", drop=(key,)))


def test_a_missing_or_broken_verifier_file_is_refused(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Verifier(tmp_path / "nothing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load verifier"):
        Verifier(tmp_path / "bad.onnx")


def test_the_live_detector_drops_boxes_the_second_look_pushes_under_the_threshold(tmp_path):
    """The shipped model finds boxes in a simulated threat parcel; a second look that calls
    everything "none" with certainty leaves none of them above any threshold."""
    from edge.detect.parcel import ModelDetector
    from edge.tools.bench_detect import simulated_parcel

    image, _ = simulated_parcel(EdgeConfig())
    plain = ModelDetector(EdgeConfig(detector={"verifier": None}), thresholds=0.2)
    sure = tiny_verifier(tmp_path / "sure.onnx", whiteness=-60.0)   # "none" never
    doubt = tiny_verifier(tmp_path / "doubt.onnx", whiteness=60.0)  # "none" always
    kept = ModelDetector(EdgeConfig(detector={"verifier": sure}), thresholds=0.2)
    dropped = ModelDetector(EdgeConfig(detector={"verifier": doubt}), thresholds=0.2)
    found = plain.detect_image(image)
    assert len(found) > 0
    np.testing.assert_allclose(kept.detect_image(image).score, found.score, rtol=1e-5)
    assert len(dropped.detect_image(image)) == 0
    assert kept.version == f"{plain.version} + tiny-1"


def test_the_live_detector_refuses_a_verifier_of_other_classes(tmp_path):
    from edge.detect.parcel import ModelDetector
    other = tiny_verifier(tmp_path / "v.onnx", classes=("gun", "knife"))
    with pytest.raises(ValueError, match="trained for classes"):
        ModelDetector(EdgeConfig(detector={"verifier": other}))


def test_the_shipped_verifier_belongs_to_the_shipped_model():
    from edge.config import SHIPPED_MODEL, SHIPPED_VERIFIER
    from edge.detect.model import Detector
    assert SHIPPED_VERIFIER is not None
    verifier = Verifier(SHIPPED_VERIFIER)
    assert verifier.classes == Detector(SHIPPED_MODEL, warmup=False).info.classes
    assert 0 < verifier.weight <= 1


def test_a_verifier_takes_grey_and_16_bit_scans_as_the_detector_does(tmp_path):
    verifier = Verifier(tiny_verifier(tmp_path / "v.onnx"))
    grey = np.full((80, 80), 200, np.uint8)
    grey[20:40, 20:40] = 30
    boxes = np.array([[20, 20, 40, 40]], np.float32)
    want = verifier.probabilities(np.repeat(grey[..., None], 3, 2), boxes)
    np.testing.assert_allclose(verifier.probabilities(grey, boxes), want, rtol=1e-6)
    deep = grey.astype(np.uint16) << 8
    np.testing.assert_allclose(verifier.probabilities(deep, boxes), want, rtol=1e-6)
    with pytest.raises(ValueError, match="BGR uint8"):
        square_crops(grey, boxes, 32, 1.5, 10)


def test_the_shipped_second_look_runs_only_with_the_shipped_model():
    from edge.config import SHIPPED_MODEL, SHIPPED_VERIFIER
    assert EdgeConfig().detector.verifier == SHIPPED_VERIFIER
    assert EdgeConfig(detector={"model": str(SHIPPED_MODEL)}).detector.verifier == SHIPPED_VERIFIER
    assert EdgeConfig(detector={"model": "site.onnx"}).detector.verifier is None
    assert EdgeConfig(detector={"model": "site.onnx", "verifier": "v.onnx"}).detector.verifier \
        .name == "v.onnx"


def test_edge_detect_answers_as_the_live_loop_with_its_second_look(tmp_path, capsys):
    """``edge detect`` on a parcel picture gives the live detector's boxes (the shipped pair
    at the shipped thresholds); ``--verifier none`` gives the model's own scores."""
    import cv2

    from edge.cli import main
    from edge.detect.parcel import ModelDetector
    from edge.tools.bench_detect import simulated_parcel

    image, _ = simulated_parcel(EdgeConfig())
    path = tmp_path / "parcel.png"
    assert cv2.imwrite(str(path), image)
    live = ModelDetector(EdgeConfig()).detect_image(image)
    alone = ModelDetector(EdgeConfig(detector={"verifier": None}), thresholds=0.3)
    assert len(live) > 0

    def scores(*args):
        assert main(["detect", "--json", *args, str(path)]) == 0
        found = json.loads(capsys.readouterr().out)["detections"]
        return sorted(round(d["score"], 3) for d in found)

    assert scores() == sorted(round(float(s), 3) for s in live.score)
    assert scores("--verifier", "none", "--conf", "0.3") == \
        sorted(round(float(s), 3) for s in alone.detect_image(image).score)


def test_scored_candidates_go_down_to_the_second_looks_floor_and_only_fall(tmp_path):
    """What evaluation and calibration score: without a second look, the detector's boxes down
    to the floor asked for; with one, the detector's boxes down to the second look's floor,
    the same boxes in the same order, each score lowered by what its crop shows."""
    from edge.config import SHIPPED_MODEL
    from edge.detect.model import Detector, detect_with
    from edge.detect.verify import FLOOR, candidates
    from edge.tools.bench_detect import simulated_parcel

    image, _ = simulated_parcel(EdgeConfig())
    detector = Detector(SHIPPED_MODEL, warmup=False)
    alone = candidates(detector.raw, detector.info, image, None, 0.01)
    assert alone.score.min() >= 0.01 and (alone.score < FLOOR).any()
    verifier = Verifier(tiny_verifier(tmp_path / "v.onnx"))
    looked = candidates(detector.raw, detector.info, image, verifier, 0.01)
    before = detect_with(detector.raw, detector.info, image, FLOOR)
    assert len(looked) == len(before) > 0
    np.testing.assert_array_equal(looked.xyxy, before.xyxy)
    assert (looked.score <= before.score).all() and (looked.score < before.score).any()
