"""The detector as the live loop sees it (``edge.interfaces.Detector``): a parcel in,
detections in its own pixels out. ``ModelDetector`` renders the parcel as the operators see it
and runs the ONNX model. (The simulator's harness has a ground-truth stand-in.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.config import EdgeConfig
from edge.detect.model import Detector
from edge.imaging.attenuation import ratio_boundaries
from edge.imaging.render import render_colour, render_grey
from edge.types import Detections, Parcel


class ModelDetector:
    def __init__(self, config: EdgeConfig, thresholds: Sequence[float] | float | None = None):
        if config.detector.model is None:
            raise ValueError("detector.model is not set: train one with `make train` or set "
                             "pipeline.detector to ground-truth")
        self.detector = Detector(config.detector.model, config.detector.providers,
                                 config.detector.threads)
        self.classes = self.detector.info.classes
        self.version = self.detector.info.version
        self.name = f"{self.detector.path.name} ({self.version})"
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
