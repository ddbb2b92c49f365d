"""The report of a replay: how a model did on a recorded scanner stream, in figures an engineer
can act on and a hub manager can read.

``write_report`` takes one ``ReplayRun``, or two (two models on the same recording, the same
parcels), and writes ``OUT/metrics.json`` (every figure; NaN and "above every score" as null)
and ``OUT/report.html`` (one self-contained page, ``edge.tools.report_html``). Per run:

- header: recording, model, thresholds and where they came from, parcels, replay speed;
- detection accuracy on the parcels with truth: COCO AP50 and AP50:95 per class;
- parcel level: probability of detection (Pd, the share of threat parcels diverted) and false
  alarm rate (FAR, the share of clear parcels diverted) at the thresholds the policy applied,
  as recorded and as recomputed from the kept detections; the ROC curve of one global
  threshold over parcel scores; the object-level precision-recall curve, micro-averaged;
- confusion between classes, latency, and galleries of the worst misses and false alarms;
- with two runs: Pd and FAR at each run's own thresholds and at equal Pd.

A parcel's score is its highest detection score of any class (every class diverts here). The
figures are pure functions of the runs' ``ParcelRecord``s.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from edge.ledger import percentiles_ms
from edge.tools.metrics import confusion, json_ready, match_image
from edge.tools.replay import ParcelRecord, ReplayRun
from edge.types import Detections

GALLERY_SIZE = 8       # parcels per gallery
CURVE_POINTS = 400     # at most, per curve in metrics.json and the plots
SUMMARY_KEYS = ("parcels", "uninspected", "duration_s", "recorded_s", "speedup")


def threshold_table(run: ReplayRun) -> np.ndarray:
    """The applied threshold of each of ``run.classes``: float32 ``[C]``, as the policy
    compares them."""
    missing = [c for c in run.classes if c not in run.thresholds]
    if missing:
        raise ValueError(f"run of {run.model} has no threshold for classes {missing}; it has "
                         f"{sorted(run.thresholds)}")
    return np.array([run.thresholds[c] for c in run.classes], np.float32)


def kept(found: Detections, table: np.ndarray) -> Detections:
    """The detections at or above their class's threshold (``table [C]``)."""
    return found[found.score >= table[found.class_id]] if len(found) else found


def best_score(found: Detections) -> float:
    """A parcel's score: its highest detection score, 0 with none."""
    return float(found.score.max()) if len(found) else 0.0


def with_truth(records: list[ParcelRecord]) -> list[ParcelRecord]:
    return [r for r in records if r.threat is not None]


def parcel_scores(records: list[ParcelRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Of the parcels with truth: score float64 ``[N]`` and threat bool ``[N]``."""
    truthful = with_truth(records)
    return (np.array([best_score(r.found) for r in truthful], np.float64),
            np.array([bool(r.threat) for r in truthful], bool))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def rates(diverted: np.ndarray, threat: np.ndarray) -> dict:
    """Pd and FAR of bool ``diverted [N]`` against bool ``threat [N]``, with their counts."""
    hits, alarms = int((diverted & threat).sum()), int((diverted & ~threat).sum())
    n_threat, n_clear = int(threat.sum()), int((~threat).sum())
    return {"pd": _share(hits, n_threat), "far": _share(alarms, n_clear),
            "threat_parcels": n_threat, "threat_diverted": hits,
            "clear_parcels": n_clear, "clear_diverted": alarms}


def applied(records: list[ParcelRecord], table: np.ndarray) -> dict:
    """Pd and FAR at the applied thresholds: ``recorded`` from each parcel's action (what
    happened: a parcel not cleared was diverted), ``recomputed`` from its kept detections and
    ``table``; ``disagree``: the parcels (seq, any truth) where the two differ."""
    recorded = np.array([r.action != "clear" for r in records], bool)
    recomputed = np.array([len(kept(r.found, table)) > 0 for r in records], bool)
    known = np.array([r.threat is not None for r in records], bool)
    threat = np.array([bool(r.threat) for r in records], bool)[known]
    return {"recorded": rates(recorded[known], threat),
            "recomputed": rates(recomputed[known], threat),
            "disagree": [r.seq for r, a, b in zip(records, recorded, recomputed, strict=True)
                         if a != b]}


def _at(sorted_scores: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Share of ``sorted_scores`` (ascending) at or above each cut; NaN when there are none."""
    if not len(sorted_scores):
        return np.full(len(cuts), np.nan)
    n = len(sorted_scores)
    return (n - np.searchsorted(sorted_scores, cuts, side="left")) / n


def roc(score: np.ndarray, threat: np.ndarray) -> dict:
    """Pd and FAR of one global threshold swept over the parcel scores, highest first:
    ``threshold [K]`` (the first +inf: above every score, so (0, 0); the last 0: every parcel
    diverted, so (1, 1)), ``pd [K]``, ``far [K]``, both never decreasing."""
    cuts = np.concatenate([[np.inf], np.unique(score)[::-1]])
    if cuts[-1] > 0:
        cuts = np.append(cuts, 0.0)
    return {"threshold": cuts, "pd": _at(np.sort(score[threat]), cuts),
            "far": _at(np.sort(score[~threat]), cuts)}


def threshold_at_pd(score: np.ndarray, threat: np.ndarray, target: float) -> dict:
    """The highest global threshold that diverts at least ``target`` of the threat parcels,
    and the Pd and FAR there (+inf threshold when the target is 0; NaN without threats)."""
    threats = np.sort(score[threat])[::-1]
    if not len(threats) or math.isnan(target):
        nan = float("nan")
        return {"target_pd": target, "threshold": nan, "pd": nan, "far": nan}
    need = math.ceil(target * len(threats) - 1e-9)
    cut = float(threats[need - 1]) if need > 0 else math.inf
    pd, far = (float(_at(np.sort(s), np.array([cut]))[0]) for s in (score[threat],
                                                                    score[~threat]))
    return {"target_pd": target, "threshold": cut, "pd": pd, "far": far}


def object_pr(images: list[tuple[Detections, Detections]], table: np.ndarray) -> dict:
    """Precision against recall of every class's objects together (micro-averaged), IoU 0.5,
    one score threshold swept down the detections: ``threshold``, ``precision``, ``recall``
    ``[K]``; ``operating``: the point at the applied per-class thresholds ``table [C]``."""
    scores, hits, classes, n_gt = [], [], [], 0
    for found, truth in images:
        hits.append(match_image(found.xyxy, found.score, found.class_id, truth.xyxy,
                                truth.class_id, 0.5))
        scores.append(found.score)
        classes.append(found.class_id)
        n_gt += len(truth)
    score, tp, cls = (np.concatenate(x) if x else np.zeros(0) for x in (scores, hits, classes))
    tp = tp.astype(bool)
    order = np.argsort(-score, kind="stable")
    caught = np.cumsum(tp[order])
    ranked = score[order]
    last = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], len(ranked) > 0))  # tie ends
    on = score >= table[cls.astype(np.int64)]
    return {"averaging": "micro: the objects of every class together, IoU 0.5",
            "objects": n_gt, "threshold": ranked[last],
            "precision": caught[last] / (last + 1), "recall": caught[last] / n_gt if n_gt
            else np.full(len(last), np.nan),
            "operating": {"precision": _share(int(tp[on].sum()), int(on.sum())),
                          "recall": _share(int(tp[on].sum()), n_gt)}}


def confusion_table(images: list[tuple[Detections, Detections]], classes: tuple[str, ...],
                    table: np.ndarray) -> dict:
    """``edge.tools.metrics.confusion`` of the kept detections, summed over parcels: rows the
    objects' classes and a last row of detections on no object, columns the class they were
    seen as and a last column of objects no kept detection overlapped."""
    total = np.zeros((len(classes) + 1, len(classes) + 1), np.int64)
    for found, truth in images:
        total += confusion(kept(found, table), truth, len(classes), 0.0)
    return {"rows": [*classes, "false alarm"], "columns": [*classes, "missed"],
            "counts": total.tolist()}


def latency(records: list[ParcelRecord], summary: dict) -> dict:
    """Decision latency (last line to verdict, ms) from the records; the detector's stage and
    the hub's own latency figures from the summary when it has them."""
    n = len(records)
    uninspected = sum(r.action == "uninspected" for r in records)
    out = {"decision_ms": percentiles_ms([r.latency_s for r in records
                                          if r.latency_s is not None]),
           "uninspected": uninspected, "uninspected_share": _share(uninspected, n)}
    detect = summary.get("stages", {}).get("detect_ms")
    if detect is not None:
        out["detect_ms"] = detect
    return out


def galleries(records: list[ParcelRecord], size: int = GALLERY_SIZE) -> dict:
    """The worst misses (threat parcels cleared, lowest score first) and worst false alarms
    (clear parcels diverted, highest score first), ``size`` of each at most."""
    def entry(r: ParcelRecord) -> dict:
        return {"seq": r.seq, "id": r.id, "action": r.action, "score": best_score(r.found)}
    misses = [entry(r) for r in records if r.threat is True and r.action == "clear"]
    alarms = [entry(r) for r in records if r.threat is False and r.action != "clear"]
    return {"misses": sorted(misses, key=lambda e: e["score"])[:size],
            "false_alarms": sorted(alarms, key=lambda e: -e["score"])[:size]}


def _thin(curve: dict, keys: tuple[str, ...]) -> dict:
    """At most ``CURVE_POINTS`` of a curve's points, first and last kept, as lists."""
    n = len(curve[keys[0]])
    pick = np.unique(np.linspace(0, n - 1, CURVE_POINTS).round().astype(int)) if n else []
    return curve | {k: [float(v) for v in np.asarray(curve[k], np.float64)[pick]]
                    for k in keys}


def run_figures(run: ReplayRun, recording: str) -> dict:
    """Every figure of one run (module docstring), JSON-ready but for NaN."""
    table, scored = threshold_table(run), run.scored_set()
    score, threat = parcel_scores(run.records)
    return {
        "recording": recording, "model": run.model, "version": run.version,
        "classes": list(run.classes), "threshold_source": run.threshold_source,
        "thresholds": {c: float(t) for c, t in zip(run.classes, table, strict=True)},
        "parcels": len(run.records), "parcels_with_truth": len(score),
        "replay": {k: run.summary[k] for k in SUMMARY_KEYS if k in run.summary},
        "detection": scored.acc.summary(list(run.classes)),
        "parcel": applied(run.records, table),
        "roc": _thin(roc(score, threat), ("threshold", "pd", "far")),
        "pr": _thin(object_pr(scored.images, table), ("threshold", "precision", "recall")),
        "confusion": confusion_table(scored.images, run.classes, table),
        "latency": latency(run.records, run.summary),
        "galleries": galleries(run.records),
    }


def compare(a: ReplayRun, b: ReplayRun, fig_a: dict, fig_b: dict) -> dict:
    """B against A: Pd and FAR at each run's applied thresholds (as recorded) and B - A; and
    at equal Pd, each run's global threshold reaching the other's recorded Pd."""
    ra, rb = fig_a["parcel"]["recorded"], fig_b["parcel"]["recorded"]
    (sa, ta), (sb, tb) = parcel_scores(a.records), parcel_scores(b.records)
    seqs = [[r.seq for r in with_truth(run.records)] for run in (a, b)]
    return {"a": fig_a["model"], "b": fig_b["model"], "same_parcels": seqs[0] == seqs[1],
            "applied": {"pd_a": ra["pd"], "pd_b": rb["pd"], "far_a": ra["far"],
                        "far_b": rb["far"], "pd_b_minus_a": rb["pd"] - ra["pd"],
                        "far_b_minus_a": rb["far"] - ra["far"]},
            "equal_pd": {"b_at_pd_of_a": threshold_at_pd(sb, tb, ra["pd"]) | {"far_a": ra["far"]},
                         "a_at_pd_of_b": threshold_at_pd(sa, ta, rb["pd"]) | {"far_b": rb["far"]}}}


def report_figures(runs: list[ReplayRun], recording: str) -> dict:
    """``{"recording", "runs": [per run], "comparison": B against A or None}``."""
    if len(runs) not in (1, 2):
        raise ValueError(f"a report compares one or two runs, got {len(runs)}")
    figures = [run_figures(run, recording) for run in runs]
    comparison = compare(*runs, *figures) if len(runs) == 2 else None
    return {"recording": recording, "runs": figures, "comparison": comparison}


def _finite(value):
    """+-inf as None (JSON has no infinity), in nested dicts and lists."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and math.isinf(value) else value


def write_report(out: Path, runs: list[ReplayRun], recording: str) -> dict:
    """Write ``out/metrics.json`` and ``out/report.html`` for one run or two (B against A)
    on ``recording``; returns the figures as written to metrics.json."""
    from edge.tools.report_html import render  # matplotlib: only when a page is written

    metrics = json_ready(_finite(report_figures(runs, recording)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False) + "\n")
    (out / "report.html").write_text(render(metrics, runs), encoding="utf-8")
    return metrics
