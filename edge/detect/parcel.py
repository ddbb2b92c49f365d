"""Detectors as the live loop sees them: a parcel in, detections in its own pixels out.

``ModelDetector`` renders the parcel as the operators see it and runs the ONNX model.
``GroundTruthDetector`` is a stand-in that reports the simulator's own threat boxes, so the
loop, the decision and the PLC path can be tested without a model; its name says so in every
summary it appears in.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from edge.config import EdgeConfig
from edge.detect.model import Detector
from edge.imaging.render import render_colour, render_grey
from edge.scanner.materials import ratio_boundaries
from edge.scanner.phantoms import THREAT_CLASSES
from edge.types import Detections, Parcel


class GroundTruthDetector:
    name = "ground-truth stand-in (simulator labels, not a model)"
    classes: tuple[str, ...] = THREAT_CLASSES

    def __init__(self, delay_s: float = 0.0, score: float = 0.99):
        self.delay_s, self.score = delay_s, score

    def __call__(self, parcel: Parcel) -> Detections:
        if self.delay_s:
            time.sleep(self.delay_s)
        if parcel.truth is None:
            raise ValueError(f"parcel {parcel.id} carries no ground truth: the stand-in "
                             f"detector only works on simulated parcels")
        truth = parcel.truth
        return Detections(truth.xyxy, np.full(len(truth), self.score, np.float32),
                          truth.class_id)


class ModelDetector:
    def __init__(self, config: EdgeConfig, thresholds: Sequence[float] | float | None = None):
        if config.detector.model is None:
            raise ValueError("detector.model is not set: train one with `make train` or set "
                             "pipeline.detector to ground-truth")
        self.detector = Detector(config.detector.model, config.detector.providers,
                                 config.detector.threads)
        self.classes = self.detector.info.classes
        self.name = f"{self.detector.path.name} ({self.detector.info.version})"
        self.mode = config.render.mode
        self.boundaries = ratio_boundaries(config.scanner.low_kev, config.scanner.high_kev)
        self.thresholds = config.detector.score_threshold if thresholds is None else thresholds
        self.iou = config.detector.iou_threshold
        self.vote = config.detector.box_voting

    def render(self, parcel: Parcel) -> np.ndarray:
        if self.mode == "grey":
            return render_grey(parcel.hi)
        return render_colour(parcel.hi, parcel.lo, self.boundaries)

    def __call__(self, parcel: Parcel) -> Detections:
        return self.detector.detect(self.render(parcel), self.thresholds, self.iou, self.vote)
