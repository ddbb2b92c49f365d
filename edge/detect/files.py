"""Detection on image files: read scans from disk and report boxes per file.

This is the ``edge detect`` command's core, kept apart from argument parsing so it can be
called on any folder of real scans. A file that cannot be read yields an error record and the
run goes on: one corrupt export must not hide the results for the rest of a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # the runtime import would pull onnxruntime into readers of scans
    from edge.detect.model import Detector
    from edge.types import Detections

SCAN_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


class ScanReadError(ValueError):
    """A scan file that cannot be read; the message names the file and the reason."""


def read_scan(path: Path | str) -> np.ndarray:
    """A PNG, JPEG or TIFF scan as stored: uint8 or uint16, ``[H, W]`` grey or ``[H, W, C]``.

    Bit depth is kept (16-bit scans stay uint16); ``edge.detect.pre.as_bgr8`` converts later.
    """
    path = Path(path)
    if not path.is_file():
        raise ScanReadError(f"{path}: no such file")
    # imdecode on the bytes rather than imread on the name: it handles any path the OS
    # accepts, non-ASCII ones included, where imread fails on some platforms.
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise ScanReadError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    image = _quiet_decode(data) if data.size else None
    if image is None:
        raise ScanReadError(f"{path}: not a readable image (empty, corrupt, or not one of "
                            f"{', '.join(SCAN_SUFFIXES)})")
    if image.dtype not in (np.uint8, np.uint16):
        raise ScanReadError(f"{path}: {image.dtype} pixels; expected 8- or 16-bit")
    return image


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


def detect_files(detector: Detector, paths: Iterable[Path | str],
                 conf: float | Sequence[float] = 0.25,
                 iou_threshold: float = 0.5, vote: bool = False) -> Iterator[dict]:
    """For each path, ``{"image", "detections"}`` or ``{"image", "error"}``, in order.

    Boxes are xyxy in that image's own pixels. Model faults (``ModelError``) still propagate:
    they would fail every file alike.
    """
    for path in paths:
        try:
            image = read_scan(path)
            found = detector.detect(image, conf, iou_threshold, vote)
        except ValueError as exc:  # ScanReadError, or pixels as_bgr8 refuses
            yield {"image": str(path), "error": str(exc)}
            continue
        yield {"image": str(path), "detections": detections_as_dicts(found,
                                                                     detector.info.classes)}


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
