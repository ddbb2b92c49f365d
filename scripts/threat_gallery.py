"""How visible are the labelled threats? Per-instance visibility from the simulator's own ground
truth, per-class statistics, benign look-alike counts, and galleries of labelled boxes.

    .venv/bin/python scripts/threat_gallery.py                    # 600 parcels -> docs/gallery/
    .venv/bin/python scripts/threat_gallery.py --parcels 100 --out /tmp/g --verify 5

Parcels come from the default scanner (``EdgeConfig().scanner``, realtime off) along the same
path the training writer takes (``simulator.dataset.write_dataset``: flat field captured
first, each parcel scanned over its span with a 30 mm margin, flat-field corrected, rendered with
``render_colour``), with ``threat_share`` 0.7 as in ``models.data.generate`` so that most parcels
carry a threat. Two hooks record, without drawing a single extra random number, what
``compose_parcel`` builds: every item ``place`` projects (its footprint, family and class) and
the unblurred scene. A threat's own attenuation is its footprint on an empty canvas; the scene
without it is the scene minus that footprint (checked against a second composition of the same
parcel from a copy of the generator in which the threat adds nothing). Both go through the
simulator's blur (on transmission) and belt resampling, so they sit in the pixels of the
training image, under the labelled box.

Measures per labelled threat (H = high-energy log-attenuation, P = the threat's own pixels
inside its box, where its own H > ``OWN_ATT``; all in the training image's pixels):

- fill: |P| / box area (thin diagonal objects leave most of their box empty); centre_fill:
  the same over the middle third of the box;
- share: what the threat adds to H over P / total H over P (threat vs clutter and container);
- dG: mean brightness the threat removes from the image over P, in grey levels of the
  renderer's ``255 exp(-0.45 H)``; vis: share of P darkened by ``VISIBLE_DG`` levels or more;
- cnr: mean threat contribution to H over P / std of the background H (the scene without the
  threat) over the box;
- sat: share of P where the total H exceeds ``SAT_ATT`` (high-energy transmission < 1e-3:
  under 20 of 20,000 photons, rendered darker than 11/255); hidden: the same for the
  background alone (clutter that already stops the beam before the threat adds anything);
- width: the threat's mean width across its long axis (|P| / length) in model-input pixels
  (the runtime scales the parcel height, 768 mm of tunnel, to the model's input side: 448 px
  for the shipped model);
- foreshort: the projected length (long axis of P) over the same item's length lying flat
  (seen end-on, a baton or a pipe bomb is a dark blob whatever its class); edge_on: the same
  for its mean width (a knife or a shuriken seen on its edge is a thin bar);
- crop_cut / crop_target: over simulated training crops (``models.data`` geometry), the share
  that show 25-60 % of the box (in the picture, but dropped as a target) / keep it a target.

- dE: mean colour change the threat makes in the pseudo-colour rendering over P (Euclidean
  distance in 8-bit CIELAB; the hue follows the low/high ratio, so thin steel on an organic
  block turns it green while hardly darkening it); vis_colour: share of P that darkens by
  ``VISIBLE_DG`` or changes colour by ``VISIBLE_DE``.

Not callable (``not_callable``): in the grey rendering, hidden > 0.5, or dG < 15 grey levels,
or vis < 0.5; in the pseudo-colour one, hidden > 0.5, or vis_colour < 0.5, or dG < 15 and
dE < 20. The thresholds are arguments; docs/gallery/README.md shows the tiles they were read
from.
Also written: ``threats.csv`` (one row per labelled threat) and ``tables.md`` (every table).
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import simulator.parcels as parcels_mod  # noqa: E402
import simulator.scanner as sim_mod  # noqa: E402
from edge.capture import capture_flatfield  # noqa: E402
from edge.config import EdgeConfig  # noqa: E402
from edge.detect.verify import candidates  # noqa: E402
from edge.imaging.attenuation import ratio_boundaries  # noqa: E402
from edge.imaging.correct import correct  # noqa: E402
from edge.imaging.render import DARKNESS, render_colour  # noqa: E402
from edge.tools.calibrate import FLOOR  # noqa: E402
from simulator.dataset import MARGIN_MM, clip_boxes  # noqa: E402
from simulator.phantoms import THREAT_CLASSES  # noqa: E402
from simulator.solids import Footprint, project  # noqa: E402

OWN_ATT = 0.05          # a pixel belongs to the threat where its own H exceeds this
SAT_ATT = float(np.log(1000.0))   # total H above this: transmission < 1e-3
VISIBLE_DG = 8.0        # grey levels (of 255) a pixel must darken by to show the threat
VISIBLE_DE = 10.0       # or its colour change (8-bit CIELAB distance) in the pseudo-colour
MODEL_INPUT = 320       # models.data.INPUT: the first training stage's input (crop fates)
RUNTIME_INPUT = 448     # the shipped detector's input side, when no --model is run
HARD = ("knife", "baton", "explosive", "gun_part")
EASY = ("gun", "shuriken", "ammunition", "blade")
# Benign families that share a threat class's silhouette or material (see the module
# docstrings in simulator/phantoms); counted per parcel against the class's frequency.
LOOKALIKES = {
    "knife": ("cutlery", "scissors", "steel_ruler", "screwdriver", "spanner",
              "nail_clippers", "pens"),
    "baton": ("flashlight", "umbrella", "vacuum_flask", "pens", "hair_dryer",
              "screwdriver", "aerosol", "candle"),
    "explosive": ("food", "candle", "book", "cosmetics", "power_bank", "clock",
                  "remote_control", "phone_charger", "cable", "vacuum_flask"),
    "gun_part": ("spanner", "adjustable_wrench", "pliers", "hammer", "padlock",
                 "stapler", "hardware", "power_bank", "tape_measure", "toy_gun", "spanner_set",
                 "belt", "bit_set"),
}
LOOKALIKE_SHEET = (("baton", ("flashlight", "umbrella", "vacuum_flask", "hair_dryer")),
                   ("explosive", ("food", "candle", "book", "cosmetics")),
                   ("knife", ("scissors", "steel_ruler", "cutlery", "screwdriver")),
                   ("gun_part", ("spanner", "power_bank", "stapler", "padlock")))
RED = (0, 0, 230)
LOOK_TILE = 96


# --- recording what compose_parcel builds --------------------------------------------------

class Recorder:
    """Hooks ``place`` and ``compose_parcel``: per parcel (in composition order, which is the
    parcel sequence), the unblurred scene and every placed item. Draws no random numbers."""

    def __init__(self, verify: int):
        self.parcels: list[dict] = []
        self.current: dict | None = None
        self.verify_left = verify
        self.checks: list[str] = []
        self._silent = False
        self._orig_place = parcels_mod.place
        self._orig_compose = sim_mod.compose_parcel
        parcels_mod.place = self._place
        sim_mod.compose_parcel = self._compose

    def _place(self, item, box, rng, geo, stretch=1.0, tries=8):
        fp = self._orig_place(item, box, rng, geo, stretch, tries)
        if self._silent:
            # Replay for the check: the threat adds nothing (same pixels, zero attenuation).
            if fp is not None and item.label is not None:
                return Footprint(np.zeros_like(fp.att_lo), np.zeros_like(fp.att_hi),
                                 fp.x0, fp.y0)
            return fp
        self.current["items"].append((item.label, item.meta.get("family", item.name), fp))
        if item.label is not None and fp is not None:
            self.current["threat_item"][id(fp)] = item
        return fp

    def _compose(self, rng, geo, threat, exclude=()):
        replay = copy.deepcopy(rng) if threat and self.verify_left > 0 else None
        self.current = {"items": [], "threat_item": {}}
        scene = self._orig_compose(rng, geo, threat, exclude)
        self.current["raw"] = (scene.att_lo, scene.att_hi)
        self.parcels.append(self.current)
        threats = [fp for label, _, fp in self.current["items"] if label and fp is not None]
        if replay is not None and threats:
            self.verify_left -= 1
            self._silent = True
            try:
                other = self._orig_compose(replay, geo, threat, exclude)
            finally:
                self._silent = False
            canvas = parcels_mod.Canvas(*scene.att_hi.shape)
            for fp in threats:
                canvas.add(fp)
            own = canvas.att_hi > 0
            for name, full, without, thr in (("hi", scene.att_hi, other.att_hi, canvas.att_hi),
                                             ("lo", scene.att_lo, other.att_lo, canvas.att_lo)):
                outside = float(np.abs(full - without)[~own].max(initial=0))
                inside = float(np.abs(full - thr - without)[own].max(initial=0))
                self.checks.append(f"parcel {len(self.parcels)} {name}: scene vs scene composed "
                                   f"without the threat: max |diff| outside the threat "
                                   f"{outside:.2e}, scene - threat vs it inside {inside:.2e}")
        return scene

    def release(self, seq: int) -> None:
        self.parcels[seq - 1].pop("raw", None)


def blur_pair(att_lo: np.ndarray, att_hi: np.ndarray, sigma: float):
    """The simulator's blur (``simulator.scanner.blurred``): on transmission."""
    out = []
    for att in (att_lo, att_hi):
        if sigma <= 0:
            out.append(att)
            continue
        trans = cv2.GaussianBlur(np.exp(-att), (0, 0), sigma)
        out.append(-np.log(np.clip(trans, 1e-30, 1.0)))
    return out


def resample(scanner, placed, first: int, count: int, att: np.ndarray) -> np.ndarray:
    """A scene map [n_pixels, width] at the belt positions of lines [first, first + count), as
    ``SimScanner.ideal_lines`` samples it; returns [n_pixels, count] (training image layout)."""
    pitch = scanner.config.pitch_mm
    width = att.shape[1]
    s = scanner.belt_mm(np.arange(first, first + count))
    col = (s - placed.start_mm) / pitch - 0.5
    inside = (col >= 0) & (col <= width - 1)
    c = col[inside]
    c0 = np.minimum(np.floor(c).astype(np.int64), width - 2)
    f = (c - c0).astype(np.float32)[:, None]
    out = np.zeros((count, att.shape[0]), np.float32)
    out[inside] = att[:, c0].T * (1 - f) + att[:, c0 + 1].T * f
    return np.ascontiguousarray(out.T)


def scene_to_lines(scanner, placed, first: int, count: int, x: np.ndarray) -> np.ndarray:
    """Scene x (px) -> image x (lines from ``first``), as ``SimScanner.truth`` maps boxes."""
    s = scanner.belt_mm(np.arange(first, first + count))
    col = (s - placed.start_mm) / scanner.config.pitch_mm
    return np.interp(x, col, np.arange(count, dtype=np.float64))


# --- measures --------------------------------------------------------------------------------

def colour_difference(box, total, total_lo, contrib, contrib_lo, own, boundaries) -> np.ndarray:
    """Per-pixel colour difference (Euclidean, 8-bit CIELAB) between the noise-free training
    rendering with and without the threat, over the box's pixels ``own`` (the renderer's hue
    follows the low/high ratio: a thin steel blade on an organic block turns it green while
    hardly darkening it)."""
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    pad = 3   # the renderer smooths hue over 3 x 3
    h, w = total.shape
    ya, yb, xa, xb = max(y0 - pad, 0), min(y1 + pad, h), max(x0 - pad, 0), min(x1 + pad, w)
    region = np.s_[ya:yb, xa:xb]
    with_t = render_colour(np.ascontiguousarray(total[region]),
                           np.ascontiguousarray(total_lo[region]), boundaries)
    without = render_colour(np.ascontiguousarray(total[region] - contrib[region]),
                            np.ascontiguousarray(total_lo[region] - contrib_lo[region]),
                            boundaries)
    lab = [cv2.cvtColor(im, cv2.COLOR_BGR2LAB).astype(np.float32) for im in (with_t, without)]
    diff = np.sqrt(((lab[0] - lab[1]) ** 2).sum(-1))
    return diff[y0 - ya:y1 - ya, x0 - xa:x1 - xa][own]


def measures(box, alone_hi, alone_lo, contrib, total, height: int, total_lo=None,
             contrib_lo=None, boundaries=None, input_side: int = RUNTIME_INPUT) -> dict:
    """``input_side``: the detector's input side, which the parcel height is scaled to."""
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    win = np.s_[y0:y1, x0:x1]
    a, c, t = alone_hi[win], contrib[win], total[win]
    own = a > OWN_ATT
    n = int(own.sum())
    area = max(a.size, 1)
    bg = t - c
    out = {"box_w": x1 - x0, "box_h": y1 - y0, "own_px": n, "fill": n / area}
    hh, ww = own.shape
    centre = own[hh // 3:max(2 * hh // 3, hh // 3 + 1), ww // 3:max(2 * ww // 3, ww // 3 + 1)]
    out["centre_fill"] = float(centre.mean()) if centre.size else 0.0
    scale = input_side / height
    out["box_model"] = max(x1 - x0, y1 - y0) * scale
    if n == 0:
        out.update(share=0.0, dG=0.0, vis=0.0, dE=0.0, vis_colour=0.0, cnr=0.0, sat=0.0,
                   hidden=0.0, width_model=0.0, R=float("nan"),
                   bg_att=float(np.median(t)) if t.size else 0.0)
        return out
    out["share"] = float(np.clip(c[own].sum() / max(t[own].sum(), 1e-6), 0, 1))
    grey = 255 * (np.exp(-DARKNESS * bg[own]) - np.exp(-DARKNESS * t[own]))
    out["dG"] = float(grey.mean())
    out["vis"] = float((grey >= VISIBLE_DG).mean())
    if total_lo is not None:
        de = colour_difference(box, total, total_lo, contrib, contrib_lo, own, boundaries)
        out["dE"] = float(de.mean())
        out["vis_colour"] = float(((grey >= VISIBLE_DG) | (de >= VISIBLE_DE)).mean())
    out["cnr"] = float(c[own].mean() / max(float(bg.std()), 1e-3))
    out["sat"] = float((t[own] > SAT_ATT).mean())
    out["hidden"] = float((bg[own] > SAT_ATT).mean())
    out["bg_att"] = float(np.median(bg[own]))
    out["R"] = float(alone_lo[win][own].sum() / max(a[own].sum(), 1e-6))
    ys, xs = np.nonzero(own)
    pts = np.stack([xs, ys], 1).astype(np.float64)
    if n >= 3:
        ev = np.linalg.eigvalsh(np.cov(pts.T))
        length = max(np.sqrt(12 * max(ev[-1], 0.0)), 1.0)  # a bar's length from its variance
    else:
        length = 1.0
    out["width_model"] = n / length * scale
    return out


def not_callable(m: dict, args, grey: bool) -> str:
    """'' when a screener could call it from the image, else why not: 'hidden' (most of it
    lies behind clutter that alone already stops the beam) or 'buried' (it changes the image
    too little). In the grey rendering only darkening counts (dG, vis); in the pseudo-colour
    one a colour change counts too (dE, vis_colour)."""
    if m["own_px"] == 0 or m["hidden"] > args.max_hidden:
        return "hidden"
    if grey and (m["dG"] < args.min_dg or m["vis"] < args.min_vis):
        return "buried"
    if not grey and (m["vis_colour"] < args.min_vis
                     or (m["dG"] < args.min_dg and m["dE"] < args.min_de)):
        return "buried"
    return ""


def shipped_threshold() -> float:
    """The lowest threshold of the shipped table: where the live loop starts to divert."""
    from edge.decide import read_thresholds
    _, table = read_thresholds(ROOT / "calibration" / "thresholds.json", THREAT_CLASSES)
    return min(table.values())


def detection_scores(dets, box, label: str, detector) -> dict:
    """Best score of a detection of the right class with IoU >= 0.5 (0 when none), the best of
    any class, and that box's class."""
    if dets is None:
        return {"det_score": float("nan"), "det_any": float("nan"), "det_as": ""}
    from edge.tools.metrics import box_iou
    iou = box_iou(dets.xyxy, np.asarray(box)[None])[:, 0]
    near = iou >= 0.5
    classes = detector.info.classes
    right = near & (dets.class_id == classes.index(label))
    best_any = int(np.argmax(np.where(near, dets.score, -1))) if near.any() else -1
    return {"det_score": float(dets.score[right].max()) if right.any() else 0.0,
            "det_any": float(dets.score[best_any]) if best_any >= 0 else 0.0,
            "det_as": classes[int(dets.class_id[best_any])] if best_any >= 0 else ""}


def attribute_false_alarms(dets, scanner, placed, first: int, count: int, record: dict,
                           classes, width: int, height: int,
                           at: float) -> list[tuple[str, str, float]]:
    """Detections scoring ``at`` or more that overlap no labelled threat of the image (IoU
    < 0.1 with every one, neighbours' included), each named after the benign item of this
    parcel it fits best (IoU >= 0.3 with the item's own box), else 'clutter'."""
    from edge.tools.metrics import box_iou
    strong = dets.score >= at
    if not strong.any():
        return []
    truth = scanner.truth(first, count)
    threat_boxes = np.concatenate([t.boxes for t in truth]) if truth else np.zeros((0, 4))
    xyxy, cls, score = dets.xyxy[strong], dets.class_id[strong], dets.score[strong]
    free = box_iou(xyxy, threat_boxes).max(1, initial=0.0) < 0.1
    items, fams = [], []
    for lab, fam, fp in record["items"]:
        if lab is None and fp is not None and fp.att_hi.max() > OWN_ATT:
            b = fp.box.astype(np.float64)
            b[[0, 2]] = scene_to_lines(scanner, placed, first, count, b[[0, 2]])
            items.append(np.clip(b, 0, [width, height, width, height]))
            fams.append(fam)
    iou = box_iou(xyxy[free], np.array(items).reshape(-1, 4))
    out = []
    for k, (c, sc) in enumerate(zip(cls[free], score[free], strict=True)):
        j = int(np.argmax(iou[k])) if iou.shape[1] else -1
        name = fams[j] if j >= 0 and iou[k, j] >= 0.3 else "clutter"
        out.append((classes[int(c)], name, float(sc)))
    return out


def crop_fates(boxes: np.ndarray, height: int, width: int, rng, samples: int) -> np.ndarray:
    """For each box, over ``samples`` training crops drawn as ``models.data.TrainSet`` draws
    them (image held at 1.25 x the input height, 256 px crops at zoom 0.55-1.8 or, for the
    half of samples that are mosaics, 128 px pieces at zoom 0.55-1.2; 70 % placed around a
    box): the share of crops that show 25-60 % of its box (the object is in the picture but
    ``crop`` drops it as a target: it is taught as background) and that keep it as a target
    (>= 60 %). Returns float [N, 2]."""
    from models import data
    held = round(data.HELD_OVER_INPUT * MODEL_INPUT)
    f = min(1.0, held / height)
    h, w = (round(height * f), round(width * f)) if f < 1 else (height, width)
    base = MODEL_INPUT / h
    b0 = boxes.astype(np.float64) * f
    area = np.prod(np.maximum(b0[:, 2:] - b0[:, :2], 1e-3), 1)
    out = np.zeros((len(boxes), 2))
    crop_side = 256   # models.train --crop default
    for k in range(samples):
        size, zoom = (crop_side, (0.55, 1.8)) if k % 2 == 0 else (crop_side // 2, (0.55, 1.2))
        scale = base * float(np.exp(rng.uniform(*np.log(zoom))))
        sw, sh = max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)
        if rng.random() < data.FOCUS:
            bx = b0[int(rng.integers(len(b0)))] * scale
            x0, y0 = data._start(rng, sw, size, bx[0], bx[2]), data._start(rng, sh, size, bx[1],
                                                                            bx[3])
        else:
            x0, y0 = data._start(rng, sw, size), data._start(rng, sh, size)
        b = b0 * scale - np.array([x0, y0, x0, y0])
        c = b.copy()
        c[:, [0, 2]] = c[:, [0, 2]].clip(0, size)
        c[:, [1, 3]] = c[:, [1, 3]].clip(0, size)
        seen = np.prod(np.maximum(c[:, 2:] - c[:, :2], 0), 1) / (area * scale * scale)
        out[:, 0] += (seen >= 0.25) & (seen < data.MIN_VISIBLE)
        out[:, 1] += seen >= data.MIN_VISIBLE
    return out / samples


def footprint_stats(fp: Footprint, pitch: float) -> dict:
    """An item's own attenuation alone (unblurred, scene pixels): size and material."""
    own = fp.att_hi > OWN_ATT
    n = int(own.sum())
    if n == 0:
        return {"own_px": 0, "mean_att": 0.0, "R": float("nan"), "long_mm": 0.0,
                "width_mm": 0.0, "elong": float("nan")}
    ys, xs = np.nonzero(own)
    ev = np.linalg.eigvalsh(np.cov(np.stack([xs, ys]).astype(np.float64))) if n >= 3 else \
        np.array([0.25, 0.25])
    length = np.sqrt(12 * max(ev[-1], 0.0)) + 1
    width = np.sqrt(12 * max(ev[0], 0.0)) + 1
    return {"own_px": n, "mean_att": float(fp.att_hi[own].mean()),
            "width_mm": float(n / length * pitch),
            "R": float(fp.att_lo[own].sum() / fp.att_hi[own].sum()),
            "long_mm": float(length * pitch), "elong": float(length / width)}


# --- tiles -----------------------------------------------------------------------------------

def crop_square(img: np.ndarray, box, tile: int, context: float = 0.35, min_margin: int = 25):
    """Square crop around ``box`` with context, white padded, resized to ``tile``; returns the
    tile and the box in tile pixels."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    side = side + 2 * max(min_margin, context * side)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sx, sy = int(round(cx - side / 2)), int(round(cy - side / 2))
    side = int(round(side))
    h, w = img.shape[:2]
    canvas = np.full((side, side, 3), 255, np.uint8)
    ax, ay = max(sx, 0), max(sy, 0)
    bx, by = min(sx + side, w), min(sy + side, h)
    if bx > ax and by > ay:
        canvas[ay - sy:by - sy, ax - sx:bx - sx] = img[ay:by, ax:bx]
    f = tile / side
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    out = cv2.resize(canvas, (tile, tile), interpolation=interp)
    tb = ((x0 - sx) * f, (y0 - sy) * f, (x1 - sx) * f, (y1 - sy) * f)
    return out, tb


def draw_box(img, tb, colour=RED):
    x0, y0, x1, y1 = (int(round(v)) for v in tb)
    cv2.rectangle(img, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), colour, 1)


def text(img, s, org, colour=(0, 0, 0), scale=0.34):
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def pair_tile(inst: dict, tile: int) -> np.ndarray:
    scene, alone = inst["tile_scene"].copy(), inst["tile_alone"].copy()
    for im in (scene, alone):
        draw_box(im, inst["tile_box"])
    gap = np.full((tile, 3, 3), 255, np.uint8)
    body = np.hstack([scene, gap, alone])
    cap = np.full((30, body.shape[1], 3), 255, np.uint8)
    m = inst
    text(cap, f"{m['cls']}: {m['family'][:20]} {m['box_w']}x{m['box_h']}px "
         f"({m['box_model']:.0f} in)", (2, 11), scale=0.32)
    line2 = (f"fill {m['fill']:.2f} share {m['share']:.2f} dG {m['dG']:.0f} dE {m['dE']:.0f}"
             f" cnr {m['cnr']:.1f}")
    text(cap, line2, (2, 25))
    flag = ("colour+grey: " + m["uncallable"]) if m["uncallable"] else \
        ("grey: " + m["uncallable_grey"]) if m["uncallable_grey"] else ""
    if flag:   # over the threat-alone panel's top left, which is mostly air
        text(body, flag, (tile + 6, 11), RED, scale=0.34)
    out = np.vstack([body, cap])
    cv2.rectangle(out, (0, 0), (out.shape[1] - 1, out.shape[0] - 1), (200, 200, 200), 1)
    return out


def sheet(tiles: list[np.ndarray], per_row: int, title: list[str]) -> np.ndarray:
    blank = np.full_like(tiles[0], 255)
    tiles = tiles + [blank] * (-len(tiles) % per_row)
    rows = [np.hstack([np.pad(t, ((3, 3), (3, 3), (0, 0)), constant_values=255)
                       for t in tiles[i:i + per_row]]) for i in range(0, len(tiles), per_row)]
    grid = np.vstack(rows)
    head = np.full((14 * len(title) + 6, grid.shape[1], 3), 255, np.uint8)
    for k, line in enumerate(title):
        text(head, line, (4, 14 + 14 * k), scale=0.42)
    return np.vstack([head, grid])


def write_png(path: Path, image: np.ndarray, limit_kb: int = 600) -> None:
    """PNG under ``limit_kb``: posterise (fewer levels compress far better) until it fits."""
    for levels in (256, 64, 32, 16):
        if levels < 256:
            step = 256 // levels
            img = (image // step * step + step // 2).astype(np.uint8)
        else:
            img = image
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if ok and len(buf) <= limit_kb * 1024:
            break
    path.write_bytes(buf.tobytes())
    print(f"  {path} {image.shape[1]}x{image.shape[0]} {len(buf) / 1024:.0f} KB"
          f"{'' if levels == 256 else f' ({levels} levels per channel)'}")


# --- main ------------------------------------------------------------------------------------

def quartiles(values) -> str:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return "-"
    q1, q2, q3 = np.percentile(v, [25, 50, 75])
    fmt = "{:.2f}" if q3 < 10 else "{:.0f}"
    return f"{fmt.format(q2)} ({fmt.format(q1)}-{fmt.format(q3)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parcels", type=int, default=600)
    parser.add_argument("--seed", type=int, default=None, help="scanner seed (default: the "
                        "config's)")
    parser.add_argument("--threat-share", type=float, default=0.7,
                        help="share of parcels with a threat (models.data.generate uses 0.7)")
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"))
    parser.add_argument("--tile", type=int, default=150, help="side of each half tile, px")
    parser.add_argument("--per-sheet", type=int, default=24)
    parser.add_argument("--verify", type=int, default=3,
                        help="threat parcels checked against a composition without the threat "
                             "and against SimScanner.scan on a twin scanner")
    parser.add_argument("--min-dg", type=float, default=15.0,
                        help="not callable below this mean contrast (grey levels of 255)")
    parser.add_argument("--min-vis", type=float, default=0.5,
                        help="not callable when less of the threat than this darkens the image "
                             f"by {VISIBLE_DG:.0f} grey levels or more")
    parser.add_argument("--min-de", type=float, default=20.0,
                        help="pseudo-colour: not callable when dG is under --min-dg and the "
                             "mean colour change (8-bit CIELAB) is under this too")
    parser.add_argument("--max-hidden", type=float, default=0.5,
                        help="not callable when more of the threat than this lies behind "
                             "clutter that alone leaves under 1e-3 of the beam")
    parser.add_argument("--model", default="models/lite0/lite0.int8.onnx",
                        help="detector run on each pseudo-colour image to relate misses to the "
                             "measures ('' to skip)")
    parser.add_argument("--verifier", default="models/lite0/verifier.int8.onnx",
                        help="second look rescoring the detector's boxes ('' for the detector "
                             "alone)")
    parser.add_argument("--score", type=float, default=None,
                        help="score a detection must reach to count as found or as a false "
                             "alarm (default: the lowest threshold of "
                             "calibration/thresholds.json, where the live loop diverts)")
    parser.add_argument("--crop-samples", type=int, default=400,
                        help="training crops simulated per parcel image for the crop check")
    args = parser.parse_args()
    t_start = time.time()

    config = EdgeConfig()
    update = {"realtime": False, "threat_share": args.threat_share}
    if args.seed is not None:
        update["seed"] = args.seed
    scfg = config.scanner.model_copy(update=update)
    rec = Recorder(args.verify)
    scanner = sim_mod.SimScanner(scfg)
    flat = capture_flatfield(scanner)
    boundaries = ratio_boundaries(scfg.low_kev, scfg.high_kev)
    kept_raw: list[tuple] = []   # first parcels' raw counts, for the twin-scanner check
    detector = verifier = None
    if args.model and Path(args.model).is_file():
        from edge.detect.model import Detector
        detector = Detector(args.model, threads=2)
        if args.verifier:
            from edge.detect.verify import Verifier
            verifier = Verifier(args.verifier, 2)
    at = args.score if args.score is not None else shipped_threshold()
    looked = " + ".join(str(p) for p in (args.model, args.verifier) if p) or "none"
    input_side = detector.info.input_size[0] if detector is not None else RUNTIME_INPUT

    instances: list[dict] = []
    benign: list[dict] = []
    family_counts: Counter = Counter()
    look_tiles: dict[str, list] = defaultdict(list)
    unlabelled = Counter()   # threats placed but under VISIBLE_ATT / not placed at all
    crop_rng = np.random.default_rng([scfg.seed, 99])
    false_alarms: list[tuple[str, str, float]] = []
    parcels = scanner.parcels()
    for n in range(args.parcels):
        placed = next(parcels)
        first, count = scanner.span_of(placed, MARGIN_MM)
        ideal_lo, ideal_hi = scanner.ideal_lines(first, count)
        raw_hi, raw_lo = scanner.detector.expose(ideal_lo, ideal_hi, scanner._noise_rng)
        hi, lo = (np.ascontiguousarray(a.T) for a in correct(raw_hi, raw_lo, flat))
        height, width = hi.shape
        colour = render_colour(hi, lo, boundaries)
        dets = None
        if detector is not None:
            dets = candidates(detector.raw, detector.info, colour, verifier, FLOOR)
        total = np.ascontiguousarray(ideal_hi.T)
        record = rec.parcels[placed.seq - 1]
        raw_lo_scene, raw_hi_scene = record["raw"]
        if len(kept_raw) < args.verify:
            blur_same = all(np.array_equal(a, b) for a, b in zip(
                blur_pair(raw_lo_scene, raw_hi_scene, scfg.blur_px),
                (placed.scene.att_lo, placed.scene.att_hi), strict=True))
            kept_raw.append((first, count, raw_hi, raw_lo, placed.scene.boxes.copy(),
                             blur_same))
        truth = [t for t in scanner.truth(first, count) if t.parcel_id == placed.id]
        boxes = truth[0].boxes if truth else np.zeros((0, 4), np.float32)
        boxes, kept = clip_boxes(boxes.astype(np.float32), width, height)
        threats = [(lab, fam, fp) for lab, fam, fp in record["items"] if lab is not None]
        labelled = []
        for lab, fam, fp in threats:
            if fp is None:
                unlabelled[(lab, "not placed")] += 1
            elif fp.att_hi.max() >= parcels_mod.VISIBLE_ATT:
                labelled.append((lab, fam, fp))
            else:
                unlabelled[(lab, "under VISIBLE_ATT")] += 1
        assert [lab for lab, _, _ in labelled] == list(placed.scene.labels), \
            (placed.id, labelled, placed.scene.labels)
        for lab, fam, fp in record["items"]:
            if lab is None and fp is not None:
                family_counts[fam] += 1
                stats = footprint_stats(fp, scfg.pitch_mm)
                stats["family"] = fam
                benign.append(stats)
        for lab, _, fp in threats:
            if fp is not None:
                family_counts["threat:" + lab] += 1
        # Benign look-alike thumbnails (their own attenuation, noise-free) for one sheet.
        wanted = {f for _, fams in LOOKALIKE_SHEET for f in fams}
        for lab, fam, fp in record["items"]:
            if lab is None and fp is not None and fam in wanted and len(look_tiles[fam]) < 3:
                if fp.att_hi.max() < 0.1:
                    continue
                img = render_colour(fp.att_hi, fp.att_lo, boundaries)
                ys, xs = np.nonzero(fp.att_hi > 0.01)
                t, tb = crop_square(img, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1),
                                    LOOK_TILE, 0.1, 6)
                look_tiles[fam].append((t, footprint_stats(fp, scfg.pitch_mm)))
        if labelled:
            full_lo, full_hi = raw_lo_scene, raw_hi_scene
            blurred_full = (placed.scene.att_lo, placed.scene.att_hi)
            rs_full_hi = resample(scanner, placed, first, count, blurred_full[1])
            rs_full_lo = resample(scanner, placed, first, count, blurred_full[0])
            total_lo = np.ascontiguousarray(ideal_lo.T)
            fates = crop_fates(boxes[kept], height, width, crop_rng, args.crop_samples)
            fate_of = dict(zip(np.nonzero(kept)[0].tolist(), fates, strict=True))
            for k, (lab, fam, fp) in enumerate(labelled):
                if not kept[k]:
                    continue
                own = parcels_mod.Canvas(*full_hi.shape)
                own.add(fp)
                alone_lo, alone_hi = blur_pair(own.att_lo, own.att_hi, scfg.blur_px)
                wo_lo, wo_hi = blur_pair(full_lo - own.att_lo, full_hi - own.att_hi,
                                         scfg.blur_px)
                a_hi = resample(scanner, placed, first, count, alone_hi)
                a_lo = resample(scanner, placed, first, count, alone_lo)
                contrib = rs_full_hi - resample(scanner, placed, first, count, wo_hi)
                contrib_lo = rs_full_lo - resample(scanner, placed, first, count, wo_lo)
                box = boxes[k]
                m = measures(box, a_hi, a_lo, contrib, total, height, total_lo, contrib_lo,
                             boundaries, input_side)
                own_stats = footprint_stats(fp, scfg.pitch_mm)
                # Foreshortening: its projected length against the same item lying flat.
                lying = project(record["threat_item"][id(fp)], np.eye(3), (0.0, 0.0),
                               scfg.pitch_mm, (scfg.low_kev, scfg.high_kev))
                flat_stats = footprint_stats(lying, scfg.pitch_mm)
                m["foreshort"] = own_stats["long_mm"] / max(flat_stats["long_mm"], 1e-6)
                m["edge_on"] = own_stats["width_mm"] / max(flat_stats["width_mm"], 1e-6)
                m["variant"] = record["threat_item"][id(fp)].name
                m.update(detection_scores(dets, box, lab, detector))
                m.update({f"own_{k}": v for k, v in own_stats.items() if k != "own_px"})
                m.update(cls=lab, family=fam, parcel=placed.id, kind=placed.scene.kind,
                         depth_mm=placed.scene.size_mm[2], n_items=len(record["items"]),
                         box=[float(v) for v in box])
                m["uncallable"] = not_callable(m, args, grey=False)
                m["uncallable_grey"] = not_callable(m, args, grey=True)
                m["crop_cut"], m["crop_target"] = (float(v) for v in fate_of[k])
                alone_img = render_colour(a_hi, a_lo, boundaries)
                m["tile_scene"], m["tile_box"] = crop_square(colour, box, args.tile)
                m["tile_alone"], _ = crop_square(alone_img, box, args.tile)
                instances.append(m)
        if dets is not None:
            false_alarms += attribute_false_alarms(dets, scanner, placed, first, count, record,
                                                   detector.info.classes, width, height, at)
        rec.release(placed.seq)
        if (n + 1) % 50 == 0:
            print(f"[{n + 1}/{args.parcels}] {len(instances)} labelled threats, "
                  f"{time.time() - t_start:.0f} s", flush=True)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if kept_raw:
        # The training writer's own path (SimScanner.scan) on a fresh scanner without hooks.
        sim_mod.compose_parcel = rec._orig_compose
        parcels_mod.place = rec._orig_place
        twin = sim_mod.SimScanner(scfg)
        capture_flatfield(twin)
        twin_parcels = twin.parcels()
        for first, count, raw_hi, raw_lo, boxes0, blur_same in kept_raw:
            tp = next(twin_parcels)
            tf, tc = twin.span_of(tp, MARGIN_MM)
            block = twin.scan(tf, tc)
            same = (tf, tc) == (first, count) and np.array_equal(block.hi, raw_hi) and \
                np.array_equal(block.lo, raw_lo)
            rec.checks.append(f"parcel {tp.seq}: raw counts identical to SimScanner.scan on a "
                              f"scanner without hooks: {same}; boxes identical: "
                              f"{np.array_equal(tp.scene.boxes, boxes0)}; recorded unblurred "
                              f"scene, blurred as the simulator does, == the placed scene: "
                              f"{blur_same}")
    print("\nchecks:")
    for line in rec.checks:
        print("  " + line)

    # --- per-instance CSV ----------------------------------------------------------------
    cols = ["parcel", "cls", "family", "variant", "kind", "depth_mm", "n_items", "box_w", "box_h",
            "box_model", "own_px", "fill", "share", "dG", "vis", "dE", "vis_colour", "cnr",
            "sat", "hidden",
            "bg_att", "R", "width_model", "centre_fill", "own_long_mm", "own_width_mm",
            "own_mean_att", "own_elong", "foreshort", "edge_on", "crop_cut", "crop_target",
            "uncallable",
            "uncallable_grey", "det_score", "det_any", "det_as"]
    with open(out / "threats.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for m in instances:
            w.writerow([round(m[c], 4) if isinstance(m[c], float) else m[c] for c in cols])

    # --- per-class table -------------------------------------------------------------------
    by_cls = defaultdict(list)
    for m in instances:
        by_cls[m["cls"]].append(m)
    lines = ["| class | n | box side (model px) | fill | share | dG (grey levels) | vis | dE | "
             "cnr | sat | hidden | width (model px) | not callable: colour / grey | "
             "hidden / buried (grey) | in crop, not a target | a target |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in THREAT_CLASSES:
        ms = by_cls.get(c, [])
        if not ms:
            continue
        bad = Counter(m["uncallable_grey"] for m in ms if m["uncallable_grey"])
        n_col = sum(bool(m["uncallable"]) for m in ms)
        lines.append(
            f"| {c} | {len(ms)} | {quartiles([m['box_model'] for m in ms])} | "
            f"{quartiles([m['fill'] for m in ms])} | {quartiles([m['share'] for m in ms])} | "
            f"{quartiles([m['dG'] for m in ms])} | {quartiles([m['vis'] for m in ms])} | "
            f"{quartiles([m['dE'] for m in ms])} | {quartiles([m['cnr'] for m in ms])} | "
            f"{quartiles([m['sat'] for m in ms])} | "
            f"{quartiles([m['hidden'] for m in ms])} | "
            f"{quartiles([m['width_model'] for m in ms])} | "
            f"{n_col / len(ms):.0%} / {sum(bad.values()) / len(ms):.0%} | "
            f"{bad['hidden']} / {bad['buried']} | "
            f"{np.mean([m['crop_cut'] for m in ms]):.0%} | "
            f"{np.mean([m['crop_target'] for m in ms]):.0%} |")
    table = "\n".join(lines)
    print("\nmedian (quartiles) per class:\n" + table)

    # shares of simple conditions, per class
    conditions = (("fill < 0.15", lambda m: m["fill"] < 0.15),
                  ("fill < 0.25", lambda m: m["fill"] < 0.25),
                  ("share < 0.2", lambda m: m["share"] < 0.2),
                  ("sat > 0.5", lambda m: m["sat"] > 0.5),
                  ("hidden > 0.5", lambda m: m["hidden"] > 0.5),
                  ("dG < 15", lambda m: m["dG"] < 15),
                  ("vis < 0.5", lambda m: m["vis"] < 0.5),
                  ("cnr < 1", lambda m: m["cnr"] < 1),
                  ("width < 3 model px", lambda m: m["width_model"] < 3),
                  ("centre_fill < 0.1", lambda m: m["centre_fill"] < 0.1),
                  ("foreshort < 0.5 (end-on)", lambda m: m["foreshort"] < 0.5),
                  ("edge_on < 0.4 (plate on edge)", lambda m: m["edge_on"] < 0.4))
    cond_lines = ["| class | n | " + " | ".join(name for name, _ in conditions) + " |",
                  "|---|---|" + "---|" * len(conditions)]
    for c in THREAT_CLASSES:
        ms = by_cls.get(c, [])
        if ms:
            cond_lines.append(f"| {c} | {len(ms)} | " + " | ".join(
                f"{np.mean([pred(m) for m in ms]):.0%}" for _, pred in conditions) + " |")
    cond_table = "\n".join(cond_lines)
    print("\nshare of instances meeting each condition:\n" + cond_table)

    # how the not-callable share moves with the thresholds
    def grey_bad(m, dg, vis, sh):
        return m["hidden"] > args.max_hidden or m["dG"] < dg or m["vis"] < vis or m["share"] < sh

    def colour_bad(m, de):
        return (m["hidden"] > args.max_hidden or m["vis_colour"] < args.min_vis
                or (m["dG"] < args.min_dg and m["dE"] < de))

    variants = [(f"grey: dG < {dg}, vis < {vis}" + (f", share < {sh}" if sh else ""),
                 lambda m, dg=dg, vis=vis, sh=sh: grey_bad(m, dg, vis, sh))
                for dg, vis, sh in ((10, 0.25, 0.0), (15, 0.5, 0.0), (20, 0.5, 0.0),
                                    (10, 0.25, 0.2), (15, 0.5, 0.15))]
    variants += [(f"colour: dG < {args.min_dg:.0f} and dE < {de}, or vis_colour < "
                  f"{args.min_vis}", lambda m, de=de: colour_bad(m, de)) for de in (20, 30, 40)]
    sens_lines = ["| rule (and always hidden > " + f"{args.max_hidden}) | "
                  + " | ".join(THREAT_CLASSES) + " |",
                  "|---|" + "---|" * len(THREAT_CLASSES)]
    for name, pred in variants:
        cells = [f"{sum(pred(m) for m in by_cls.get(c, []))}/{len(by_cls.get(c, []))}"
                 for c in THREAT_CLASSES]
        sens_lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sens_table = "\n".join(sens_lines)
    print("\nnot callable under other thresholds:\n" + sens_table)

    # detector found it (right class, IoU >= 0.5, score >= at) against the measures
    det_table = ""
    if detector is not None:
        splits = (("all", lambda m: True),
                  ("dG < 50", lambda m: m["dG"] < 50), ("dG >= 50", lambda m: m["dG"] >= 50),
                  ("fill < 0.25", lambda m: m["fill"] < 0.25),
                  ("fill >= 0.25", lambda m: m["fill"] >= 0.25),
                  ("end-on", lambda m: m["foreshort"] < 0.5),
                  ("callable, fill >= 0.25, not end-on",
                   lambda m: not m["uncallable"] and m["fill"] >= 0.25 and m["foreshort"] >= 0.5))
        det_lines = ["| class | " + " | ".join(n for n, _ in splits) + " | any class | "
                     "taken for |", "|---|" + "---|" * (len(splits) + 2)]
        for c in THREAT_CLASSES:
            ms = by_cls.get(c, [])
            if not ms:
                continue
            cells = []
            for _, pred in splits:
                sub = [m for m in ms if pred(m)]
                cells.append(f"{np.mean([m['det_score'] >= at for m in sub]):.0%} "
                             f"({len(sub)})" if sub else "-")
            wrong = Counter(m["det_as"] for m in ms if m["det_any"] >= at
                            and m["det_score"] < at)
            det_lines.append(f"| {c} | " + " | ".join(cells) + " | "
                             f"{np.mean([m['det_any'] >= at for m in ms]):.0%} | "
                             f"{', '.join(f'{k} {v}' for k, v in wrong.most_common(3)) or '-'} |")
        fa_lines = [f"| detected as | true (score >= {at:.4g}) | false alarms | per 100 parcels | "
                    "on a benign item | their families (top 6) |", "|---|---|---|---|---|---|"]
        for c in THREAT_CLASSES:
            fa = [f for f in false_alarms if f[0] == c]
            tp = sum(m["det_score"] >= at for m in by_cls.get(c, []))
            top = Counter(f[1] for f in fa if f[1] != "clutter").most_common(6)
            on_item = np.mean([f[1] != "clutter" for f in fa]) if fa else 0.0
            fa_lines.append(f"| {c} | {tp} | {len(fa)} | {100 * len(fa) / args.parcels:.0f} | "
                            f"{on_item:.0%} | {', '.join(f'{k} {v}' for k, v in top) or '-'} |")
        det_table = "\n".join(det_lines) + "\n\nFalse alarms:\n\n" + "\n".join(fa_lines)
        print(f"\nfound by {looked} at score {at:.4g} (right class, IoU >= 0.5; in brackets: "
              "instances):\n" + det_table)

    # per family (hard classes)
    fam_lines = ["| class | family | n | fill | share | dG | not callable (colour / grey) |",
                 "|---|---|---|---|---|---|---|"]
    for c in (*HARD, "blade"):
        fams = defaultdict(list)
        for m in by_cls.get(c, []):
            fams[m["family"]].append(m)
        for fam, ms in sorted(fams.items(), key=lambda kv: -len(kv[1])):
            fam_lines.append(f"| {c} | {fam} | {len(ms)} | "
                             f"{np.median([m['fill'] for m in ms]):.2f} | "
                             f"{np.median([m['share'] for m in ms]):.2f} | "
                             f"{np.median([m['dG'] for m in ms]):.0f} | "
                             f"{np.mean([bool(m['uncallable']) for m in ms]):.0%} / "
                             f"{np.mean([bool(m['uncallable_grey']) for m in ms]):.0%} |")
    fam_table = "\n".join(fam_lines)
    print("\nper family:\n" + fam_table)

    # --- look-alikes --------------------------------------------------------------------------
    n_parcels = args.parcels
    look_lines = ["| threat class | labelled per parcel | look-alike families (per parcel) | "
                  "look-alikes per parcel | ratio |", "|---|---|---|---|---|"]
    for c in HARD:
        per = len(by_cls.get(c, [])) / n_parcels
        fams = LOOKALIKES[c]
        each = ", ".join(f"{f} {family_counts[f] / n_parcels:.2f}" for f in fams
                         if family_counts[f])
        tot = sum(family_counts[f] for f in fams) / n_parcels
        look_lines.append(f"| {c} | {per:.3f} | {each} | {tot:.2f} | "
                          f"{tot / max(per, 1e-9):.0f} : 1 |")
    look_table = "\n".join(look_lines)
    print("\nbenign look-alikes:\n" + look_table)

    ben = defaultdict(list)
    for b in benign:
        ben[b["family"]].append(b)
    shape_lines = ["| class | family | n | long side mm | width mm | elongation | mean own H | R |",
                   "|---|---|---|---|---|---|---|---|"]
    rows = defaultdict(list)
    for m in instances:
        rows[(m["cls"], m["family"])].append({k[4:]: m[k] for k in m if k.startswith("own_")
                                              and k != "own_px"})
    for f in sorted({f for fams in LOOKALIKES.values() for f in fams}):
        rows[("benign", f)] = [b for b in ben.get(f, []) if b["own_px"]]
    order = {c: i for i, c in enumerate((*THREAT_CLASSES, "benign"))}
    for (c, f), bs in sorted(rows.items(), key=lambda kv: (order[kv[0][0]], -len(kv[1]))):
        if len(bs) < 2:
            continue
        shape_lines.append(f"| {c} | {f} | {len(bs)} | {quartiles([b['long_mm'] for b in bs])} | "
                           f"{quartiles([b['width_mm'] for b in bs])} | "
                           f"{quartiles([b['elong'] for b in bs])} | "
                           f"{quartiles([b['mean_att'] for b in bs])} | "
                           f"{quartiles([b['R'] for b in bs])} |")
    shape_table = "\n".join(shape_lines)
    print("\nown attenuation alone, per family (threats and look-alikes):\n" + shape_table)

    # Feature envelope: benign items whose own long side, width and mean H lie inside the
    # 10-90 % range of a class's instances and whose material reads as one the class shows
    # (organic / inorganic / metal by R, the palette's own resolution: R of an object seen
    # through clutter is not readable any finer) -- look-alikes found by measurement.
    feats = ("long_mm", "width_mm", "mean_att")
    env_lines = ["| class | long mm / width mm / mean H (10-90 %), material | benign items "
                 "inside per parcel | per labelled instance | top families inside |",
                 "|---|---|---|---|---|"]
    groups = ("organic", "inorganic", "metal")
    bvals = np.array([[b[f] for f in feats] for b in benign if b["own_px"]], np.float64)
    bgrp = np.digitize([b["R"] for b in benign if b["own_px"]], boundaries)
    bfam = [b["family"] for b in benign if b["own_px"]]
    for c in THREAT_CLASSES:
        ms = by_cls.get(c, [])
        if len(ms) < 5:
            continue
        tv = np.array([[m["own_" + f] for f in feats] for m in ms], np.float64)
        lo, hi = np.nanpercentile(tv, 10, axis=0), np.nanpercentile(tv, 90, axis=0)
        tg = np.digitize([m["own_R"] for m in ms], boundaries)
        allowed = [g for g in range(3) if np.mean(tg == g) >= 0.1]
        inside = np.all((bvals >= lo) & (bvals <= hi), axis=1) & np.isin(bgrp, allowed)
        top = Counter(f for f, i in zip(bfam, inside, strict=True) if i).most_common(6)
        env = " / ".join(f"{a:.3g}-{b:.3g}" for a, b in zip(lo, hi, strict=True))
        env += ", " + "+".join(groups[g] for g in allowed)
        env_lines.append(f"| {c} | {env} | {inside.sum() / n_parcels:.2f} | "
                         f"{inside.sum() / len(ms):.1f} | "
                         f"{', '.join(f'{f} {k}' for f, k in top) or '-'} |")
    env_table = "\n".join(env_lines)
    print("\nbenign items inside each class's feature envelope:\n" + env_table)

    miss = ", ".join(f"{lab} {why}: {k}" for (lab, why), k in sorted(unlabelled.items()))
    print(f"\nthreats drawn but not labelled: {miss or 'none'}")

    # --- sheets ------------------------------------------------------------------------------
    print("\nsheets:")
    rng = np.random.default_rng(0)
    for c in HARD:
        ms = sorted(by_cls.get(c, []), key=lambda m: m["share"])
        if not ms:
            continue
        k = min(args.per_sheet, len(ms))
        pick = [ms[int(i)] for i in np.unique(np.round(np.linspace(0, len(ms) - 1, k)))]
        bad = sum(bool(m["uncallable"]) for m in ms)
        title = [f"{c}: {len(pick)} of {len(ms)} labelled instances, evenly spaced in signal "
                 f"share (low -> high); {bad} of {len(ms)} not callable by the rule",
                 "left: training image (pseudo-colour, noisy, as written by the dataset "
                 "writer); right: the threat alone (its own attenuation); red: labelled box"]
        write_png(out / f"{c}.png", sheet([pair_tile(m, args.tile) for m in pick], 4, title))
    ref = []
    for c in EASY:
        ms = by_cls.get(c, [])
        if ms:
            idx = rng.choice(len(ms), size=min(3, len(ms)), replace=False)
            ref += [ms[int(i)] for i in sorted(idx)]
    if ref:
        title = ["reference: 3 random labelled instances each of " + ", ".join(EASY),
                 "left: training image; right: the threat alone; red: labelled box"]
        write_png(out / "reference.png", sheet([pair_tile(m, args.tile) for m in ref], 4,
                                               title))
    low = sorted(instances, key=lambda m: m["share"])[:args.per_sheet]
    if low:
        title = [f"the {len(low)} labelled instances (all classes) with the lowest signal share, "
                 "lowest first; red: not callable by the rule (grey rendering only, or both)",
                 "left: training image; right: the threat alone; red: labelled box"]
        write_png(out / "lowest_share.png", sheet([pair_tile(m, args.tile) for m in low], 4,
                                                  title))
    bad = sorted((m for m in instances if m["uncallable"] or m["uncallable_grey"]),
                 key=lambda m: (not m["uncallable"], m["cls"], m["dG"]))
    if bad:
        title = [f"all {len(bad)} labelled instances not callable in the grey rendering (hidden >"
                 f" {args.max_hidden}, or dG < {args.min_dg:.0f}, or vis < {args.min_vis}); "
                 f"'colour+grey': not in the pseudo-colour either (dE < {args.min_de:.0f} too)"
                 + ("" if len(bad) <= args.per_sheet else f"; first {args.per_sheet} shown"),
                 "left: training image (pseudo-colour); right: the threat alone; red: labelled "
                 "box; dE: mean colour change it makes (8-bit CIELAB)"]
        write_png(out / "not_callable.png", sheet([pair_tile(m, args.tile)
                                                   for m in bad[:args.per_sheet]], 4, title))
    look = []
    for _, fams in LOOKALIKE_SHEET:
        for f in fams:
            for t, st in look_tiles.get(f, [])[:3]:
                t = t.copy()
                cap = np.full((28, t.shape[1], 3), 255, np.uint8)
                text(cap, f"{f[:15]}", (2, 11), scale=0.32)
                text(cap, f"{st['long_mm']:.0f}mm R {st['R']:.2f}", (2, 24), scale=0.32)
                look.append(np.vstack([t, cap]))
    if look:
        title = ["benign look-alikes, each alone (own attenuation, noise-free, scaled to fit), 3 "
                 "per family; rows: like baton, explosive, knife, gun_part",
                 "R = low/high attenuation ratio (organic < 1.5 < inorganic < 2.45 < metal); "
                 "the threats themselves are the right halves of the class sheets"]
        write_png(out / "lookalikes.png", sheet(look, 12, title))

    (out / "tables.md").write_text(
        f"<!-- written by scripts/threat_gallery.py --parcels {args.parcels} -->\n\n"
        f"## Per class: median (quartiles)\n\n{table}\n\n## Conditions\n\n{cond_table}\n\n"
        f"## Not callable under other thresholds\n\n{sens_table}\n\n"
        f"## Found by the detector ({looked} at score {at:.4g})\n\n{det_table or 'not run'}\n\n"
        f"## Per family\n\n{fam_table}\n\n## Look-alikes\n\n{look_table}\n\n"
        f"## Own attenuation per family\n\n{shape_table}\n\n"
        f"## Benign items inside each class's feature envelope\n\n{env_table}\n\n"
        f"## Threats drawn but not labelled\n\n{miss or 'none'}\n\n"
        f"## Checks\n\n" + "\n".join(f"- {c}" for c in rec.checks) + "\n")
    print(f"\n{len(instances)} labelled threats in {args.parcels} parcels, "
          f"{time.time() - t_start:.0f} s -> {out}")


if __name__ == "__main__":
    main()
