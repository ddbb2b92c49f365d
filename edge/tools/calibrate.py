"""Score thresholds from labelled scans, chosen either per class (the highest threshold that
still finds a target share of the class's objects) or for whole parcels (one threshold for
every class, the highest that diverts a target share of threat images, or the lowest that
keeps false diverts of clear ones under a target), and what the decision policy then does to
whole parcels (threat parcels diverted, clear parcels falsely diverted) beside the single
default.
A second, held-out set checks the chosen thresholds on scans they were not chosen on.

The table it writes, ``calibration/thresholds.json``, is the one ``edge.decide.Policy`` reads.
Thresholds come from the runtime's own detection path (``detect_with``), so they hold for
``edge run`` and ``edge detect`` alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.decide import Policy
from edge.detect.files import ScanReadError, read_scan
from edge.detect.model import Detector
from edge.detect.verify import Verifier, candidates
from edge.tools.labelsets import LabelledImage, read_labelset
from edge.tools.metrics import Accumulator, OperatingPoint, json_ready
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
class ScoredSet:
    """One pass of the detector over a labelled set: matches, and each image's detections."""

    classes: tuple[str, ...]
    acc: Accumulator = field(default_factory=Accumulator)
    images: list[tuple[Detections, Detections]] = field(default_factory=list)  # (found, truth)
    folders: list[str] = field(default_factory=list)   # each image's folder name, in order
    skipped: list[str] = field(default_factory=list)   # unreadable images, with the reason
    ignored_labels: dict[str, int] = field(default_factory=dict)  # labels the model lacks

    def objects(self) -> dict[str, int]:
        counts = self.acc.gt_counts()
        return {name: counts.get(k, 0) for k, name in enumerate(self.classes)}

    def by_folder(self) -> dict[str, ScoredSet]:
        """The images of each folder as a set of their own (the simulator writes colour/ and
        grey/: one scanner shows one of them)."""
        groups: dict[str, ScoredSet] = {}
        for folder, (found, truth) in zip(self.folders, self.images, strict=True):
            group = groups.setdefault(folder, ScoredSet(self.classes))
            group.acc.add(found, truth)
            group.images.append((found, truth))
            group.folders.append(folder)
        return dict(sorted(groups.items()))

    def outcome(self, policy: Policy) -> ParcelOutcome:
        result = ParcelOutcome()
        for n, (found, truth) in enumerate(self.images):
            result.add(len(truth) > 0, policy.decide(str(n), found).action is Action.DIVERT)
        return result


def score_set(detector: Detector, items: Iterable[LabelledImage], iou: float = 0.5,
              vote: bool = False, progress: bool = False,
              verifier: Verifier | None = None) -> ScoredSet:
    """Detect on every readable image (scores down to FLOOR; with ``verifier``, down to its
    floor, then rescored), and match against its labels; labels the model does not know are
    counted and left out."""
    scored = ScoredSet(tuple(detector.info.classes))
    index = {name: k for k, name in enumerate(scored.classes)}
    items = list(items)
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="detect", leave=False, mininterval=2)
    for item in items:
        try:
            image = read_scan(item.path)
        except ScanReadError as exc:
            scored.skipped.append(str(exc))
            continue
        known = [i for i, label in enumerate(item.labels) if label in index]
        for label in item.labels:
            if label not in index:
                scored.ignored_labels[label] = scored.ignored_labels.get(label, 0) + 1
        truth = Detections(item.boxes[known].reshape(-1, 4), np.ones(len(known), np.float32),
                           np.array([index[item.labels[i]] for i in known], np.int64))
        found = candidates(detector.raw, detector.info, image, verifier, FLOOR, iou, vote)
        scored.acc.add(found, truth)
        scored.images.append((found, truth))
        scored.folders.append(Path(item.path).parent.name)
    return scored


@dataclass
class Check:
    """Chosen thresholds judged on a set: per class recall and precision, and parcels."""

    images: int
    objects: dict[str, int]
    recall: dict[str, float]
    precision: dict[str, float]
    calibrated: ParcelOutcome
    default: ParcelOutcome


def check(scored: ScoredSet, thresholds: dict[str, float], default_threshold: float) -> Check:
    recall, precision = {}, {}
    for k, name in enumerate(scored.classes):
        at = scored.acc.precision_recall_at(thresholds.get(name, default_threshold)).get(k)
        recall[name] = at.recall if at is not None else float("nan")
        precision[name] = at.precision if at is not None else float("nan")
    return Check(len(scored.images), scored.objects(), recall, precision,
                 scored.outcome(Policy.build(scored.classes, default_threshold, thresholds)),
                 scored.outcome(Policy.build(scored.classes, default_threshold)))


@dataclass
class Calibration:
    classes: tuple[str, ...]
    target: float
    points: dict[str, OperatingPoint | None]      # None: no objects of the class, or none found
    on_data: Check
    held_out: Check | None
    default_threshold: float
    skipped: list[str]
    ignored_labels: dict[str, int]

    @property
    def thresholds(self) -> dict[str, float]:
        return thresholds_of(self.points)


def thresholds_of(points: dict[str, OperatingPoint | None]) -> dict[str, float]:
    # Rounded down: a threshold rounded up could drop the very detection it was set by.
    return {name: math.floor(p.threshold * 1e4) / 1e4 for name, p in points.items()
            if p is not None}


def _notes(scored: ScoredSet, held_out: ScoredSet | None) -> tuple[list[str], dict[str, int]]:
    """Unreadable images and labels the model lacks, over both sets."""
    skipped = scored.skipped + (held_out.skipped if held_out else [])
    ignored = dict(scored.ignored_labels)
    for label, n in (held_out.ignored_labels if held_out else {}).items():
        ignored[label] = ignored.get(label, 0) + n
    return skipped, ignored


def calibrate_thresholds(scored: ScoredSet, target: float, default_threshold: float,
                         held_out: ScoredSet | None = None) -> Calibration:
    """Per-class thresholds for recall ``target`` (matches at IoU 0.5, class-aware) on
    ``scored``, with the decision replayed at them and at the default, there and on
    ``held_out`` when given."""
    if not 0 < target <= 1:
        raise ValueError(f"target recall must lie in (0, 1], got {target}")
    found = scored.acc.operating_points(target)
    points = {name: found.get(k) for k, name in enumerate(scored.classes)}
    chosen = thresholds_of(points)
    later = None if held_out is None else check(held_out, chosen, default_threshold)
    skipped, ignored = _notes(scored, held_out)
    return Calibration(scored.classes, target, points, check(scored, chosen, default_threshold),
                       later, default_threshold, skipped, ignored)


def parcel_scores(scored: ScoredSet) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the highest score of any detection (0 with none), and whether it holds a
    labelled threat. With one threshold for every class, an image is diverted exactly when
    its highest score reaches it."""
    best = np.array([float(found.score.max()) if len(found) else 0.0
                     for found, _ in scored.images], np.float64)
    threat = np.array([len(truth) > 0 for _, truth in scored.images], bool)
    return best, threat


@dataclass
class ParcelCalibration:
    """One threshold for every class, chosen for a share of threat images diverted (``pd``)
    or a share of clear images diverted (``far``)."""

    classes: tuple[str, ...]
    target: tuple[str, float]     # ("pd" or "far", share)
    threshold: float | None       # None: no threshold reaches the target
    on_data: Check
    held_out: Check | None
    default_threshold: float
    skipped: list[str]
    ignored_labels: dict[str, int]

    @property
    def thresholds(self) -> dict[str, float]:
        if self.threshold is None:
            return {}
        return dict.fromkeys(self.classes, self.threshold)


def threshold_for_parcels(scored: ScoredSet, pd: float | None = None,
                          far: float | None = None) -> float | None:
    """The highest threshold that diverts at least ``pd`` of the threat images, or the lowest
    that diverts at most ``far`` of the clear ones (rounded down to 1e-4, then checked, so the
    image it was set by still passes). None when no threshold above FLOOR does it."""
    if (pd is None) == (far is None):
        raise ValueError("give exactly one of pd and far")
    best, threat = parcel_scores(scored)
    if pd is not None:
        if not 0 < pd <= 1:
            raise ValueError(f"target share of threat images must lie in (0, 1], got {pd}")
        scores = np.sort(best[threat])[::-1]
        if not len(scores):
            return None
        need = math.ceil(pd * len(scores) - 1e-9)
        at = float(scores[need - 1])
        return math.floor(at * 1e4) / 1e4 if at >= FLOOR else None
    if not 0 <= far < 1:
        raise ValueError(f"target share of clear images must lie in [0, 1), got {far}")
    scores = np.sort(best[~threat])[::-1]
    allowed = math.floor(far * len(scores) + 1e-9)   # clear images that may be diverted
    # Just above the highest clear score that must not pass; never below FLOOR.
    above = float(scores[allowed]) if allowed < len(scores) else 0.0
    at = max(math.ceil(above * 1e4 + 1e-6) / 1e4, FLOOR)
    return at if at <= 1 else None


def calibrate_parcels(scored: ScoredSet, default_threshold: float, pd: float | None = None,
                      far: float | None = None,
                      held_out: ScoredSet | None = None) -> ParcelCalibration:
    """One threshold for every class from whole images (``threshold_for_parcels``), with the
    decision replayed there and on ``held_out``."""
    threshold = threshold_for_parcels(scored, pd, far)
    chosen = {} if threshold is None else dict.fromkeys(scored.classes, threshold)
    skipped, ignored = _notes(scored, held_out)
    target = ("pd", pd) if pd is not None else ("far", far)
    return ParcelCalibration(
        scored.classes, target, threshold, check(scored, chosen, default_threshold),
        None if held_out is None else check(held_out, chosen, default_threshold),
        default_threshold, skipped, ignored)


def parcel_report(cal: ParcelCalibration) -> str:
    kind, share = cal.target
    goal = (f"at least {share:.2f} of threat images diverted" if kind == "pd" else
            f"at most {share:.2f} of clear images diverted")
    if cal.threshold is None:
        return f"no threshold reaches {goal} on {cal.on_data.images} images"
    lines = [f"one threshold for every class, {cal.threshold:.4f}: the "
             f"{'highest' if kind == 'pd' else 'lowest'} with {goal}"]
    for name, checked in (("chosen on", cal.on_data), ("checked on", cal.held_out)):
        if checked is None:
            continue
        lines += [f"{name} {checked.images} images",
                  f"{'class':12s} {'objects':>7s} {'recall':>7s} {'precision':>9s}"]
        lines += [f"{c:12s} {checked.objects[c]:7d} {_ratio(checked.recall[c], 7)} "
                  f"{_ratio(checked.precision[c], 9)}" for c in cal.classes]
        o, d = checked.calibrated, checked.default
        lines += [f"  {'at ' + format(cal.threshold, '.4f'):22s} diverts threat images "
                  f"{_share(o.threat_diverted, o.threat_images)}, clear images "
                  f"{_share(o.clear_diverted, o.clear_images)}",
                  f"  {'default ' + format(cal.default_threshold, '.2f'):22s} diverts threat "
                  f"images {_share(d.threat_diverted, d.threat_images)}, clear images "
                  f"{_share(d.clear_diverted, d.clear_images)}"]
    lines += [f"skipped: {reason}" for reason in cal.skipped]
    return "\n".join(lines)


def parcel_json(cal: ParcelCalibration) -> dict:
    return {"target": {cal.target[0]: cal.target[1]}, "threshold": cal.threshold,
            "thresholds": cal.thresholds, "on_data": check_json(cal.on_data),
            "held_out": None if cal.held_out is None else check_json(cal.held_out),
            "default_threshold": cal.default_threshold, "skipped": cal.skipped,
            "ignored_labels": cal.ignored_labels}


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f} %)" if whole else "none"


def _ratio(value: float, width: int) -> str:
    return f"{'-':>{width}s}" if math.isnan(value) else f"{value:{width}.2f}"


def _parcel_lines(checked: Check, cal: Calibration) -> list[str]:
    return [f"  {label:22s} diverts threat images "
            f"{_share(o.threat_diverted, o.threat_images)}, "
            f"clear images {_share(o.clear_diverted, o.clear_images)}"
            for label, o in ((f"calibrated (recall {cal.target:.2f})", checked.calibrated),
                             (f"default {cal.default_threshold:.2f}", checked.default))]


def folder_report(checks: dict[str, Check]) -> str:
    """Threat and clear images diverted per folder of the held-out set."""
    return "\n".join(
        f"  {name + ':':22s} diverts threat images "
        f"{_share(c.calibrated.threat_diverted, c.calibrated.threat_images)}, clear images "
        f"{_share(c.calibrated.clear_diverted, c.calibrated.clear_images)}"
        for name, c in checks.items())


def report(cal: Calibration) -> str:
    lines = [f"chosen on {cal.on_data.images} images",
             f"{'class':12s} {'objects':>7s} {'threshold':>9s} {'recall':>7s} {'precision':>9s}"]
    objects = cal.on_data.objects
    for name in cal.classes:
        p = cal.points[name]
        if p is None:
            why = "no labelled objects" if objects[name] == 0 else "none found"
            lines.append(f"{name:12s} {objects[name]:7d} {'default':>9s}   ({why})")
            continue
        short = "" if p.reached else f"  (target {cal.target:.2f} out of reach)"
        lines.append(f"{name:12s} {objects[name]:7d} {p.threshold:9.3f} {p.recall:7.2f} "
                     f"{p.precision:9.2f}{short}")
    lines += _parcel_lines(cal.on_data, cal)
    if cal.held_out is not None:
        held = cal.held_out
        chosen = cal.thresholds
        lines += [f"checked on {held.images} held-out images, at the thresholds above",
                  f"{'class':12s} {'objects':>7s} {'threshold':>9s} {'recall':>7s} "
                  f"{'precision':>9s}"]
        lines += [f"{name:12s} {held.objects[name]:7d} "
                  f"{chosen.get(name, cal.default_threshold):9.3f} {_ratio(held.recall[name], 7)} "
                  f"{_ratio(held.precision[name], 9)}" for name in cal.classes]
        lines += _parcel_lines(held, cal)
    if cal.ignored_labels:
        lines.append("labels the model does not know, not scored: " + ", ".join(
            f"{k} ({v})" for k, v in sorted(cal.ignored_labels.items())))
    lines += [f"skipped: {reason}" for reason in cal.skipped]
    return "\n".join(lines)


def check_json(c: Check) -> dict:
    def outcome(o: ParcelOutcome) -> dict:
        return {"threat_images": o.threat_images, "threat_diverted": o.threat_diverted,
                "clear_images": o.clear_images, "clear_diverted": o.clear_diverted}
    return {"images": c.images, "objects": c.objects, "recall": json_ready(c.recall),
            "precision": json_ready(c.precision),
            "calibrated": outcome(c.calibrated), "default": outcome(c.default)}


def as_json(cal: Calibration) -> dict:
    return {"target_recall": cal.target, "thresholds": cal.thresholds,
            "classes": {name: None if p is None else
                        p._asdict() | {"objects": cal.on_data.objects[name]}
                        for name, p in cal.points.items()},
            "on_data": check_json(cal.on_data),
            "held_out": None if cal.held_out is None else check_json(cal.held_out),
            "default_threshold": cal.default_threshold, "skipped": cal.skipped,
            "ignored_labels": cal.ignored_labels}


def read_items(paths: Sequence) -> list[LabelledImage]:
    return [item for path in paths for item in read_labelset(path)]
