"""The decision policy: detections -> one verdict per parcel, and the detections behind it.

Pure: thresholds and the class-to-action table come in, a verdict goes out. Thresholds are,
strongest first, the config's per-class values, the calibrated table in
``calibration/thresholds.json`` (``{"gun": 0.31, ...}``, written by threshold calibration on
replayed scans), then ``detector.score_threshold``. A class the table does not know is
diverted: an unknown finding fails closed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.config import EdgeConfig
from edge.types import Action, Detections, Verdict

THRESHOLDS_FILE = "thresholds.json"


@dataclass(frozen=True)
class Policy:
    classes: tuple[str, ...]
    thresholds: np.ndarray          # float32 [C]
    actions: tuple[str, ...]        # per class: divert | alarm | ignore

    @classmethod
    def build(cls, classes: Sequence[str], default_threshold: float,
              thresholds: Mapping[str, float] = {}, actions: Mapping[str, str] = {}) -> Policy:
        unknown = sorted(set(thresholds) - set(classes))
        if unknown:
            raise ValueError(f"thresholds for unknown classes {unknown}; the model knows "
                             f"{list(classes)}")
        for name, value in thresholds.items():
            if not 0 <= value <= 1:
                raise ValueError(f"threshold for {name!r} must lie in [0, 1], got {value}")
        table = np.array([thresholds.get(c, default_threshold) for c in classes], np.float32)
        return cls(tuple(classes), table, tuple(actions.get(c, "divert") for c in classes))

    @classmethod
    def from_config(cls, config: EdgeConfig, classes: Sequence[str]) -> Policy:
        calibrated: dict[str, float] = {}
        path = Path(config.calibration_dir) / THRESHOLDS_FILE
        if path.is_file():
            try:
                calibrated = {k: float(v) for k, v in json.loads(path.read_text()).items()
                              if k in classes}
            except (ValueError, AttributeError) as exc:
                raise ValueError(f"{path}: not a JSON object of class -> threshold ({exc})") \
                    from None
        return cls.build(classes, config.detector.score_threshold,
                         calibrated | dict(config.decision.thresholds), config.decision.actions)

    def decide(self, parcel_id: str, found: Detections) -> Verdict:
        """Divert when any detection of a divert class reaches its threshold; the verdict keeps
        every detection that reached its threshold (alarms included) for the operator."""
        if len(found) and (found.class_id.min() < 0 or found.class_id.max() >= len(self.classes)):
            raise ValueError(f"class ids {sorted(set(found.class_id.tolist()))} outside the "
                             f"model's {len(self.classes)} classes")
        hits = found[found.score >= self.thresholds[found.class_id]] if len(found) else found
        acts = [self.actions[c] for c in hits.class_id.tolist()]
        shown = hits[np.array([a != "ignore" for a in acts], bool)] if len(hits) else hits
        if "divert" in acts:
            names = sorted({self.classes[c] for c, a in zip(hits.class_id.tolist(), acts,
                                                            strict=True) if a == "divert"})
            return Verdict(parcel_id, Action.DIVERT, shown, reason=", ".join(names))
        reason = "alarm: " + ", ".join(sorted({self.classes[c] for c in shown.class_id.tolist()})
                                      ) if len(shown) else ""
        return Verdict(parcel_id, Action.CLEAR, shown, reason=reason)
