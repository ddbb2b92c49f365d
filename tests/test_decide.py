"""The decision policy: thresholds, actions, fail-closed defaults."""

import json

import numpy as np
import pytest

from edge.config import EdgeConfig
from edge.decide import Policy
from edge.types import Action, Detections

CLASSES = ("gun", "knife", "blade")


def found(*rows):
    rows = rows or []
    return Detections(np.array([[0, 0, 10, 10]] * len(rows), np.float32),
                      np.array([r[1] for r in rows], np.float32),
                      np.array([CLASSES.index(r[0]) for r in rows], np.int64))


def test_divert_class_above_its_threshold_diverts():
    policy = Policy.build(CLASSES, 0.5, {"gun": 0.3})
    verdict = policy.decide("P1", found(("gun", 0.35), ("knife", 0.4)))
    assert verdict.action == Action.DIVERT and verdict.reason == "gun"
    assert len(verdict.detections) == 1   # the knife stayed under its 0.5


def test_nothing_above_threshold_clears():
    verdict = Policy.build(CLASSES, 0.5).decide("P2", found(("gun", 0.49)))
    assert verdict.action == Action.CLEAR and len(verdict.detections) == 0 and not verdict.reason


def test_alarm_and_ignore_actions():
    policy = Policy.build(CLASSES, 0.5, actions={"blade": "alarm", "knife": "ignore"})
    v = policy.decide("P3", found(("blade", 0.9), ("knife", 0.9)))
    assert v.action == Action.CLEAR and v.reason == "alarm: blade"
    assert v.detections.class_id.tolist() == [CLASSES.index("blade")]
    v = policy.decide("P4", found(("blade", 0.9), ("gun", 0.8)))
    assert v.action == Action.DIVERT and v.reason == "gun" and len(v.detections) == 2


def test_class_missing_from_the_action_table_is_diverted():
    policy = Policy.build(CLASSES, 0.5, actions={"gun": "divert"})
    assert policy.decide("P5", found(("blade", 0.6))).action == Action.DIVERT


def test_empty_detections_clear():
    assert Policy.build(CLASSES, 0.5).decide("P6", Detections.empty()).action == Action.CLEAR


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="unknown classes"):
        Policy.build(CLASSES, 0.5, {"rocket": 0.2})
    with pytest.raises(ValueError, match="must lie in"):
        Policy.build(CLASSES, 0.5, {"gun": 1.5})
    with pytest.raises(ValueError, match="outside the model"):
        Policy.build(CLASSES, 0.5).decide("P7", Detections([[0, 0, 1, 1]], [0.9], [7]))


def test_thresholds_come_from_config_then_calibration_then_default(tmp_path):
    (tmp_path / "thresholds.json").write_text(json.dumps(
        {"model_version": "m-1", "thresholds": {"gun": 0.2, "knife": 0.3, "unknown": 0.1}}))
    config = EdgeConfig(calibration_dir=tmp_path, decision={"thresholds": {"knife": 0.6}},
                        detector={"score_threshold": 0.4})
    policy = Policy.from_config(config, CLASSES, "m-1")
    np.testing.assert_allclose(policy.thresholds, [0.2, 0.6, 0.4])
    assert "m-1" in policy.source
    # A stand-in (no model version) takes no calibrated table.
    np.testing.assert_allclose(Policy.from_config(config, CLASSES).thresholds, [0.4, 0.6, 0.4])
    (tmp_path / "thresholds.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="thresholds.json"):
        Policy.from_config(config, CLASSES, "m-1")
    # The old flat table names no model: refused, not guessed at.
    (tmp_path / "thresholds.json").write_text(json.dumps({"gun": 0.2}))
    with pytest.raises(ValueError, match="not a thresholds table"):
        Policy.from_config(config, CLASSES, "m-1")


def test_a_site_table_for_another_model_refuses_to_start(tmp_path):
    (tmp_path / "thresholds.json").write_text(json.dumps(
        {"model_version": "m-1", "thresholds": {"gun": 0.2}}))
    config = EdgeConfig(calibration_dir=tmp_path)
    with pytest.raises(ValueError, match="calibrated for model m-1, but the detector is m-2"):
        Policy.from_config(config, CLASSES, "m-2")


def test_the_shipped_operating_point_goes_with_the_shipped_pair_only(tmp_path):
    """The shipped table names the shipped model and its second look: it applies to the pair,
    not to the model alone, whose scores lie on another scale."""
    from edge.decide import read_thresholds
    from edge.detect.model import Detector
    from edge.detect.verify import Verifier, cascade_version
    from edge.shipping import shipped_file
    shipped = shipped_file("thresholds.json")
    model = Detector(shipped_file("lite0.int8.onnx"), threads=1)
    pair = cascade_version(model.info.version, Verifier(shipped_file("verifier.int8.onnx")))
    version, table = read_thresholds(shipped, model.info.classes)
    assert version == pair and set(table) == set(model.info.classes)
    empty = EdgeConfig(calibration_dir=tmp_path, detector={"score_threshold": 0.9})
    policy = Policy.from_config(empty, model.info.classes, pair)
    assert policy.thresholds.tolist() == pytest.approx([table[c] for c in model.info.classes])
    assert policy.source == f"shipped with {version}"
    alone = Policy.from_config(empty, model.info.classes, model.info.version)
    assert alone.source == "defaults"
    other = Policy.from_config(empty, model.info.classes, "another-model")
    assert other.thresholds.tolist() == pytest.approx([0.9] * len(model.info.classes))
    assert other.source == "defaults"
