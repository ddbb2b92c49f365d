"""Contact sheet of the object library: every family, three instances, three poses.

    .venv/bin/python scripts/phantom_sheet.py                      # -> docs/phantoms.png
    .venv/bin/python scripts/phantom_sheet.py --only gun,knife --tile 320 --colour --out x.png

Each tile is one item projected at 1 mm pitch with (50, 80) keV effective energies, blurred
as the simulator blurs (Gaussian, 0.6 px, on transmission), shown as high-energy
transmission T = exp(-att) (white = air, darker = denser) through a display curve
T ** gamma (gamma 0.5 by default, like the log-ish contrast curves of scanner consoles, so that
structure inside metal stays visible; --gamma 1 is linear), or with ``--colour`` in the usual
scanner palette (orange organic, green inorganic, blue metal, by the dual-energy ratio). Tiles
show v up (image rows flipped), so an item lying flat appears as drawn in its module.
The first pose lies flat, the second is tilted as most parcel contents are, the third is
uniformly random (often edge-on). Tiles are scaled to fit; the bar is 50 mm, the label gives
the family and the item's largest dimension.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.imaging.attenuation import ratio_boundaries  # noqa: E402
from simulator import phantoms  # noqa: E402
from simulator.solids import project, random_rotation, rotation  # noqa: E402

KEV = (50.0, 80.0)
PITCH_MM = 1.0
CELL_MM = 0.5
BLUR_PX = 0.6  # focal spot and detector crosstalk, as in simulator.scanner


def pose(rng: np.random.Generator, k: int) -> np.ndarray:
    if k == 0:
        return rotation(rng.uniform(0, 360))
    return random_rotation(rng, flat_share=1.0 if k == 1 else 0.0)


def colourise(att_lo: np.ndarray, att_hi: np.ndarray, gamma: float) -> np.ndarray:
    """BGR image: brightness from transmission, hue from the low/high attenuation ratio."""
    r1, r2 = ratio_boundaries(*KEV)
    palette = np.array([(0, 140, 255), (40, 190, 40), (230, 110, 30)], np.float32) / 255
    hue = palette[np.digitize(att_lo / np.maximum(att_hi, 1e-6), [r1, r2])]
    trans = np.exp(-gamma * att_hi)[..., None]
    saturation = np.clip((1 - trans) * 3, 0, 1)
    out = ((1 - saturation) + saturation * hue) * np.clip(trans * 1.8, 0, 1) ** 0.7
    return (255 * out).clip(0, 255).astype(np.uint8)


def render(item, rot, tile: int, colour: bool, gamma: float) -> tuple[np.ndarray, float]:
    """One tile (uint8 [tile, tile] or BGR) and the item's largest dimension (mm)."""
    fp = project(item, rot, (0.0, 0.0), PITCH_MM, KEV)
    att_lo, att_hi = (-np.log(cv2.GaussianBlur(np.exp(-a[::-1]), (0, 0), BLUR_PX).clip(1e-30))
                      for a in (fp.att_lo, fp.att_hi))
    img = colourise(att_lo, att_hi, gamma) if colour else \
        (255 * np.exp(-gamma * att_hi)).astype(np.uint8)
    bounds = np.array([s.bounds for s in item.slabs])
    size = float(np.max(bounds[:, 3:5].max(0) - bounds[:, :2].min(0)))
    span = max(img.shape[:2]) + 8
    scale = (tile - 24) / max(span, 60 / PITCH_MM)
    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out = np.full((tile, tile, 3) if colour else (tile, tile), 255, np.uint8)
    h, w = small.shape[:2]
    y0, x0 = (tile + 10 - h) // 2, (tile - w) // 2
    out[y0:y0 + h, x0:x0 + w] = small
    bar = int(round(50 / PITCH_MM * scale))
    cv2.line(out, (4, tile - 5), (4 + bar, tile - 5), 0, 2)
    return out, size


def label(tile_img: np.ndarray, text: str) -> None:
    cv2.putText(tile_img, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.36, 0, 1, cv2.LINE_AA)


def sheet(families, tile: int, colour: bool, per_row: int, seed: int,
          gamma: float = 0.5) -> np.ndarray:
    tiles, timings = [], []
    for index, family in enumerate(families):
        for k in range(3):
            rng = np.random.default_rng((seed, index, k))
            t0 = time.perf_counter()
            item = family.build(rng, CELL_MM)
            t1 = time.perf_counter()
            img, size = render(item, pose(rng, k), tile, colour, gamma)
            timings.append((family.name, t1 - t0, time.perf_counter() - t1))
            label(img, f"{family.name} {size:.0f}mm" if k == 0 else f"{size:.0f}mm")
            cv2.rectangle(img, (0, 0), (tile - 1, tile - 1), 200, 1)
            tiles.append(img)
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % per_row)
    rows = [np.hstack(tiles[i:i + per_row]) for i in range(0, len(tiles), per_row)]
    slow = sorted(timings, key=lambda t: -t[1] - t[2])[:5]
    print("slowest (build ms, project ms):",
          ", ".join(f"{n} {b * 1e3:.1f}/{p * 1e3:.1f}" for n, b, p in slow))
    return np.vstack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/phantoms.png"))
    parser.add_argument("--only", default="", help="comma-separated classes or family names "
                        "('benign' for all benign families)")
    parser.add_argument("--tile", type=int, default=168)
    parser.add_argument("--per-row", type=int, default=12)
    parser.add_argument("--colour", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gamma", type=float, default=0.5)
    args = parser.parse_args()
    wanted = {w for w in args.only.split(",") if w}
    chosen = [f for f in phantoms.FAMILIES if not wanted or f.name in wanted
              or (f.label or "benign") in wanted]
    if not chosen:
        raise SystemExit(f"nothing matches --only {args.only!r}")
    image = sheet(chosen, args.tile, args.colour, args.per_row, args.seed, args.gamma)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{len(chosen)} families -> {args.out} ({image.shape[1]} x {image.shape[0]} px, "
          f"{args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
