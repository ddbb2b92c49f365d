"""Labelled-set importers: one small set written in COCO, VOC and YOLO reads back the same."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.tools.labelsets import (
    LabelledImage,
    LabelsetError,
    map_labels,
    read_coco,
    read_labelset,
    read_voc,
    read_yolo,
)

CLASSES = ("gun", "knife")
# name, (height, width), channels, boxes xyxy px, labels; b.png is a negative
SET = [
    ("a.png", (80, 120), 3, [[10.25, 20.5, 60.75, 45.0], [0.0, 0.0, 120.0, 80.0]],
     ["gun", "knife"]),
    ("b.png", (60, 50), 1, [], []),
    ("c.png", (100, 100), 1, [[33.3, 12.7, 34.9, 99.1]], ["knife"]),
]


def write_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (h, w), channels, _, _ in SET:
        image = np.full((h, w, channels), 255, np.uint8).squeeze()
        image[h // 4:h // 2, w // 4:w // 2] = 40  # something dense, as in a scan
        cv2.imwrite(str(folder / name), image)


def write_coco(root: Path) -> Path:
    write_images(root / "images")
    images, annotations = [], []
    for n, (name, (h, w), _, boxes, labels) in enumerate(SET, start=1):
        images.append({"id": n, "file_name": f"images/{name}", "width": w, "height": h})
        for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": n, "iscrowd": 0,
                                "category_id": CLASSES.index(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1]})
    # A crowd region, even one lying outside the image, is skipped.
    annotations.append({"id": 99, "image_id": 1, "category_id": 1, "iscrowd": 1,
                        "bbox": [500, 500, 10, 10]})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}
    path = root / "annotations.json"
    path.write_text(json.dumps(coco, indent=1))
    return path


def write_voc(root: Path) -> Path:
    write_images(root / "JPEGImages")
    (root / "Annotations").mkdir()
    for name, (h, w), channels, boxes, labels in SET:
        objects = "".join(
            f"<object><name>{label}</name><difficult>0</difficult><bndbox>"
            f"<xmin>{x1 + 1!r}</xmin><ymin>{y1 + 1!r}</ymin><xmax>{x2!r}</xmax>"
            f"<ymax>{y2!r}</ymax></bndbox></object>"
            for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True))
        xml = (f"<annotation><filename>{name}</filename><size><width>{w}</width><height>{h}"
               f"</height><depth>{channels}</depth></size>{objects}</annotation>")
        (root / "Annotations" / f"{Path(name).stem}.xml").write_text(xml)
    return root / "Annotations"


def write_yolo(root: Path) -> Path:
    write_images(root / "images")
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names:\n  0: gun\n  1: knife\n")
    for name, (h, w), _, boxes, labels in SET:
        if not boxes:
            continue  # no label file: a negative
        lines = [f"{CLASSES.index(label)} {(x1 + x2) / 2 / w!r} {(y1 + y2) / 2 / h!r} "
                 f"{(x2 - x1) / w!r} {(y2 - y1) / h!r}"
                 for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True)]
        (root / "labels" / f"{Path(name).stem}.txt").write_text("\n".join(lines) + "\n")
    return root / "images"


WRITERS = {"coco": write_coco, "voc": write_voc, "yolo": write_yolo}


def check_same_as_set(items: list[LabelledImage]) -> None:
    assert [item.path.name for item in items] == [name for name, *_ in SET]
    for item, (_, _, _, boxes, labels) in zip(items, SET, strict=True):
        assert item.path.is_file()
        assert item.boxes.dtype == np.float32 and item.boxes.shape == (len(boxes), 4)
        np.testing.assert_allclose(item.boxes, np.reshape(boxes, (-1, 4)), atol=1e-3)
        assert item.labels == tuple(labels)


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_each_format_reads_back_the_same_boxes(tmp_path, fmt):
    check_same_as_set(read_labelset(WRITERS[fmt](tmp_path), fmt=fmt))


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_format_is_detected_from_the_path(tmp_path, fmt):
    check_same_as_set(read_labelset(WRITERS[fmt](tmp_path)))


def test_readers_take_explicit_folders_and_class_lists(tmp_path):
    write_yolo(tmp_path / "y")
    (tmp_path / "y" / "data.yaml").unlink()  # classes come from the argument instead
    check_same_as_set(read_yolo(tmp_path / "y" / "images", tmp_path / "y" / "labels", CLASSES))
    (tmp_path / "y" / "labels" / "classes.txt").write_text("gun\nknife\n")
    check_same_as_set(read_yolo(tmp_path / "y" / "images"))
    write_voc(tmp_path / "v")
    check_same_as_set(read_voc(tmp_path / "v" / "Annotations", tmp_path / "v" / "JPEGImages"))
    one = read_voc(tmp_path / "v" / "Annotations" / "c.xml")
    assert one[0].labels == ("knife",)
    coco = write_coco(tmp_path / "c")
    moved = tmp_path / "elsewhere.json"
    moved.write_text(coco.read_text())
    check_same_as_set(read_coco(moved, images_dir=tmp_path / "c"))


def test_map_labels_renames_drops_and_refuses_strays(tmp_path):
    items = [LabelledImage(tmp_path / "x.png", [[0, 0, 5, 5], [1, 1, 4, 4], [2, 2, 3, 3]],
                           ("pistol", "person", "knife"))]
    mapped = map_labels(items, {"pistol": "gun", "person": None})
    assert mapped[0].labels == ("gun", "knife")
    np.testing.assert_array_equal(mapped[0].boxes, [[0, 0, 5, 5], [2, 2, 3, 3]])
    with pytest.raises(LabelsetError, match="person, pistol are not ours.*gun"):
        map_labels(items, {})
    assert map_labels(items, {}, known=None)[0].labels == items[0].labels
    dropped = map_labels(items, {"pistol": None, "person": None, "knife": None})
    assert dropped[0].boxes.shape == (0, 4)  # every box dropped: the image stays, a negative


def test_labelled_image_checks_its_shapes(tmp_path):
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        LabelledImage(tmp_path / "x.png", np.zeros((2, 4)), ("gun",))


def edit_json(path: Path, change) -> None:
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))


def edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def first_ann(coco: dict) -> dict:
    return coco["annotations"][0]


@pytest.mark.parametrize(
    ("fmt", "spoil", "message"),
    [
        # COCO
        ("coco", lambda p: p.with_name("nope.json"), r"nope\.json: not found"),
        ("coco", lambda p: edit_text(p, '"images": [', '"images": [,'),
         r"annotations\.json: not valid JSON.* line 2"),
        ("coco", lambda p: edit_json(p, lambda c: c.pop("images")), "not a COCO file"),
        ("coco", lambda p: edit_json(p, lambda c: first_ann(c).update(category_id=9)),
         "annotation 1: category_id 9 is not in 'categories'"),
        ("coco", lambda p: edit_json(p, lambda c: first_ann(c).update(image_id=7)),
         "annotation 1: image_id 7"),
        ("coco", lambda p: edit_json(p, lambda c: first_ann(c).update(bbox=[50, 20, -5, 10])),
         "annotation 1: box has non-positive width"),
        ("coco", lambda p: edit_json(p, lambda c: first_ann(c).update(bbox=[100, 20, 40, 10])),
         "annotation 1: box .* outside the 120x80 image"),
        ("coco", lambda p: edit_json(p, lambda c: first_ann(c).update(bbox=[1, 2, 3])),
         r"annotation 1: bbox must be \[x, y, w, h\]"),
        ("coco", lambda p: edit_json(p, lambda c: c["images"][1].update(file_name="gone.png")),
         "image 2: .*gone.png not found"),
        # VOC
        ("voc", lambda p: edit_text(p / "a.xml", "</annotation>", ""),
         r"a\.xml: not valid XML at line 1"),
        ("voc", lambda p: edit_text(p / "a.xml", "<xmin>11.25</xmin>", ""),
         r"a\.xml: object 1: missing <bndbox/xmin>"),
        ("voc", lambda p: edit_text(p / "a.xml", "<ymax>45.0", "<ymax>95.0"),
         r"a\.xml: object 1: box .* outside the 120x80 image"),
        ("voc", lambda p: edit_text(p / "c.xml", "<xmax>34.9", "<xmax>2.0"),
         r"c\.xml: object 1: box has non-positive width"),
        ("voc", lambda p: edit_text(p / "a.xml", "<xmin>11.25", "<xmin>eleven"),
         "not a number: 'eleven'"),
        # YOLO
        ("yolo", lambda p: edit_text(p.parent / "labels" / "a.txt", "\n1 ", "\n5 "),
         r"a\.txt: line 2: class id 5 out of range; classes are 0..1 \(gun, knife\)"),
        ("yolo", lambda p: edit_text(p.parent / "labels" / "c.txt", "1 ", "1 0.5 "),
         r"c\.txt: line 1: expected 'class cx cy w h'"),
        ("yolo", lambda p: edit_text(p.parent / "labels" / "c.txt", "1 ", "0.5 "),
         r"c\.txt: line 1: expected 'class cx cy w h'"),
        ("yolo", lambda p: edit_text(p.parent / "labels" / "a.txt", "\n1 0.5 0.5 1.0",
                                     "\n1 0.5 0.5 -1.0"),
         r"a\.txt: line 2: box has non-positive width"),
        ("yolo", lambda p: edit_text(p.parent / "labels" / "a.txt", "\n1 0.5 0.5 1.0",
                                     "\n1 0.9 0.5 1.0"),
         r"a\.txt: line 2: box .* outside the 120x80 image"),
        ("yolo", lambda p: (p.parent / "data.yaml").unlink(), "no class names"),
        ("yolo", lambda p: (p / "a.png").write_bytes(b"\x89PNG garbage") and None,
         r"a\.txt: .*a\.png: not a readable image"),
    ],
)
def test_bad_sets_name_the_file_and_place(tmp_path, fmt, spoil, message):
    written = WRITERS[fmt](tmp_path)
    path = spoil(written) or written  # a spoiler returns a path only to read another one
    with pytest.raises(LabelsetError, match=message):
        read_labelset(path, fmt=fmt)


def test_unknown_layouts_and_formats_are_refused(tmp_path):
    (tmp_path / "notes.md").write_text("nothing here")
    with pytest.raises(LabelsetError, match="cannot tell the label format.*coco, voc, yolo"):
        read_labelset(tmp_path)
    with pytest.raises(LabelsetError, match="not found"):
        read_labelset(tmp_path / "missing")
    with pytest.raises(LabelsetError, match="unknown label format 'kitti'; known: coco"):
        read_labelset(tmp_path, fmt="kitti")
