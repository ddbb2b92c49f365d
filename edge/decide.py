"""The decision policy: detections -> one verdict per parcel, and the detections behind it.

Pure: thresholds and the class-to-action table come in, a verdict goes out. Thresholds are,
strongest first, the config's per-class values, a calibrated table, then
``detector.score_threshold``. The calibrated table is the site's ``thresholds.json`` in
``calibration_dir`` (written by ``edge calibrate thresholds``) or, without one, the operating
point shipped with the shipped model. A table names the model version it was calibrated for
(``{"model_version": "...", "thresholds": {"gun": 0.31, ...}}``): the site's table for another
model refuses to start (its operating point was never measured for this one); the shipped
table is used only with the model it shipped with. A class the table does not know is
diverted: an unknown finding fails closed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge.config import EdgeConfig
from edge.shipping import shipped_file
from edge.types import Action, Detections, Verdict

THRESHOLDS_FILE = "thresholds.json"


@dataclass(frozen=True)
class Policy:
    classes: tuple[str, ...]
    thresholds: np.ndarray          # float32 [C]
    actions: tuple[str, ...]        # per class: divert | alarm | ignore
    source: str = "defaults"        # where the calibrated thresholds came from

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
    def from_config(cls, config: EdgeConfig, classes: Sequence[str],
                    model_version: str | None = None) -> Policy:
        """The policy for a detector of ``classes`` and ``model_version`` (None: not a model,
        so no calibrated table applies)."""
        site = Path(config.calibration_dir) / THRESHOLDS_FILE
        calibrated, source = {}, "defaults"
        if model_version is not None and site.is_file():
            version, calibrated = read_thresholds(site, classes)
            if version != model_version:
                raise ValueError(f"{site} was calibrated for model {version}, but the detector "
                                 f"is {model_version}: calibrate it again (edge calibrate "
                                 "thresholds) or move it away")
            source = f"{site} ({version})"
        elif model_version is not None:
            shipped = shipped_file(THRESHOLDS_FILE)
            if shipped is not None:
                version, table = read_thresholds(shipped, classes)
                if version == model_version:
                    calibrated, source = table, f"shipped with {version}"
        policy = cls.build(classes, config.detector.score_threshold,
                           calibrated | dict(config.decision.thresholds), config.decision.actions)
        return replace(policy, source=source)

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


def read_thresholds(path: Path, classes: Sequence[str]) -> tuple[str, dict[str, float]]:
    """(model version, class -> threshold for the classes given) of a thresholds table."""
    try:
        data = json.loads(path.read_text())
        version, table = str(data["model_version"]), data["thresholds"]
        return version, {k: float(v) for k, v in table.items() if k in classes}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a thresholds table ({{\"model_version\": ..., "
                         f"\"thresholds\": {{class: threshold}}}}): {exc!r}") from None


def thresholds_table(model_version: str, thresholds: Mapping[str, float]) -> dict:
    """What ``edge calibrate thresholds`` writes."""
    return {"model_version": model_version, "thresholds": dict(thresholds)}
