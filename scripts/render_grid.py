"""Render a grid of simulated parcels (pseudo-colour above, grey below) for docs/simulator.md.

    python scripts/render_grid.py --parcels 8 --out docs/sim_grid.png

Threat boxes from the ground truth are drawn in red with their class, so the picture also
shows what the detector is asked to find.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edge.capture import capture_flatfield
from edge.config import SimScannerConfig
from edge.imaging.attenuation import ratio_boundaries
from edge.imaging.correct import correct
from edge.imaging.render import render_colour, render_grey
from simulator.scanner import SimScanner

TILE_H = 260


def tile(image: np.ndarray, boxes, labels, scale: float) -> np.ndarray:
    out = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if out.ndim == 2:
        out = cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)
    for (x1, y1, x2, y2), label in zip(boxes * scale, labels, strict=True):
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), (0, 0, 230), 1)
        cv2.putText(out, label, (int(x1), max(int(y1) - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 230), 1, cv2.LINE_AA)
    return out


def crop_rows(hi: np.ndarray, margin: int = 20) -> slice:
    """Rows of the tunnel the parcel occupies (the rest is empty belt)."""
    rows = np.nonzero(np.percentile(hi, 95, axis=1) > 0.05)[0]
    if len(rows) == 0:
        return slice(0, hi.shape[0])
    return slice(max(rows[0] - margin, 0), min(rows[-1] + margin, hi.shape[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parcels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("docs/sim_grid.png"))
    args = parser.parse_args()
    cfg = SimScannerConfig(realtime=False, seed=args.seed, threat_share=0.75)
    scanner = SimScanner(cfg)
    flat = capture_flatfield(scanner)
    bounds = ratio_boundaries(cfg.low_kev, cfg.high_kev)
    parcels = scanner.parcels()
    columns = []
    for _ in range(args.parcels):
        placed = next(parcels)
        first, count = scanner.span_of(placed, 20)
        block = scanner.scan(first, count)
        hi, lo = (np.ascontiguousarray(a.T) for a in correct(block.hi, block.lo, flat))
        rows = crop_rows(hi)
        truth = [t for t in scanner.truth(first, count)]
        boxes = np.concatenate([t.boxes for t in truth]) if truth else np.zeros((0, 4))
        labels = [lab for t in truth for lab in t.labels]
        boxes = boxes - [0, rows.start, 0, rows.start]
        scale = TILE_H / (rows.stop - rows.start)
        colour = tile(render_colour(hi[rows], lo[rows], bounds), boxes, labels, scale)
        grey = tile(render_grey(hi[rows]), boxes, labels, scale)
        columns.append(np.vstack([colour, np.full((6, colour.shape[1], 3), 255, np.uint8), grey]))
    rows_out, row, width = [], [], 0
    for col in columns:  # wrap into rows about 1600 px wide
        if width + col.shape[1] > 1600 and row:
            rows_out.append(row)
            row, width = [], 0
        row.append(col)
        width += col.shape[1] + 8
    rows_out.append(row)
    canvas_w = max(sum(c.shape[1] + 8 for c in r) for r in rows_out)
    strips = []
    for r in rows_out:
        strip = np.full((r[0].shape[0] + 8, canvas_w, 3), 200, np.uint8)
        x = 0
        for c in r:
            strip[:c.shape[0], x:x + c.shape[1]] = c
            x += c.shape[1] + 8
        strips.append(strip)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(strips))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
