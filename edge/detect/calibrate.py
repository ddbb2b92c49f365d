"""Per-class score thresholds from labelled scans: for each class, the highest threshold that
still finds a target share of its objects, and what the decision policy then does to whole
parcels (threat parcels diverted, clear parcels falsely diverted) beside the single default.

The table it writes, ``calibration/thresholds.json``, is the one ``edge.decide.Policy`` reads.
Thresholds come from the runtime's own detection path (``detect_with``), so they hold for
``edge run`` and ``edge detect`` alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.decide import Policy
from edge.detect.files import ScanReadError, read_scan
from edge.detect.metrics import Accumulator, OperatingPoint
from edge.detect.model import Detector, detect_with
from edge.labelsets import LabelledImage
from edge.types import Action, Detections

FLOOR = 0.01   # detections kept below any threshold worth calibrating


@dataclass
class ParcelOutcome:
    """How many labelled images the policy diverts, those with threats and those without."""

    threat_images: int = 0
    threat_diverted: int = 0
    clear_images: int = 0
    clear_diverted: int = 0

    def add(self, has_threat: bool, diverted: bool) -> None:
        if has_threat:
            self.threat_images += 1
            self.threat_diverted += diverted
        else:
            self.clear_images += 1
            self.clear_diverted += diverted


@dataclass
class Calibration:
    classes: tuple[str, ...]
    target: float
    points: dict[str, OperatingPoint | None]      # None: no objects of the class, or none found
    objects: dict[str, int]
    calibrated: ParcelOutcome = field(default_factory=ParcelOutcome)
    default: ParcelOutcome = field(default_factory=ParcelOutcome)
    default_threshold: float = 0.0
    skipped: list[str] = field(default_factory=list)   # unreadable images, with the reason
    ignored_labels: dict[str, int] = field(default_factory=dict)  # labels the model lacks

    @property
    def thresholds(self) -> dict[str, float]:
        # Rounded down: a threshold rounded up could drop the very detection it was set by.
        return {name: math.floor(p.threshold * 1e4) / 1e4 for name, p in self.points.items()
                if p is not None}


def calibrate_thresholds(detector: Detector, items: Iterable[LabelledImage], target: float,
                         default_threshold: float, iou: float = 0.5, vote: bool = False,
                         progress: bool = False) -> Calibration:
    """Run the detector over ``items`` once, then choose per-class thresholds for recall
    ``target`` (matches at IoU 0.5, class-aware) and replay the decision at both settings."""
    if not 0 < target <= 1:
        raise ValueError(f"target recall must lie in (0, 1], got {target}")
    classes = tuple(detector.info.classes)
    index = {name: k for k, name in enumerate(classes)}
    acc = Accumulator()
    seen: list[tuple[Detections, bool]] = []
    skipped: list[str] = []
    ignored: dict[str, int] = {}
    items = list(items)
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="detect", leave=False, mininterval=2)
    for item in items:
        try:
            image = read_scan(item.path)
        except ScanReadError as exc:
            skipped.append(str(exc))
            continue
        known = [i for i, label in enumerate(item.labels) if label in index]
        for label in item.labels:
            if label not in index:
                ignored[label] = ignored.get(label, 0) + 1
        truth = Detections(item.boxes[known].reshape(-1, 4),
                           np.ones(len(known), np.float32),
                           np.array([index[item.labels[i]] for i in known], np.int64))
        found = detect_with(detector.raw, detector.info, image, FLOOR, iou, vote)
        acc.add(found, truth)
        seen.append((found, bool(known)))
    points = acc.operating_points(target)
    counts = acc.gt_counts()
    result = Calibration(classes, target, {name: points.get(k) for k, name in enumerate(classes)},
                         {name: counts.get(k, 0) for k, name in enumerate(classes)},
                         default_threshold=default_threshold, skipped=skipped,
                         ignored_labels=ignored)
    tuned = Policy.build(classes, default_threshold, result.thresholds)
    plain = Policy.build(classes, default_threshold)
    for n, (found, has_threat) in enumerate(seen):
        for policy, outcome in ((tuned, result.calibrated), (plain, result.default)):
            diverted = policy.decide(str(n), found).action is Action.DIVERT
            outcome.add(has_threat, diverted)
    return result


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f} %)" if whole else "none"


def report(cal: Calibration) -> str:
    lines = [f"{'class':12s} {'objects':>7s} {'threshold':>9s} {'recall':>7s} {'precision':>9s}"]
    for name in cal.classes:
        p = cal.points[name]
        if p is None:
            why = "no labelled objects" if cal.objects[name] == 0 else "none found"
            lines.append(f"{name:12s} {cal.objects[name]:7d} {'default':>9s}   ({why})")
            continue
        short = "" if p.reached else f"  (target {cal.target:.2f} out of reach)"
        lines.append(f"{name:12s} {cal.objects[name]:7d} {p.threshold:9.3f} {p.recall:7.2f} "
                     f"{p.precision:9.2f}{short}")
    for label, outcome in ((f"calibrated (recall {cal.target:.2f})", cal.calibrated),
                           (f"default {cal.default_threshold:.2f}", cal.default)):
        lines.append(f"{label:22s} diverts threat images "
                     f"{_share(outcome.threat_diverted, outcome.threat_images)}, "
                     f"clear images {_share(outcome.clear_diverted, outcome.clear_images)}")
    if cal.ignored_labels:
        lines.append("labels the model does not know, not scored: " + ", ".join(
            f"{k} ({v})" for k, v in sorted(cal.ignored_labels.items())))
    lines += [f"skipped: {reason}" for reason in cal.skipped]
    return "\n".join(lines)


def as_json(cal: Calibration) -> dict:
    def outcome(o: ParcelOutcome) -> dict:
        return {"threat_images": o.threat_images, "threat_diverted": o.threat_diverted,
                "clear_images": o.clear_images, "clear_diverted": o.clear_diverted}
    return {"target_recall": cal.target, "thresholds": cal.thresholds,
            "classes": {name: None if p is None else p._asdict() | {"objects": cal.objects[name]}
                        for name, p in cal.points.items()},
            "calibrated": outcome(cal.calibrated), "default": outcome(cal.default),
            "default_threshold": cal.default_threshold, "skipped": cal.skipped,
            "ignored_labels": cal.ignored_labels}


def read_items(paths: Sequence) -> list[LabelledImage]:
    from edge.labelsets import read_labelset
    return [item for path in paths for item in read_labelset(path)]
