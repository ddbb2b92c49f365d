"""Detection on image files: read scans from disk and report boxes per file.

This is the ``edge detect`` command's core, kept apart from argument parsing so it can be
called on any folder of real scans. A file that cannot be read yields an error record and the
run goes on: one corrupt export must not hide the results for the rest of a batch.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.config import DEFAULT_MAX_IMAGE_PIXELS

if TYPE_CHECKING:  # the runtime import would pull onnxruntime into readers of scans
    from edge.detect.model import Detector
    from edge.types import Detections

SCAN_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


class ScanReadError(ValueError):
    """A scan file that cannot be read; the message names the file and the reason."""


def read_scan(path: Path | str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """A PNG, JPEG or TIFF scan as stored: uint8 or uint16, ``[H, W]`` grey or ``[H, W, C]``.

    Bit depth is kept (16-bit scans stay uint16); ``edge.detect.pre.as_bgr8`` converts later.
    A file whose header declares more than ``max_pixels`` pixels is refused before decoding.
    """
    path = Path(path)
    if path.is_dir():
        raise ScanReadError(f"{path}: a directory, not an image file")
    if not path.is_file():
        raise ScanReadError(f"{path}: no such file")
    # imdecode on the bytes rather than imread on the name: it handles any path the OS
    # accepts, non-ASCII ones included, where imread fails on some platforms.
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise ScanReadError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    size = image_size(data)
    if size is None:
        raise _unreadable(path)
    width, height = size
    if width * height > max_pixels:
        raise ScanReadError(f"{path}: {width} x {height} = {width * height:,} pixels, above "
                            f"the limit of {max_pixels:,} (detector.max_image_pixels); not "
                            "decoded")
    image = _quiet_decode(data)
    if image is None:
        raise _unreadable(path)
    if image.dtype not in (np.uint8, np.uint16):
        raise ScanReadError(f"{path}: {image.dtype} pixels; expected 8- or 16-bit")
    return image


def _unreadable(path: Path) -> ScanReadError:
    return ScanReadError(f"{path}: not a readable image (empty, corrupt, or not one of "
                         f"{', '.join(SCAN_SUFFIXES)})")


def image_size(data: np.ndarray | bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, JPEG or TIFF header, without decoding; None for any
    other or a damaged header.

    The pixel limit must hold before the decoder allocates, so the size comes from the bytes:
    OpenCV has no header-only read, and its reduced decodes still inflate the whole stream.
    """
    data = memoryview(data).cast("B")
    for reader in (_png_size, _jpeg_size, _tiff_size):
        try:
            size = reader(data)  # None: another format; (0, 0): this format, damaged
        except (struct.error, IndexError):  # the header ends early
            return None
        if size is not None:
            return size if min(size) > 0 else None
    return None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(data: memoryview) -> tuple[int, int] | None:
    if bytes(data[:8]) != PNG_SIGNATURE:
        return None
    length, kind, width, height = struct.unpack_from(">I4sII", data, 8)
    return (width, height) if kind == b"IHDR" and length == 13 else (0, 0)


# Start-of-frame markers carry the size; C4 (Huffman tables), C8 (reserved) and CC
# (arithmetic coding conditioning) share the range but are not frames.
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_BARE_MARKERS = frozenset([0x01, *range(0xD0, 0xD9)])  # no length field follows these


def _jpeg_size(data: memoryview) -> tuple[int, int] | None:
    if bytes(data[:2]) != b"\xff\xd8":
        return None
    at = 2
    while True:
        if data[at] != 0xFF:
            return (0, 0)
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
        elif marker in JPEG_BARE_MARKERS:
            at += 2
        elif marker in JPEG_FRAMES:
            height, width = struct.unpack_from(">HH", data, at + 5)
            return width, height
        elif marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return (0, 0)
        else:
            at += 2 + struct.unpack_from(">H", data, at + 2)[0]


TIFF_WIDTH, TIFF_HEIGHT = 256, 257
# type code: struct format of one value (SHORT, LONG, LONG8)
TIFF_INTEGERS = {3: "H", 4: "I", 16: "Q"}


def _tiff_size(data: memoryview) -> tuple[int, int] | None:
    """Size of the first image of a classic or BigTIFF file (the one OpenCV decodes)."""
    order = {b"II": "<", b"MM": ">"}.get(bytes(data[:2]))
    if order is None:
        return None
    (version,) = struct.unpack_from(order + "H", data, 2)
    if version not in (42, 43):
        return None
    big = version == 43
    ifd = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
    count = struct.unpack_from(order + ("Q" if big else "H"), data, ifd)[0]
    entry, first = (20, ifd + 8) if big else (12, ifd + 2)
    found = {}
    for at in range(first, first + count * entry, entry):
        tag, kind = struct.unpack_from(order + "HH", data, at)
        if tag in (TIFF_WIDTH, TIFF_HEIGHT) and kind in TIFF_INTEGERS:
            value_at = at + (12 if big else 8)
            found[tag] = struct.unpack_from(order + TIFF_INTEGERS[kind], data, value_at)[0]
    return found.get(TIFF_WIDTH, 0), found.get(TIFF_HEIGHT, 0)


def _quiet_decode(data: np.ndarray) -> np.ndarray | None:
    """imdecode without OpenCV's own log line on corrupt data: the caller reports it better."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    finally:
        cv2.utils.logging.setLogLevel(level)


def detections_as_dicts(found: Detections, classes: Sequence[str]) -> list[dict]:
    """Labelled rows for JSON output, best score first; boxes to 0.1 px, scores to 0.001."""
    order = np.argsort(-found.score, kind="stable")
    return [{"label": classes[int(found.class_id[i])],
             "score": round(float(found.score[i]), 3),
             "box": [round(float(v), 1) for v in found.xyxy[i]]} for i in order]


def scans_in(folder: Path) -> list[Path]:
    """The scan files directly inside ``folder`` (not in its subfolders), sorted by name."""
    try:
        return sorted(p for p in folder.iterdir()
                      if p.suffix.lower() in SCAN_SUFFIXES and p.is_file())
    except OSError as exc:
        raise ScanReadError(f"{folder}: cannot list directory: {exc.strerror or exc}") from None


def detect_files(detector: Detector, paths: Iterable[Path | str],
                 conf: float | Sequence[float] = 0.25,
                 iou_threshold: float = 0.5, vote: bool = False,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Iterator[dict]:
    """For each path, ``{"image", "detections"}`` or ``{"image", "error"}``, in order.

    A directory stands for the scans directly inside it (``scans_in``); one with none yields
    an error record. Boxes are xyxy in that image's own pixels. Model faults (``ModelError``)
    still propagate: they would fail every file alike.
    """
    for path in map(Path, paths):
        try:
            scans = scans_in(path) if path.is_dir() else [path]
        except ScanReadError as exc:
            yield {"image": str(path), "error": str(exc)}
            continue
        if not scans:
            yield {"image": str(path), "error": f"{path}: a directory with no scan files "
                   f"({', '.join(SCAN_SUFFIXES)}) directly inside"}
        for scan in scans:
            yield detect_file(detector, scan, conf, iou_threshold, vote, max_pixels)


def detect_file(detector: Detector, path: Path, conf: float | Sequence[float],
                iou_threshold: float, vote: bool, max_pixels: int) -> dict:
    """One ``detect_files`` record."""
    try:
        image = read_scan(path, max_pixels)
        found = detector.detect(image, conf, iou_threshold, vote)
    except ValueError as exc:  # ScanReadError, or pixels as_bgr8 refuses
        return {"image": str(path), "error": str(exc)}
    return {"image": str(path), "detections": detections_as_dicts(found, detector.info.classes)}


def describe(result: dict) -> str:
    """One readable line for a ``detect_files`` record."""
    if "error" in result:  # the message names the file too; say it once
        return f"{result['image']}: error: {result['error'].removeprefix(result['image'] + ': ')}"
    found = result["detections"]
    if not found:
        return f"{result['image']}: no detections"
    boxes = ", ".join(f"{d['label']} {d['score']:.2f} at "
                      f"[{', '.join(f'{v:g}' for v in d['box'])}]" for d in found)
    return f"{result['image']}: {len(found)} detection{'s' * (len(found) != 1)}: {boxes}"
