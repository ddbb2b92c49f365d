"""The detector as the live loop sees it (``edge.interfaces.Detector``): a parcel in,
detections in its own pixels out. ``ModelDetector`` renders the parcel as the operators see it,
runs the ONNX model and, when one is set, its second look (``edge.detect.verify``) on the boxes
that pass. (The simulator's harness has a ground-truth stand-in.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.config import EdgeConfig
from edge.detect.model import Detector
from edge.detect.verify import Verified, Verifier
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
        self.verifier, self.verified = None, None
        if config.detector.verifier is not None:
            self.verifier = Verifier(config.detector.verifier, config.detector.threads)
            self.verified = Verified(self.detector, self.verifier)
            self.version = self.verified.version
        self.name = f"{self.detector.path.name} ({self.version})"
        self.mode = config.render.mode
        self.boundaries = ratio_boundaries(config.scanner.low_kev, config.scanner.high_kev)
        if thresholds is None:
            # The thresholds the hub decides with (calibrated table, config), so that no box a
            # verdict would divert on is dropped here first.
            from edge.decide import Policy
            thresholds = Policy.from_config(config, self.classes, self.version).thresholds
        self.thresholds = thresholds
        self.iou = config.detector.iou_threshold
        self.vote = config.detector.box_voting

    def render(self, parcel: Parcel) -> np.ndarray:
        if self.mode == "grey":
            return render_grey(parcel.hi)
        return render_colour(parcel.hi, parcel.lo, self.boundaries)

    def __call__(self, parcel: Parcel) -> Detections:
        return self.detect_image(self.render(parcel))

    def detect_image(self, image: np.ndarray) -> Detections:
        """Detections in a parcel image as rendered (BGR)."""
        return (self.verified or self.detector).detect(image, self.thresholds, self.iou,
                                                       self.vote)
