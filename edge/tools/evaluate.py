"""Accuracy of ONNX detectors on labelled scans (COCO, VOC or YOLO), through the runtime's own
detection path: the check every model gets on a hub's real scans, which never enter the repo.

Labels the model does not know are left out and counted (``--map`` renames or drops foreign
class names first), and unreadable images are skipped and named: both are reported, so a
forgotten mapping shows rather than quietly shrinking a class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.detect.model import Detector
from edge.detect.verify import Verifier
from edge.tools.calibrate import ScoredSet, score_set
from edge.tools.labelsets import LabelledImage, LabelsetError
from edge.tools.metrics import confusion

NOTHING = "nothing"


def parse_mapping(pairs: Sequence[str]) -> dict[str, str | None]:
    """``["pistol=gun", "person="]`` -> ``{"pistol": "gun", "person": None}`` (None drops)."""
    mapping: dict[str, str | None] = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip():
            raise LabelsetError(f"--map takes FROM=TO (or FROM= to drop a class), got {pair!r}")
        mapping[source.strip()] = target.strip() or None
    return mapping


def evaluate_models(detectors: Sequence[Detector], items: Sequence[LabelledImage],
                    iou: float = 0.5, vote: bool = False, progress: bool = False,
                    confusion_at: float | None = None,
                    verifiers: Sequence[Verifier | None] | None = None) -> dict:
    """Per model (by file; ``MODEL + VERIFIER`` where ``verifiers`` gives it a second look):
    images, mAP50, mAP50:95 and per-class AP50, AP50:95 and object counts; with the skipped
    images and ignored labels of the set (alike for every model). ``confusion_at``: also what
    each object was seen as at that score threshold (``metrics.confusion`` summed over the
    images, under "confusion")."""
    models, skipped, ignored = {}, [], {}
    for detector, verifier in zip(detectors, verifiers or [None] * len(detectors),
                                  strict=True):
        scored = score_set(detector, items, iou, vote, progress, verifier)
        summary = scored.acc.summary(list(detector.info.classes))
        if confusion_at is not None:
            summary["confusion"] = confusion_table(scored, confusion_at, iou)
        name = str(detector.path) if verifier is None else \
            f"{detector.path} + {verifier.path.name}"
        models[name] = summary
        skipped, ignored = scored.skipped, scored.ignored_labels
    return {"models": models, "skipped": skipped, "ignored_labels": ignored}


def confusion_table(scored: ScoredSet, score_threshold: float, iou: float) -> dict:
    """The confusion counts of a scored set, labelled: rows and columns are the classes, then
    "nothing" (a missed object in the last column; a false alarm in the last row)."""
    size = len(scored.classes)
    counts = sum((confusion(found, truth, size, score_threshold, iou)
                  for found, truth in scored.images),
                 start=np.zeros((size + 1, size + 1), np.int64))
    return {"score_threshold": score_threshold, "iou": iou,
            "labels": [*scored.classes, NOTHING], "counts": counts.tolist()}


def confusion_report(path: str, table: dict) -> str:
    """One model's confusion table as text: a row per labelled class, a column per class found."""
    labels = table["labels"]
    width = max(len(name) for name in labels) + 2
    lines = [f"{Path(path).name}: what each labelled object was seen as (score >= "
             f"{table['score_threshold']:g}, IoU >= {table['iou']:g}); last row: false alarms",
             " " * width + "".join(f"{name:>{width}s}" for name in labels)]
    for name, row in zip(labels, table["counts"], strict=True):
        lines.append(f"{name:<{width}s}" + "".join(f"{v:{width}d}" for v in row))
    return "\n".join(lines)


def column_titles(names: Sequence[str], least: int) -> tuple[list[str], int]:
    """Table columns for result keys: a model's file name, and its second look's after " + "
    (evaluate_models' keys); and a width of at least ``least`` that fits every title. Files of
    the same name in different folders keep as many of their folders as tells them apart."""
    paths = sorted({part for name in names for part in name.split(" + ")})
    short = dict(zip(paths, distinct_tails(paths), strict=True))
    titles = [" + ".join(short[part] for part in name.split(" + ")) for name in names]
    return titles, max(least, *(len(t) + 2 for t in titles))


def distinct_tails(paths: Sequence[str]) -> list[str]:
    """Each path's file name, or its last few parts where names alone would collide."""
    parts = [Path(p).parts or (p,) for p in paths]
    tails = []
    for own in parts:
        n = 1
        while n < len(own) and any(other != own and other[-n:] == own[-n:] for other in parts):
            n += 1
        tails.append("/".join(own[-n:]))
    return tails


def _cell(value: float, width: int) -> str:
    return f"{'-':>{width}s}" if math.isnan(value) else f"{value:{width}.3f}"


def report(models: dict[str, dict]) -> str:
    """A table: one column per model, AP50 per class, then mAP50 and mAP50:95 (the mean over
    the classes with labelled objects; a dash where a class has none)."""
    first = next(iter(models.values()))
    titles, width = column_titles(list(models), 30)
    lines = [f"{first['images']} images; AP50 per class (labelled objects in brackets)",
             f"{'class':20s}" + "".join(f"{t:>{width}s}" for t in titles)]
    for name, row in first["classes"].items():
        lines.append(f"{name + ' (' + str(row['gt']) + ')':20s}" + "".join(
            _cell(r["classes"][name]["AP50"], width) for r in models.values()))
    for key in ("mAP50", "mAP50_95"):
        lines.append(f"{key:20s}" + "".join(_cell(r[key], width) for r in models.values()))
    return "\n".join(lines)


def notes(result: dict) -> list[str]:
    """What the table does not count: ignored labels and skipped images."""
    out = []
    if result["ignored_labels"]:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(result["ignored_labels"].items()))
        out.append(f"labels the model does not know, left out: {counts} (rename with --map "
                   f"FROM=TO)")
    if result["skipped"]:
        out.append(f"{len(result['skipped'])} unreadable images skipped: "
                   + "; ".join(result["skipped"][:5]) + (" ..." if len(result["skipped"]) > 5
                                                          else ""))
    return out
