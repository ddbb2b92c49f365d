"""Which benign items does a detector take for threats? Clear simulated parcels scored as the
live loop scores them, each box at the operating point named after the item it sits on.

    python -m models.data data/sim/clear --parcels 1000 --seed 6001 --threat-share 0
    python -m models.false_alarms --model models/lite0/lite0.int8.onnx \\
        --verifier models/lite0/verifier.int8.onnx --data data/sim/clear/shard-*/annotations.json

The simulator names every item a parcel holds, with its box (``item_boxes`` in each image
entry of ``annotations.json``). A box at its class's threshold sits on the item it overlaps
with IoU 0.3 or more, else on the item that holds 70 % of it, else on "clutter". Printed:
the share of clear parcels diverted, by the number of items a parcel holds and by container;
per benign family, how many of its items carry such a box; and how many parcels would still
be diverted without the families that alarm most (ranked on one half of the parcels, counted
on the other, so the ranking does not flatter itself).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.tools.metrics import box_iou

ON_ITEM_IOU = 0.3      # a box this close to an item's box is a box on that item
INSIDE_ITEM = 0.7      # or this share of the box lies within the item's box
ITEM_BINS = (0, 6, 11, 16, 21)
LEAST_ITEMS = 10       # families with fewer items in the ranking half are not ranked


@dataclass
class ClearParcel:
    """One clear image: its items (families, xyxy boxes) and the boxes that reach a threshold
    (class names), each with the index of the item it sits on (-1: clutter)."""

    path: Path
    kind: str
    families: list[str]
    items: np.ndarray
    alarms: list[tuple[str, int]] = field(default_factory=list)

    @property
    def diverted(self) -> bool:
        return bool(self.alarms)

    def alarm_families(self) -> set[str]:
        return {self.families[j] if j >= 0 else "clutter" for _, j in self.alarms}


def read_clear(paths: list[Path], render: str | None) -> tuple[list[ClearParcel], int]:
    """The clear images of simulated sets (``render``: colour or grey only), and how many
    images were left out for holding a threat."""
    parcels, threats = [], 0
    for path in paths:
        coco = json.loads(Path(path).read_text())
        labelled = {a["image_id"] for a in coco["annotations"]}
        for im in coco["images"]:
            if render and im.get("render") != render:
                continue
            if im["id"] in labelled:
                threats += 1
                continue
            if "item_boxes" not in im:
                raise SystemExit(f"{path}: images without item_boxes; simulate the set again "
                                 "(python -m models.data) with this version")
            xywh = np.asarray(im["item_boxes"], np.float32).reshape(-1, 4)
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
            parcels.append(ClearParcel(Path(path).parent / im["file_name"], im.get("kind", ""),
                                       list(im["families"]), xyxy))
    return parcels, threats


def sits_on(box: np.ndarray, items: np.ndarray) -> int:
    """The item a detection box sits on, or -1."""
    if not len(items):
        return -1
    iou = box_iou(box[None], items)[0]
    if iou.max() >= ON_ITEM_IOU:
        return int(np.argmax(iou))
    lo, hi = np.maximum(box[:2], items[:, :2]), np.minimum(box[2:], items[:, 2:])
    inside = np.prod(np.clip(hi - lo, 0, None), 1) / max(float(np.prod(box[2:] - box[:2])), 1e-6)
    return int(np.argmax(inside)) if inside.max() >= INSIDE_ITEM else -1


def per_family(parcels: list[ClearParcel]) -> tuple[Counter, Counter, Counter]:
    """Items of each family, those carrying an alarm, and each predicted class per family."""
    items, alarmed, taken_for = Counter(), Counter(), Counter()
    for p in parcels:
        hit = {j for _, j in p.alarms if j >= 0}
        for j, fam in enumerate(p.families):
            items[fam] += 1
            alarmed[fam] += j in hit
        for cls, j in p.alarms:
            taken_for[(p.families[j] if j >= 0 else "clutter", cls)] += 1
    return items, alarmed, taken_for


def ranked_families(parcels: list[ClearParcel]) -> list[str]:
    items, alarmed, _ = per_family(parcels)
    known = [f for f in items if items[f] >= LEAST_ITEMS]
    return sorted(known, key=lambda f: (-alarmed[f] / items[f], f))


def without(parcels: list[ClearParcel], families: set[str]) -> tuple[float, float, int]:
    """Share diverted if every alarm on ``families`` vanished; share diverted among the
    parcels that hold none of them, and how many those are."""
    left = [any(f not in families for f in p.alarm_families()) for p in parcels]
    free = [p.diverted for p in parcels if not families & set(p.families)]
    return float(np.mean(left)), float(np.mean(free)) if free else float("nan"), len(free)


def report(parcels: list[ClearParcel], top: int = 15) -> str:
    n = len(parcels)
    lines = [f"clear parcels diverted: {sum(p.diverted for p in parcels)} of {n} "
             f"({np.mean([p.diverted for p in parcels]):.1%})", "",
             "| items in the parcel | parcels | diverted |", "|---|---|---|"]
    counts = np.array([len(p.families) for p in parcels])
    diverted = np.array([p.diverted for p in parcels])
    for lo, hi in zip(ITEM_BINS, (*ITEM_BINS[1:], None), strict=True):
        m = (counts >= lo) & (counts < hi if hi else True)
        if m.any():
            label = f"{lo}-{hi - 1}" if hi else f"{lo} or more"
            lines.append(f"| {label} | {m.sum()} | {diverted[m].mean():.0%} |")
    kinds = sorted({p.kind for p in parcels})
    lines += ["", "| container | parcels | diverted |", "|---|---|---|"]
    for kind in kinds:
        m = np.array([p.kind == kind for p in parcels])
        lines.append(f"| {kind or '?'} | {m.sum()} | {diverted[m].mean():.0%} |")
    items, alarmed, taken_for = per_family(parcels)
    total_items, total_alarmed = sum(items.values()), sum(alarmed.values())
    lines += ["", f"items: {total_items} ({total_items / n:.1f} a parcel), {total_alarmed} of "
              f"them under an alarm ({total_alarmed / max(total_items, 1):.1%}); alarms on no "
              f"item: {sum(v for (f, _), v in taken_for.items() if f == 'clutter')}", "",
              "| family | items a parcel | items under an alarm | taken for |", "|---|---|---|---|"]
    for fam in sorted(items, key=lambda f: (-alarmed[f], f))[:top]:
        classes = sorted(((v, c) for (f, c), v in taken_for.items() if f == fam), reverse=True)
        lines.append(f"| {fam} | {items[fam] / n:.2f} | {alarmed[fam]} of {items[fam]} "
                     f"({alarmed[fam] / items[fam]:.0%}) | "
                     f"{', '.join(f'{c} {v}' for v, c in classes[:3])} |")
    half = np.random.default_rng(0).random(n) < 0.5
    ranking = ranked_families([p for p, h in zip(parcels, half, strict=True) if h])
    rest = [p for p, h in zip(parcels, half, strict=True) if not h]
    lines += ["", f"Without the families that alarm most (ranked by the share of their items "
              f"under an alarm on {int(half.sum())} parcels, counted on the other {len(rest)}):",
              "", "| families left out | diverted, their alarms gone | parcels holding none of "
              "them: diverted |", "|---|---|---|"]
    for k in (0, 5, 10, 20):
        if k > len(ranking) or not rest:
            break
        gone, free, count = without(rest, set(ranking[:k]))
        name = ", ".join(ranking[:k]) if 0 < k <= 5 else ("none" if k == 0 else f"top {k}")
        lines.append(f"| {name} | {gone:.0%} | {free:.0%} of {count} |")
    return "\n".join(lines)


def score(parcels: list[ClearParcel], detector, verifier, thresholds: dict[str, float],
          progress: bool = True) -> None:
    """Run the runtime's detection path on each parcel and keep its alarms."""
    from edge.detect.files import read_scan
    from edge.detect.verify import candidates
    from edge.tools.calibrate import FLOOR
    classes = detector.info.classes
    floors = np.array([thresholds[c] for c in classes], np.float32)
    todo = parcels
    if progress:
        from tqdm import tqdm
        todo = tqdm(parcels, desc="detect", mininterval=10, file=sys.stdout)
    for p in todo:
        found = candidates(detector.raw, detector.info, read_scan(p.path), verifier, FLOOR)
        strong = found.score >= floors[found.class_id]
        p.alarms = [(classes[int(c)], sits_on(b, p.items))
                    for b, c in zip(found.xyxy[strong], found.class_id[strong], strict=True)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--verifier", type=Path, default=None)
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="annotations.json of simulated sets (models.data)")
    p.add_argument("--render", choices=["colour", "grey", "both"], default="colour",
                   help="which rendering to score (the live loop sees colour)")
    p.add_argument("--thresholds", type=Path, default=Path("calibration/thresholds.json"))
    p.add_argument("--threshold", type=float, default=None,
                   help="one threshold for every class instead of --thresholds")
    p.add_argument("--json", type=Path, default=None, help="write each parcel's alarms here")
    args = p.parse_args(argv)
    from edge.decide import read_thresholds
    from edge.detect.model import Detector
    from edge.detect.verify import Verifier
    parcels, threats = read_clear(args.data, None if args.render == "both" else args.render)
    if not parcels:
        p.error("no clear images in --data (simulate with --threat-share 0)")
    detector = Detector(args.model, threads=2)
    verifier = Verifier(args.verifier, 2) if args.verifier else None
    classes = detector.info.classes
    if args.threshold is not None:
        thresholds = dict.fromkeys(classes, args.threshold)
    else:
        _, thresholds = read_thresholds(args.thresholds, classes)
    print(f"{len(parcels)} clear images ({threats} with a threat left out); {args.model}"
          f"{' + ' + str(args.verifier) if args.verifier else ''}; thresholds "
          f"{', '.join(sorted({f'{v:.3f}' for v in thresholds.values()}))}", flush=True)
    score(parcels, detector, verifier, thresholds)
    print(report(parcels))
    if args.json:
        args.json.write_text(json.dumps([{"path": str(q.path), "kind": q.kind,
                                          "families": q.families,
                                          "alarms": [[c, q.families[j] if j >= 0 else None]
                                                     for c, j in q.alarms]}
                                         for q in parcels]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
