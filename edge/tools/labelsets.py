"""Importers for labelled image sets (COCO, Pascal VOC, YOLO), so real X-ray scans can be mixed
into training and evaluation.

Every reader returns ``LabelledImage`` records with boxes as float32 xyxy in that image's own
pixels (0-based, ``x2 > x1``, ``y2 > y1``), the convention of ``edge.types``. Images without
boxes are kept: they are the negatives. Any bad input raises ``LabelsetError`` naming the file
and the annotation or line, so a broken export fails at import, not inside training.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from edge.config import PROHIBITED
from edge.detect.files import SCAN_SUFFIXES, ScanReadError, read_scan

FORMATS = ("coco", "voc", "yolo")
EDGE_SLACK_PX = 0.5  # annotation tools round; a box this far past the border is clipped


class LabelsetError(ValueError):
    """A labelled set that cannot be used; the message names the file and the place in it."""


@dataclass(frozen=True)
class LabelledImage:
    """One image and its boxes. boxes: float32 ``[N, 4]`` xyxy px; labels: N class names."""

    path: Path
    boxes: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "labels", tuple(self.labels))
        if len(self.labels) != len(boxes):
            raise ValueError(f"{self.path}: {len(boxes)} boxes but {len(self.labels)} labels")


def checked_box(xyxy: Sequence[float], size: tuple[int, int], where: str) -> list[float]:
    """A box inside a ``(height, width)`` image, clipped within EDGE_SLACK_PX, else an error."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    h, w = size
    if not np.all(np.isfinite([x1, y1, x2, y2])):
        raise LabelsetError(f"{where}: box {xyxy} is not finite")
    if x2 <= x1 or y2 <= y1:
        raise LabelsetError(f"{where}: box has non-positive width or height "
                            f"(x1 {x1:g}, y1 {y1:g}, x2 {x2:g}, y2 {y2:g})")
    s = EDGE_SLACK_PX
    if x1 < -s or y1 < -s or x2 > w + s or y2 > h + s:
        raise LabelsetError(f"{where}: box (x1 {x1:g}, y1 {y1:g}, x2 {x2:g}, y2 {y2:g}) lies "
                            f"outside the {w}x{h} image")
    return [max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))]


def image_size(path: Path, where: str) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from the file itself."""
    try:
        return read_scan(path).shape[:2]
    except ScanReadError as exc:
        raise LabelsetError(f"{where}: {exc}") from None


def _existing(path: Path, where: str) -> Path:
    if not path.exists():
        raise LabelsetError(f"{where}: {path} not found")
    return path


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise LabelsetError(f"{path}: not found, or not a file")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsetError(f"{path}: cannot read it as text: {exc}") from None


# COCO -------------------------------------------------------------------------------------


def read_coco(json_path: Path | str, images_dir: Path | str | None = None
              ) -> list[LabelledImage]:
    """COCO detection JSON: bbox ``[x, y, w, h]`` px; crowd regions (``iscrowd``) skipped.

    ``file_name`` is relative to ``images_dir``, by default the JSON's folder.
    """
    json_path = Path(json_path)
    root = Path(images_dir) if images_dir is not None else json_path.parent
    try:
        coco = json.loads(_read_text(json_path))
        categories = {c["id"]: str(c["name"]) for c in coco.get("categories", [])}
        images = {im["id"]: im for im in coco["images"]}
        annotations = coco.get("annotations", [])
    except json.JSONDecodeError as exc:
        raise LabelsetError(f"{json_path}: not valid JSON: {exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise LabelsetError(f"{json_path}: not a COCO file (an 'images' list of objects with "
                            f"'id', a 'categories' list with 'id' and 'name'): {exc!r}") from None
    found: dict[object, tuple[list, list]] = {key: ([], []) for key in images}
    sizes: dict[object, tuple[int, int]] = {}  # an image without width / height is read once
    for n, ann in enumerate(annotations):
        where = f"{json_path}: annotation {ann.get('id', n) if isinstance(ann, dict) else n}"
        if not isinstance(ann, dict):
            raise LabelsetError(f"{where}: expected an object, got {ann!r}")
        if ann.get("iscrowd", 0):
            continue
        image, label = _coco_refs(ann, images, categories, where)
        if image["id"] not in sizes:
            sizes[image["id"]] = _coco_size(image, root, f"{json_path}: image {image['id']}")
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(
                isinstance(v, int | float) for v in bbox):
            raise LabelsetError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
        x, y, w, h = bbox
        boxes, labels = found[image["id"]]
        boxes.append(checked_box([x, y, x + w, y + h], sizes[image["id"]], where))
        labels.append(label)
    return [LabelledImage(_existing(root / str(im.get("file_name")),
                                    f"{json_path}: image {key}"), *found[key])
            for key, im in images.items()]


def _coco_refs(ann: dict, images: dict, categories: dict, where: str) -> tuple[dict, str]:
    if ann.get("image_id") not in images:
        raise LabelsetError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
    if ann.get("category_id") not in categories:
        raise LabelsetError(f"{where}: category_id {ann.get('category_id')!r} is not in "
                            f"'categories' (known ids: {sorted(categories)})")
    return images[ann["image_id"]], categories[ann["category_id"]]


def _coco_size(image: dict, root: Path, where: str) -> tuple[int, int]:
    if "width" in image and "height" in image:
        return int(image["height"]), int(image["width"])
    return image_size(root / str(image.get("file_name")), where)


# Pascal VOC -------------------------------------------------------------------------------


def read_voc(xml_dir_or_file: Path | str, images_dir: Path | str | None = None
             ) -> list[LabelledImage]:
    """Pascal VOC XML, one file per image; ``bndbox`` is 1-based inclusive pixel indices.

    ``filename`` is relative to ``images_dir``, by default each XML's folder or, as in the
    VOC layout, a ``JPEGImages`` folder beside it. Objects marked ``difficult`` are kept.
    """
    source = _existing(Path(xml_dir_or_file), "VOC")
    files = sorted(source.glob("*.xml")) if source.is_dir() else [source]
    if not files:
        raise LabelsetError(f"{source}: no .xml files")
    return [_read_voc_file(f, Path(images_dir) if images_dir is not None else None)
            for f in files]


def _read_voc_file(xml_path: Path, root: Path | None) -> LabelledImage:
    try:
        tree = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        line, column = exc.position
        raise LabelsetError(f"{xml_path}: not valid XML at line {line}, column {column}") \
            from None
    name = _voc_text(tree, "filename", str(xml_path))
    if root is None:
        beside = xml_path.parent / name
        root = xml_path.parent if beside.exists() else xml_path.parent.parent / "JPEGImages"
    image = _existing(root / name, str(xml_path))
    size = _voc_size(tree, image, str(xml_path))
    boxes, labels = [], []
    for n, obj in enumerate(tree.iter("object")):
        where = f"{xml_path}: object {n + 1}"
        xmin, ymin, xmax, ymax = (_voc_number(obj, f"bndbox/{k}", where)
                                  for k in ("xmin", "ymin", "xmax", "ymax"))
        # 1-based inclusive -> 0-based xyxy: pixel xmin starts at xmin - 1, pixel xmax ends
        # at xmax.
        boxes.append(checked_box([xmin - 1, ymin - 1, xmax, ymax], size, where))
        labels.append(_voc_text(obj, "name", where))
    return LabelledImage(image, boxes, labels)


def _voc_size(tree: ET.Element, image: Path, where: str) -> tuple[int, int]:
    """``<size>`` when it holds one (cheap), else the image file's: some exports write 0."""
    if tree.find("size/width") is not None and tree.find("size/height") is not None:
        h, w = (int(_voc_number(tree, f"size/{k}", where)) for k in ("height", "width"))
        if h > 0 and w > 0:
            return h, w
    return image_size(image, where)


def _voc_text(node: ET.Element, tag: str, where: str) -> str:
    text = node.findtext(tag)
    if text is None or not text.strip():
        raise LabelsetError(f"{where}: missing <{tag}>")
    return text.strip()


def _voc_number(node: ET.Element, tag: str, where: str) -> float:
    text = _voc_text(node, tag, where)
    try:
        return float(text)
    except ValueError:
        raise LabelsetError(f"{where}: <{tag}> is not a number: {text!r}") from None


# YOLO -------------------------------------------------------------------------------------


def read_yolo(images_dir: Path | str, labels_dir: Path | str | None = None,
              classes: Sequence[str] | None = None) -> list[LabelledImage]:
    """YOLO: per image a ``.txt`` of ``class cx cy w h`` lines, normalised to the image size.

    ``labels_dir`` defaults to a sibling ``labels`` folder when ``images_dir`` is called
    ``images`` (the Ultralytics layout), else ``images_dir`` itself. Class names come from
    ``classes`` or a ``classes.txt`` / ``data.yaml`` in the labels folder or its parent. An image
    without a label file is a negative.
    """
    images_dir = _existing(Path(images_dir), "YOLO")
    labels_dir = Path(labels_dir) if labels_dir is not None else yolo_labels_dir(images_dir)
    names = tuple(classes) if classes is not None else yolo_class_names(labels_dir)
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in SCAN_SUFFIXES)
    if not images:
        raise LabelsetError(f"{images_dir}: no images ({', '.join(SCAN_SUFFIXES)})")
    return [_read_yolo_file(image, labels_dir / f"{image.stem}.txt", names) for image in images]


def yolo_labels_dir(images_dir: Path) -> Path:
    sibling = images_dir.parent / "labels"
    return sibling if images_dir.name == "images" and sibling.is_dir() else images_dir


def yolo_class_names(labels_dir: Path) -> tuple[str, ...]:
    """Class names from ``classes.txt`` (one a line) or ``data.yaml`` (``names:`` list or map)."""
    for folder in (labels_dir, labels_dir.parent):
        if (folder / "classes.txt").is_file():
            text = _read_text(folder / "classes.txt").splitlines()
            return tuple(line.strip() for line in text if line.strip())
        if (folder / "data.yaml").is_file():
            return _yaml_names(folder / "data.yaml")
    raise LabelsetError(f"{labels_dir}: no class names: pass classes=, or put classes.txt or "
                        f"data.yaml (names: [...]) in {labels_dir} or {labels_dir.parent}")


def _yaml_names(path: Path) -> tuple[str, ...]:
    try:
        names = (yaml.safe_load(_read_text(path)) or {}).get("names")
    except (yaml.YAMLError, AttributeError) as exc:
        raise LabelsetError(f"{path}: not a YAML mapping: {exc}") from None
    if isinstance(names, dict):  # {0: gun, 1: knife}
        if sorted(names) != list(range(len(names))):
            raise LabelsetError(f"{path}: names ids must be 0..{len(names) - 1}")
        return tuple(str(names[i]) for i in range(len(names)))
    if not isinstance(names, list):
        raise LabelsetError(f"{path}: needs a 'names:' list of class names")
    return tuple(str(n) for n in names)


def _read_yolo_file(image: Path, label_file: Path, names: tuple[str, ...]) -> LabelledImage:
    if not label_file.is_file():
        return LabelledImage(image, np.zeros((0, 4), np.float32), ())
    h, w = image_size(image, str(label_file))
    boxes, labels = [], []
    for n, line in enumerate(_read_text(label_file).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label_file}: line {n}"
        class_id, cx, cy, bw, bh = _yolo_row(line, where)
        if not 0 <= class_id < len(names):
            raise LabelsetError(f"{where}: class id {class_id} out of range; classes are 0.."
                                f"{len(names) - 1} ({', '.join(names)})")
        boxes.append(checked_box([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w,
                                  (cy + bh / 2) * h], (h, w), where))
        labels.append(names[class_id])
    return LabelledImage(image, boxes, labels)


def _yolo_row(line: str, where: str) -> tuple[int, float, float, float, float]:
    fields = line.split()
    try:
        if len(fields) != 5 or not float(fields[0]).is_integer():
            raise ValueError
        return (int(float(fields[0])), *(float(v) for v in fields[1:]))
    except ValueError:
        raise LabelsetError(f"{where}: expected 'class cx cy w h', got {line.strip()!r}") \
            from None


# Any format -------------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    """'coco' for a .json file, 'voc' for .xml, 'yolo' for a folder of images + .txt labels."""
    if path.is_file():
        formats = {".json": "coco", ".xml": "voc"}
        if path.suffix.lower() in formats:
            return formats[path.suffix.lower()]
    elif path.is_dir():
        if any(path.glob("*.xml")):
            return "voc"
        if any(p.name != "classes.txt" for p in yolo_labels_dir(path).glob("*.txt")):
            return "yolo"
    else:
        raise LabelsetError(f"{path}: not found")
    raise LabelsetError(f"{path}: cannot tell the label format: expected a .json file (COCO), "
                        f"a folder of .xml files (VOC) or a folder of images with .txt labels "
                        f"(YOLO); pass fmt= one of {', '.join(FORMATS)}")


def read_labelset(path: Path | str, fmt: str | None = None) -> list[LabelledImage]:
    """Read a COCO, VOC or YOLO set, guessing the format from ``path`` unless ``fmt`` is given."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    readers = {"coco": read_coco, "voc": read_voc, "yolo": read_yolo}
    if fmt not in readers:
        raise LabelsetError(f"unknown label format {fmt!r}; known: {', '.join(FORMATS)}")
    return readers[fmt](path)


def map_labels(items: Iterable[LabelledImage], mapping: Mapping[str, str | None],
               known: Sequence[str] | None = PROHIBITED) -> list[LabelledImage]:
    """Rename classes (``{"pistol": "gun"}``) or drop them (``{"person": None}``).

    Unmapped names pass through. Every name left must be in ``known`` (the classes the config
    acts on; None: no check), so a forgotten mapping fails here rather than training a stray
    class.
    """
    mapped = []
    for item in items:
        renamed = [mapping.get(label, label) for label in item.labels]
        keep = [i for i, label in enumerate(renamed) if label is not None]
        unknown = sorted({renamed[i] for i in keep} - set(known)) if known is not None else []
        if unknown:
            raise LabelsetError(f"{item.path}: classes {', '.join(unknown)} are not ours; map "
                                f"them to one of {', '.join(known)} or to None to drop them")
        mapped.append(LabelledImage(item.path, item.boxes[keep],
                                    tuple(renamed[i] for i in keep)))
    return mapped
