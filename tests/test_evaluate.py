"""``edge evaluate``: models scored on labelled scans of any format, through a real ONNX graph
with a planted box (the metric itself is checked against pycocotools' rules in
test_metrics)."""

import json
import shutil

import cv2
import pytest
from test_calibrate import model, write_set  # noqa: F401 - the fixture is used by name
from test_detect_cli import scan

from edge.cli import main
from edge.tools.evaluate import column_titles, parse_mapping
from edge.tools.labelsets import LabelsetError


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["evaluate", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_scores_each_model_in_one_table(tmp_path, model, capsys):  # noqa: F811
    labelled = write_set(tmp_path)
    twin = shutil.copy(model, tmp_path / "twin.onnx")
    code, out, _ = run(capsys, model, twin, "--data", labelled, "--json")
    assert code == 0
    result = json.loads(out)
    assert list(result["models"]) == [str(model), str(twin)]
    first, second = result["models"].values()
    assert first == second                          # the same graph scores the same
    assert first["images"] == 3
    assert first["classes"]["gun"]["gt"] == 1 and first["classes"]["knife"]["gt"] == 1
    assert first["classes"]["knife"]["AP50"] == 0.0                # labelled, never found
    # Found, beside two false alarms of the same score: ties go in image order (as in
    # pycocotools), so the gun comes first and the precision at full recall is still 1.
    assert first["classes"]["gun"]["AP50"] == 1.0
    assert result["ignored_labels"] == {"scissors": 1} and result["skipped"] == []


def test_a_found_object_alone_scores_one(tmp_path, model, capsys):  # noqa: F811
    assert cv2.imwrite(str(tmp_path / "gun.png"), scan(128, 128))
    coco = {"images": [{"id": 1, "file_name": "gun.png", "width": 128, "height": 128}],
            "categories": [{"id": 1, "name": "gun"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                             "bbox": [0, 32, 96, 96]}]}
    (tmp_path / "one.json").write_text(json.dumps(coco))
    code, out, _ = run(capsys, model, "--data", tmp_path / "one.json", "--json")
    scores = json.loads(out)["models"][str(model)]
    assert code == 0 and scores["classes"]["gun"]["AP50"] == 1.0
    assert scores["classes"]["knife"]["AP50"] is None   # nothing labelled: null, not NaN
    assert scores["mAP50"] == 1.0                       # the mean over labelled classes


def test_map_renames_and_drops_labels_and_says_what_it_left_out(tmp_path, model,  # noqa: F811
                                                                 capsys):
    labelled = write_set(tmp_path)
    code, out, _ = run(capsys, model, "--data", labelled, "--map", "scissors=",
                       "--map", "knife=pistol", "--json")
    result = json.loads(out)
    assert code == 0 and result["ignored_labels"] == {"pistol": 1}
    assert result["models"][str(model)]["classes"]["knife"]["gt"] == 0
    code, out, _ = run(capsys, model, "--data", labelled, "--map", "knife=pistol")
    assert code == 0 and "gun (1)" in out and "knife (0)" in out
    # The table's reader learns which labels were left out, and how many of each.
    assert "pistol 1" in out and "scissors 1" in out


def test_unreadable_scans_are_skipped_and_named(tmp_path, model, capsys):  # noqa: F811
    labelled = write_set(tmp_path)
    (tmp_path / "clear.png").write_bytes(b"not a png")
    code, out, _ = run(capsys, model, "--data", labelled, "--json")
    result = json.loads(out)
    assert code == 0 and result["models"][str(model)]["images"] == 2
    assert len(result["skipped"]) == 1 and "clear.png" in result["skipped"][0]


def test_bad_input_gets_a_clear_error(tmp_path, model, capsys):  # noqa: F811
    labelled = write_set(tmp_path)
    code, _, err = run(capsys, model, "--data", labelled, "--map", "knife")
    assert code == 2 and "FROM=TO" in err
    code, _, err = run(capsys, tmp_path / "none.onnx", "--data", labelled)
    assert code == 2 and "none.onnx" in err
    code, _, err = run(capsys, model, "--data", tmp_path / "nowhere.json")
    assert code == 2 and "nowhere.json" in err


def test_parse_mapping():
    assert parse_mapping(["pistol=gun", " person = ", "a=b"]) == {"pistol": "gun",
                                                                   "person": None, "a": "b"}
    with pytest.raises(LabelsetError, match="FROM=TO"):
        parse_mapping(["=gun"])
    assert parse_mapping([]) == {}


def test_confusion_says_what_each_object_was_seen_as(tmp_path, model, capsys):  # noqa: F811
    labelled = write_set(tmp_path)
    code, out, _ = run(capsys, model, "--data", labelled, "--confusion", "--json")
    table = json.loads(out)["models"][str(model)]["confusion"]
    assert code == 0 and table["labels"] == ["gun", "knife", "nothing"]
    assert table["score_threshold"] == 0.25 and table["iou"] == 0.5   # the config's defaults
    # The gun is found; the knife is missed; the planted box is a false alarm on the two
    # scans without a gun (the scissors label is not the model's and is left out).
    assert table["counts"] == [[1, 0, 0], [0, 0, 1], [2, 0, 0]]
    # Above the planted score, nothing is found: every object missed, no false alarm.
    code, out, _ = run(capsys, model, "--data", labelled, "--conf", "0.999")  # implies it
    assert code == 0
    text = out[out.index("what each labelled object was seen as"):]
    assert "score >= 0.999" in text
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]]
            for line in text.splitlines()[2:]}
    assert rows == {"gun": [0, 0, 1], "knife": [0, 0, 1], "nothing": [0, 0, 0]}


def test_a_second_look_is_scored_beside_the_model_alone(tmp_path, model, capsys):  # noqa: F811
    """``--verifier FILE`` rescores each model's boxes as the live loop does; the pair gets a
    column of its own, and a verifier of other classes is refused."""
    from test_verify import tiny_verifier

    labelled = write_set(tmp_path)
    doubting = tiny_verifier(tmp_path / "v.onnx", classes=("gun", "knife"), whiteness=8.0)
    code, out, _ = run(capsys, model, "--data", labelled, "--verifier", "none", "--conf",
                       "0.5", "--json")
    alone = json.loads(out)["models"][str(model)]
    code_pair, out, _ = run(capsys, model, "--data", labelled, "--verifier", doubting,
                            "--conf", "0.5", "--json")
    assert code == code_pair == 0
    pair = json.loads(out)["models"][f"{model} + v.onnx"]
    # The scans are alike, so the ranking and AP stand; the doubted gun falls under 0.5.
    assert pair["classes"]["gun"]["AP50"] == alone["classes"]["gun"]["AP50"] == 1.0
    assert alone["confusion"]["counts"][0] == [1, 0, 0]
    assert pair["confusion"]["counts"] == [[0, 0, 1], [0, 0, 1], [0, 0, 0]]
    code, out, _ = run(capsys, model, "--data", labelled, "--verifier", doubting)
    assert code == 0 and "m.onnx + v.onnx" in out.splitlines()[1]
    other = tiny_verifier(tmp_path / "other.onnx")          # the eight threat classes
    code, out, err = run(capsys, model, "--data", labelled, "--verifier", other)
    assert code == 2 and out == "" and "trained for classes" in err


def test_columns_of_files_with_one_name_keep_the_folders_that_tell_them_apart():
    titles, width = column_titles(
        ["models/lite0/lite0.int8.onnx + models/lite0/verifier.int8.onnx",
         "models/lite0/lite0.int8.onnx + runs/box/verifier.int8.onnx",
         "models/lite0/lite0.int8.onnx"], 10)
    assert titles == ["lite0.int8.onnx + lite0/verifier.int8.onnx",
                      "lite0.int8.onnx + box/verifier.int8.onnx", "lite0.int8.onnx"]
    assert width == len(titles[0]) + 2
