"""The replay report as one self-contained HTML page: tables, plots as PNG and gallery
thumbnails as JPEG embedded in base64, a small inline stylesheet, nothing fetched, so it
opens offline and can be mailed as one file.

``render(metrics, runs)`` lays out what ``edge.tools.report`` computed; the plots are drawn
with matplotlib's Agg canvas (no pyplot, no display), the thumbnails with OpenCV.
"""

from __future__ import annotations

import base64
import html
import io

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edge.tools.replay import THUMBNAIL_SCALE, ReplayRun
from edge.tools.report import kept, threshold_table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1300px; }
h2 { border-bottom: 1px solid #bbb; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
.runs { display: flex; gap: 2em; flex-wrap: wrap; }
.run { flex: 1; min-width: 400px; }
.note { color: #555; font-size: 0.9em; }
.warn { color: #a33; }
figure { display: inline-block; margin: 4px; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ccc; }
figcaption { font-size: 0.85em; }
"""
TRUTH_BGR, FOUND_BGR = (0, 170, 0), (0, 0, 220)


def _e(value) -> str:
    return html.escape(str(value))


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _points(value) -> str:
    """A difference of two shares, in percentage points."""
    return "–" if value is None else f"{100 * value:+.1f} points"


def _table(head: list[str] | None, rows: list[list[str]]) -> str:
    """Cells are HTML already (escape text with ``_e``); no header row for ``head`` None."""
    top = "" if head is None else "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{top}{body}</table>"


def _img(data: str, kind: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/{kind};base64,{data}">'


# --- plots ---------------------------------------------------------------------------------

def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _values(points: list) -> np.ndarray:
    return np.array(points, np.float64)   # null (NaN in JSON) as NaN


def roc_png(figures: list[dict], labels: list[str]) -> str:
    """Pd against FAR of each run's global threshold sweep, its applied point marked."""
    fig = Figure(figsize=(4.4, 3.6))
    ax = fig.add_subplot()
    for f, label in zip(figures, labels, strict=True):
        line, = ax.plot(_values(f["roc"]["far"]), _values(f["roc"]["pd"]), label=label)
        point = f["parcel"]["recorded"]
        ax.plot(_values([point["far"]]), _values([point["pd"]]), "o", color=line.get_color(),
                label=f"{label}: applied" if len(figures) > 1 else "applied thresholds")
    ax.set(xlabel="false alarm rate (clear parcels diverted)",
           ylabel="Pd (threat parcels diverted)", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),
           title="ROC: one threshold for every class")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def pr_png(f: dict) -> str:
    """Object-level precision against recall (micro-averaged), the applied point marked."""
    fig = Figure(figsize=(4.4, 3.6))
    ax = fig.add_subplot()
    pr = f["pr"]
    ax.plot(_values(pr["recall"]), _values(pr["precision"]), label="one threshold swept")
    op = pr["operating"]
    ax.plot(_values([op["recall"]]), _values([op["precision"]]), "o",
            label="applied thresholds")
    ax.set(xlabel="recall (objects found)", ylabel="precision (detections right)",
           xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title="Objects, all classes, IoU 0.5")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _png(fig)


# --- gallery thumbnails --------------------------------------------------------------------

def _box(image: np.ndarray, xyxy: np.ndarray, colour, text: str = "") -> None:
    x1, y1, x2, y2 = (int(round(v * THUMBNAIL_SCALE)) for v in xyxy)
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, 1)
    if text:
        cv2.putText(image, text, (x1, max(y1 - 3, 9)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour,
                    1, cv2.LINE_AA)


def thumbnail(run: ReplayRun, seq: int) -> str | None:
    """JPEG base64 of parcel ``seq``'s thumbnail with its truth (green) and the detections
    at or above the applied thresholds (red, class and score); None without a thumbnail."""
    path = None if run.thumbnails is None else run.thumbnails / f"{seq}.jpg"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path and path.is_file() else None
    record = next((r for r in run.records if r.seq == seq), None)
    if image is None or record is None:
        return None
    if record.truth is not None:
        for box in record.truth.xyxy:
            _box(image, box, TRUTH_BGR)
    found = kept(record.found, threshold_table(run))
    for box, score, cls in zip(found.xyxy, found.score, found.class_id, strict=True):
        _box(image, box, FOUND_BGR, f"{run.classes[cls]} {score:.2f}")
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(data.tobytes()).decode("ascii") if ok else None


# --- sections ------------------------------------------------------------------------------

REPLAY_LABELS = {"parcels": "parcels the hub opened", "uninspected": "uninspected",
                 "duration_s": "replay wall time (s)", "recorded_s": "belt time played (s)",
                 "speedup": "speedup over real time"}


def header(f: dict) -> str:
    rows = [["recording", _e(f["recording"])], ["model", _e(f["model"])],
            ["version", _e(f["version"] or "–")], ["thresholds from", _e(f["threshold_source"])],
            ["parcels", _num(f["parcels"])], ["parcels with truth", _num(f["parcels_with_truth"])]]
    rows += [[REPLAY_LABELS[k], _num(v, 2)] for k, v in f["replay"].items()]
    thresholds = [[_e(c), _num(t)] for c, t in f["thresholds"].items()]
    return _table(None, rows) + _table(["class", "applied threshold"], thresholds)


def detection(f: dict) -> str:
    d = f["detection"]
    rows = [[_e(c), _num(v["gt"]), _num(v["AP50"]), _num(v["AP50_95"])]
            for c, v in d["classes"].items()]
    rows.append(["<b>mean</b> (classes with objects)", "", _num(d["mAP50"]), _num(d["mAP50_95"])])
    return (f'<p class="note">{d["images"]} parcels with truth; COCO AP (101-point), every '
            "detection down to the replay's floor.</p>"
            + _table(["class", "objects", "AP50", "AP50:95"], rows))


def parcel(f: dict) -> str:
    p = f["parcel"]
    rows = [[name, f'{_pct(r["pd"])} ({r["threat_diverted"]}/{r["threat_parcels"]})',
             f'{_pct(r["far"])} ({r["clear_diverted"]}/{r["clear_parcels"]})']
            for name, r in (("as recorded (the verdicts)", p["recorded"]),
                            ("recomputed (detections at thresholds)", p["recomputed"]))]
    out = _table(["at the applied thresholds", "Pd", "FAR"], rows)
    if p["disagree"]:
        shown = ", ".join(map(str, p["disagree"][:20]))
        more = f" and {len(p['disagree']) - 20} more" if len(p["disagree"]) > 20 else ""
        out += (f'<p class="warn">Recorded and recomputed verdicts differ on '
                f'{len(p["disagree"])} parcels (seq {shown}{more}).</p>')
    return (out + _img(roc_png([f], ["one threshold swept"]), "png", "ROC curve")
            + _img(pr_png(f), "png", "PR curve")
            + f'<p class="note">Precision-recall: {_e(f["pr"]["averaging"])}.</p>')


def confusion(f: dict) -> str:
    c = f["confusion"]
    rows = [[_e(name), *map(_num, counts)] for name, counts in zip(c["rows"], c["counts"],
                                                                    strict=True)]
    return ('<p class="note">Rows: what the object is (last row: detections on no object). '
            "Columns: what it was seen as at the applied thresholds (last column: not seen)."
            "</p>" + _table(["truth \\ detected", *map(_e, c["columns"])], rows))


def latency(f: dict) -> str:
    lat = f["latency"]
    rows = [["decision (last line to verdict)", *(_num(lat["decision_ms"][k], 1)
                                                  for k in ("p50", "p99", "max"))]]
    if "detect_ms" in lat:
        rows.append(["detector, per parcel", *(_num(lat["detect_ms"].get(k), 1)
                                               for k in ("p50", "p99", "max"))])
    return (_table(["ms", "p50", "p99", "max"], rows)
            + f"<p>Uninspected: {lat['uninspected']} parcels "
              f"({_pct(lat['uninspected_share'])}).</p>")


def gallery(f: dict, run: ReplayRun) -> str:
    out = []
    for key, title in (("misses", "Worst misses: threat parcels cleared, lowest score first"),
                       ("false_alarms", "Worst false alarms: clear parcels diverted, highest "
                                        "score first")):
        entries = f["galleries"][key]
        shots = [(e, thumbnail(run, e["seq"])) for e in entries]
        cells = "".join(f"<figure>{_img(data, 'jpeg', e['id'])}<figcaption>{_e(e['id'])} "
                        f"(seq {e['seq']}): score {e['score']:.2f}, {_e(e['action'])}"
                        "</figcaption></figure>" for e, data in shots if data is not None)
        missing = len(entries) - sum(data is not None for _, data in shots)
        note = f'<p class="note">{missing} without a thumbnail.</p>' if missing else ""
        listed = "none" if not entries else cells or "no thumbnails kept"
        out.append(f"<h4>{title}</h4>{listed}{note}")
    return ('<p class="note">Green: truth. Red: detections at or above the applied '
            "thresholds.</p>" + "".join(out))


def comparison(c: dict, figures: list[dict], labels: list[str]) -> str:
    ap = c["applied"]
    own = _table(["at each run's applied thresholds", *map(_e, labels), "B − A"],
                 [["Pd", _pct(ap["pd_a"]), _pct(ap["pd_b"]), _points(ap["pd_b_minus_a"])],
                  ["FAR", _pct(ap["far_a"]), _pct(ap["far_b"]), _points(ap["far_b_minus_a"])]])
    ba, ab = c["equal_pd"]["b_at_pd_of_a"], c["equal_pd"]["a_at_pd_of_b"]
    equal = _table(["at equal Pd", "global threshold", "Pd", "FAR", "the other's FAR"],
                   [[f"B at A's Pd ({_pct(ba['target_pd'])})", _num(ba["threshold"]),
                     _pct(ba["pd"]), _pct(ba["far"]), _pct(ba["far_a"])],
                    [f"A at B's Pd ({_pct(ab['target_pd'])})", _num(ab["threshold"]),
                     _pct(ab["pd"]), _pct(ab["far"]), _pct(ab["far_b"])]])
    warn = "" if c["same_parcels"] else \
        '<p class="warn">The runs hold different parcels with truth: compare with care.</p>'
    return (warn + own + '<p class="note">Equal Pd: the highest single threshold for every '
            "class at which the run diverts at least the other's recorded Pd; "
            "threshold – means none needed (target 0).</p>" + equal
            + _img(roc_png(figures, labels), "png", "ROC curves of both runs"))


def _section(title: str, blocks: list[str], labels: list[str]) -> str:
    runs = "".join(f'<div class="run"><h3>{_e(label)}</h3>{block}</div>'
                   for label, block in zip(labels, blocks, strict=True))
    return f'<h2>{title}</h2><div class="runs">{runs}</div>'


INTRO = ("<p>A recorded scanner stream replayed through the inspection code. <b>Pd</b> "
         "(probability of detection): the share of threat parcels diverted. <b>FAR</b> "
         "(false alarm rate): the share of clear parcels diverted. Both count only the "
         "parcels whose truth the recording carries.</p>")


def render(metrics: dict, runs: list[ReplayRun]) -> str:
    """The whole page for ``metrics`` (``edge.tools.report.report_figures``, JSON-ready)."""
    figures = metrics["runs"]
    labels = [f["model"] if not f["version"] or f["version"] in f["model"]
              else f"{f['model']} ({f['version']})" for f in figures]
    if len(figures) == 2:
        labels = [f"{ab}: {label}" for ab, label in zip("AB", labels, strict=True)]
    sections = [_section(title, [make(f) for f in figures], labels) for title, make in (
        ("Run", header), ("Detection accuracy", detection),
        ("Parcels: detection and false alarms", parcel), ("Confusion between classes", confusion),
        ("Latency", latency))]
    sections.append(_section("Galleries", [gallery(f, run) for f, run in
                                           zip(figures, runs, strict=True)], labels))
    if metrics["comparison"] is not None:
        sections.append("<h2>Comparison: B against A</h2>"
                        + comparison(metrics["comparison"], figures, labels))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Replay report: {_e(metrics['recording'])}</title><style>{STYLE}</style>"
            f"</head><body><h1>Replay report: {_e(metrics['recording'])}</h1>{INTRO}"
            + "".join(sections) + "</body></html>\n")
