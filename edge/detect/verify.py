"""The second look: a small classifier over each candidate box of the detector.

The detector sees a whole parcel shrunk to its input side, where a razor blade is a few dozen
pixels and a steel ruler a bar like a knife's. The verifier sees one candidate at a time, cut
from the full-resolution image with context around it, and gives the probability of each
threat class and of none. A candidate keeps its detector score times the verifier's
probability that it shows a threat, raised to ``weight``: the score can only fall, so
candidates under the thresholds before the second look never need one.

A verifier file is self-describing, like a detector file: ``classes`` (the detector's, in its
order; the last output is "none"), ``crop`` (input side), ``context`` (crop span over the
box's side), ``min_side`` (px of the image below which a box keeps that much context),
``weight`` and ``shape`` travel in its metadata (models/README.md). ``shape`` says how a box
becomes a crop: "square" (a square around it, scaled alike on both axes) or "box" (the box
and its context on each axis, each axis scaled to the crop, so that the box always fills the
crop's middle and the verifier sees where the box lies on the object); files without it
are "square".
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edge.detect.decode import passing
from edge.detect.model import ModelError, detect_with, open_session
from edge.detect.pre import as_bgr8
from edge.types import Detections

REQUIRED_KEYS = ("classes", "crop", "context", "min_side", "weight")
UNSHAPED = "square"   # the crops of verifier files and mined sets from before ``shape``
EMPTY_BELT = (255, 255, 255)   # beyond the image's edge: nothing in the beam
# Evaluation and calibration keep boxes far below any operating point (AP integrates over
# all of them): under this detector score, thousands per image, they are dropped rather than
# looked at twice. The live loop looks only at the boxes that pass its thresholds.
FLOOR = 0.05


def square_crops(image: np.ndarray, boxes: np.ndarray, side: int, context: float,
                 min_side: float) -> np.ndarray:
    """[N, side, side, 3] uint8: squares of a BGR uint8 ``image`` centred on ``boxes`` (xyxy,
    image pixels) spanning ``context`` times their longer side (at least ``min_side``),
    scaled to ``side``: the box crops of the squares around ``boxes``."""
    xyxy = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]).max(1, keepdims=True) / 2
    return box_crops(image, np.hstack([centre - half, centre + half]), side, context, min_side)


def box_crops(image: np.ndarray, boxes: np.ndarray, side: int, context: float,
              min_side: float) -> np.ndarray:
    """[N, side, side, 3] uint8: each of ``boxes`` (xyxy, image pixels) in a BGR uint8
    ``image`` with ``context`` times its width and height around its centre (each at least
    ``min_side``), each axis scaled to ``side``: the box fills the crop's middle
    ``side / context`` pixels whatever its shape."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 image [H, W, 3], got {image.dtype} "
                         f"{image.shape} (edge.detect.pre.as_bgr8 converts any scan)")
    crops = []
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        sx = side / (max(x1 - x0, min_side) * context)
        sy = side / (max(y1 - y0, min_side) * context)
        # Maps the box's span on each axis around its centre onto [0, side].
        m = np.array([[sx, 0, side / 2 - (x0 + x1) / 2 * sx],
                      [0, sy, side / 2 - (y0 + y1) / 2 * sy]])
        crops.append(cv2.warpAffine(image, m, (side, side),
                                    flags=cv2.INTER_AREA if min(sx, sy) < 1 else cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=EMPTY_BELT))
    return np.stack(crops) if crops else np.zeros((0, side, side, 3), np.uint8)


# How a verifier of each ``shape`` turns boxes into crops.
CROPS = {"square": square_crops, "box": box_crops}
SHAPES = tuple(CROPS)


def crops_of(shape: str, image: np.ndarray, boxes: np.ndarray, side: int, context: float,
             min_side: float) -> np.ndarray:
    """The crops a verifier of ``shape`` looks at."""
    if shape not in CROPS:
        raise ValueError(f"unknown crop shape {shape!r}: expected one of {', '.join(SHAPES)}")
    return CROPS[shape](image, boxes, side, context, min_side)


def rescored(scores: np.ndarray, probs: np.ndarray, weight: float) -> np.ndarray:
    """Detector scores times the verifier's probability that each candidate shows a threat
    (any class: it is trained to tell the classes apart, but the detector's class stands)."""
    return (scores * np.clip(1 - probs[:, -1], 0, 1) ** weight).astype(np.float32)


def cascade_version(model_version: str, verifier: Verifier | None) -> str:
    """The version a thresholds table names: the model's, and its second look's when one runs
    (scores with and without it are not on one scale)."""
    return model_version if verifier is None else f"{model_version} + {verifier.version}"


def candidates(raw, info, image: np.ndarray, verifier: Verifier | None, floor: float,
               iou_threshold: float = 0.5, vote: bool = False) -> Detections:
    """The boxes that evaluation and calibration score, before any operating point: the
    detector's (``raw`` and ``info``, as ``detect_with`` takes them) down to ``floor``, or,
    with ``verifier``, down to the second look's ``FLOOR`` and rescored by it."""
    if verifier is None:
        return detect_with(raw, info, image, floor, iou_threshold, vote)
    return verifier.rescore(image, detect_with(raw, info, image, FLOOR, iou_threshold, vote))


class Verifier:
    """One loaded verifier. ``rescore(image, found)`` -> the same boxes, scores rescored."""

    def __init__(self, path: Path | str, threads: int = 2, batch: int = 8):
        self.path = Path(path)
        # It runs right after the detector, on the same cores, in the live loop.
        self.session = open_session(self.path, "verifier", threads, spin=False)
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            raise ModelError(f"verifier {self.path} lacks metadata {', '.join(missing)} "
                             f"(see models/README.md)")
        values = {k: json.loads(meta[k]) for k in REQUIRED_KEYS}
        self.classes = tuple(values["classes"])
        self.crop, self.context = int(values["crop"]), float(values["context"])
        self.min_side, self.weight = float(values["min_side"]), float(values["weight"])
        self.shape = json.loads(meta["shape"]) if "shape" in meta else UNSHAPED
        if self.shape not in SHAPES:
            raise ModelError(f"verifier {self.path}: unknown crop shape {self.shape!r} "
                             f"(expected one of {', '.join(SHAPES)}; see models/README.md)")
        self.version = meta.get("version", "unknown")
        self.input_name = self.session.get_inputs()[0].name
        self.batch = batch

    def probabilities(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """[N, classes + 1]: each box's probability of each class and, last, of none, in
        ``image`` (any scan the detector takes: grey or colour, 8 or 16 bit)."""
        crops = crops_of(self.shape, as_bgr8(image), boxes, self.crop, self.context,
                         self.min_side)
        tensor = np.ascontiguousarray(crops.transpose(0, 3, 1, 2))
        out = [self.session.run(None, {self.input_name: tensor[k:k + self.batch]})[0]
               for k in range(0, len(tensor), self.batch)]
        probs = np.concatenate(out) if out else np.zeros((0, len(self.classes) + 1), np.float32)
        if probs.shape != (len(boxes), len(self.classes) + 1):
            raise ModelError(f"verifier {self.path}: output shape {probs.shape}, expected "
                             f"{(len(boxes), len(self.classes) + 1)}")
        return probs

    def rescore(self, image: np.ndarray, found: Detections) -> Detections:
        if not len(found.score):
            return found
        probs = self.probabilities(image, found.xyxy)
        return Detections(found.xyxy, rescored(found.score, probs, self.weight), found.class_id)


class Verified:
    """A detector (``edge.detect.model.Detector``) and its second look as one: ``detect``
    answers as the live loop does, boxes rescored and those under the thresholds dropped."""

    def __init__(self, detector, verifier: Verifier):
        if verifier.classes != detector.info.classes:
            raise ValueError(f"verifier {verifier.path} was trained for classes "
                             f"{verifier.classes}, the model has {detector.info.classes}")
        self.detector, self.verifier = detector, verifier
        self.path, self.info = detector.path, detector.info
        self.version = cascade_version(detector.info.version, verifier)

    def detect(self, image: np.ndarray, thresholds: float | np.ndarray = 0.25,
               iou_threshold: float = 0.5, vote: bool = False) -> Detections:
        found = self.verifier.rescore(image, self.detector.detect(image, thresholds,
                                                                  iou_threshold, vote))
        return found[passing(found, thresholds, len(self.info.classes))]
