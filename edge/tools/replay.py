"""Replay a recording through the live loop: the same ``Hub``, the recording as its scanner.

``ReplayHub`` plays a recording (``edge.sources.recording``) into the live loop's code, with
the recorded photos as its camera and no PLC: every parcel is cut, corrected, detected and
decided as it was live. Where the recording carries ground truth (a simulated line's), each
parcel gets its truth back by the encoder range it was cut at, and the summary scores the
verdicts: threat parcels, missed threats (a threat parcel not diverted), false diverts.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from edge.config import EdgeConfig
from edge.detect.parcel import ModelDetector
from edge.imaging.segment import Segment
from edge.interfaces import Detector
from edge.pipeline import Hub
from edge.sources.recording import (
    RecordedCamera,
    Recording,
    RecordingSource,
    RecordingTruncated,
)
from edge.types import Action, Detections, Parcel, Verdict


def recorded_config(recording: Recording, model: Path | None = None) -> EdgeConfig:
    """The config in force when ``recording`` was made, for a replay: no PLC, and ``model``
    in place of the recorded detector when given."""
    raw = yaml.safe_load((recording.folder / "config.yaml").read_text()) or {}
    raw["plc"] = {**raw.get("plc", {}), "type": "none"}
    raw["faults"] = {}   # a replay plays what was recorded, faults and all, adding none
    if model is not None:
        raw.setdefault("detector", {})["model"] = str(model)
        raw.setdefault("pipeline", {})["detector"] = "model"
    return EdgeConfig(**raw)


class ReplayHub(Hub):
    """The live loop on a recording (module docstring). ``speed``: 1 real time, X times as
    fast, None as fast as the detector allows (the loop then waits for the detector rather
    than divert uninspected)."""

    def __init__(self, recording: Recording, config: EdgeConfig | None = None,
                 speed: float | None = None, detector: Detector | None = None,
                 log: Callable[[str], None] = print,
                 show: Callable[[Parcel, Verdict], None] | None = None):
        config = config or recorded_config(recording)
        self.truths = {t.encoder: t for t in recording.truths()}
        self.threat_seqs: set[int] = set()
        self.diverted_seqs: set[int] = set()
        detector = detector or ModelDetector(config)
        user_show = show

        def scored(parcel: Parcel, verdict: Verdict) -> None:
            if verdict.action != Action.CLEAR:
                self.diverted_seqs.add(parcel.seq)
            if user_show is not None:
                user_show(parcel, verdict)
        super().__init__(config, RecordingSource(recording, speed), recording.flat(), detector,
                         camera=RecordedCamera(recording), log=log, show=scored,
                         wait_for_detector=speed is None)

    def parcel_cut(self, parcel: Parcel, segment: Segment) -> None:
        truth = self.truths.get(parcel.encoder_range)
        if truth is None:
            return
        classes = list(self.detector.classes)
        known = [i for i, label in enumerate(truth.labels) if label in classes]
        parcel.truth = Detections(truth.boxes[known], np.ones(len(known)),
                                  [classes.index(truth.labels[i]) for i in known])
        parcel.truth_labels = list(truth.labels)
        if truth.labels:
            self.threat_seqs.add(parcel.seq)

    def summary(self, elapsed_s: float) -> dict:
        """The hub's summary; with ground truth, the verdicts scored against it."""
        out = super().summary(elapsed_s)
        out["diverted"] = len(self.diverted_seqs)   # no PLC: what the verdicts divert
        source = self.scanner
        out["recorded_s"] = round(source.played_s, 2)   # belt time played
        out["speedup"] = round(source.played_s / max(elapsed_s, 1e-9), 2)
        if self.truths:
            out.update({"threat_parcels": len(self.threat_seqs),
                        "missed_threats": len(self.threat_seqs - self.diverted_seqs),
                        "false_diverts": len(self.diverted_seqs - self.threat_seqs)})
        return out


def open_recording(folder: Path | str, log: Callable[[str], None] = print) -> Recording:
    """The recording at ``folder``; what is lost of it (cut off, a chunk unreadable) is said
    through ``log`` as it is found, and replay goes on with the rest."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecordingTruncated)
        recording = Recording(folder)
    for warning in caught:
        log(f"warning: {warning.message}")
    return recording
