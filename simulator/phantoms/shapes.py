"""Drawing helpers for object families: plates, bands, rings, blades and cartridges, in mm.

All return slabs (see ``simulator.solids``) in the object's own plane; w is thickness.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from simulator.solids import Slab, ellipse, extrude, rod

Draw = Callable[[np.ndarray, Callable[[np.ndarray], np.ndarray], float], None]


def cells(draw: Draw, lo, hi, cell_mm: float) -> np.ndarray:
    """Centres [K, 2] (mm) of the cells that ``draw`` paints on a canvas covering lo..hi (mm).

    ``draw(canvas, to_px, px_per_mm)`` paints with OpenCV calls; ``to_px`` maps mm to the
    canvas' fixed-point pixel coordinates (shift 4)."""
    lo = np.asarray(lo, np.float64) - 2 * cell_mm
    hi = np.asarray(hi, np.float64) + 2 * cell_mm
    w, h = (np.ceil((hi - lo) / cell_mm).astype(int) + 1)
    canvas = np.zeros((h, w), np.uint8)

    def to_px(points) -> np.ndarray:
        return np.round((np.asarray(points, np.float64) - lo) / cell_mm * 16 - 8).astype(
            np.int32)

    draw(canvas, to_px, 1.0 / cell_mm)
    rows, cols = np.nonzero(canvas)
    return np.stack([cols, rows], axis=1) * cell_mm + lo


def slab(uv: np.ndarray, thickness, material: str, cell_mm: float, w_center=0.0) -> Slab:
    """A slab over given cells with thickness (mm, a number or function of uv)."""
    t = np.asarray(thickness(uv) if callable(thickness) else np.full(len(uv), thickness),
                   np.float64).clip(0, None)
    keep = t > 0
    uv, t = uv[keep], t[keep]
    wc = np.asarray(w_center(uv) if callable(w_center) else w_center, np.float64)
    return Slab(material, uv.astype(np.float32), (wc - t / 2).astype(np.float32),
                (wc + t / 2).astype(np.float32), cell_mm)


def band(points, width: float, thickness, material: str, cell_mm: float,
         closed: bool = False, w_center=0.0) -> Slab:
    """A strip ``width`` mm wide along a polyline (wires, rings, frames, zips)."""
    pts = np.asarray(points, np.float64)

    def draw(canvas, to_px, px_per_mm):
        cv2.polylines(canvas, [to_px(pts)], closed, 1, max(1, int(round(width * px_per_mm))),
                      cv2.LINE_8, shift=4)

    return slab(cells(draw, pts.min(0) - width, pts.max(0) + width, cell_mm), thickness,
                material, cell_mm, w_center)


def ring(center, radius: float, width: float, thickness, material: str, cell_mm: float,
         arc=(0.0, 360.0), aspect: float = 1.0) -> Slab:
    """A ring (or an arc of one) of mean ``radius``, ``width`` mm wide."""
    phi = np.radians(np.linspace(*arc, 64))
    pts = np.stack([radius * np.cos(phi), aspect * radius * np.sin(phi)], 1) + center
    return band(pts, width, thickness, material, cell_mm, closed=arc[1] - arc[0] >= 360)


def plate(outline, thickness, material: str, cell_mm: float, holes=(), w_center=0.0) -> Slab:
    """A plate of polygon ``outline`` with circular ``holes`` ((u, v, r), ...)."""
    s = extrude(outline, 1.0, material, cell_mm)
    uv = s.uv.astype(np.float64)
    keep = np.ones(len(uv), bool)
    for hu, hv, hr in holes:
        keep &= (uv[:, 0] - hu) ** 2 + (uv[:, 1] - hv) ** 2 > hr ** 2
    return slab(uv[keep], thickness, material, cell_mm, w_center)


def bevel(spine_v: float, edge_v: float, spine_t: float, edge_t: float = 0.15):
    """Thickness function of a blade: ``spine_t`` at v = spine_v, falling to ``edge_t``."""
    def t(uv):
        f = np.clip((uv[:, 1] - edge_v) / (spine_v - edge_v), 0, 1)
        return edge_t + (spine_t - edge_t) * f ** 0.8
    return t


def disc(center, radius: float, thickness: float, material: str, cell_mm: float) -> Slab:
    return extrude(ellipse(radius, radius, center), thickness, material, cell_mm)


def cartridge(p0, direction, case_len: float, case_d: float, bullet_d: float,
              bullet_len: float, cell_mm: float, spent: bool = False) -> list[Slab]:
    """A cartridge lying in the plane: brass case (thin wall, solid head) filled with powder,
    lead-core bullet in a copper jacket. ``p0`` is the head, ``direction`` points to the tip."""
    d = np.asarray(direction, np.float64)
    d /= np.linalg.norm(d)
    p0 = np.asarray(p0, np.float64)
    r = case_d / 2
    head = p0 + d * 2.0
    mouth = p0 + d * case_len
    parts = rod(p0, head, r, "brass", cell_mm)
    parts += rod(head, mouth, r, "brass", cell_mm, inner_radius=r - 0.45)
    if not spent:
        parts += rod(head, mouth, r - 0.5, "smokeless_powder", cell_mm)
        seat = mouth - d * bullet_len * 0.35
        tip = seat + d * bullet_len
        parts += rod(seat, tip - d * bullet_d * 0.3, bullet_d / 2 - 0.3, "lead", cell_mm)
        parts += rod(seat, tip - d * bullet_d * 0.3, bullet_d / 2, "copper", cell_mm,
                     inner_radius=bullet_d / 2 - 0.3)
        parts += rod(tip - d * bullet_d * 0.3, tip, bullet_d / 3, "copper", cell_mm)
    return parts


def smooth_noise(rng: np.random.Generator, shape, scale_px: float) -> np.ndarray:
    """Smooth random field in [0, 1] with features about ``scale_px`` across."""
    h, w = shape
    gh, gw = max(2, int(h / scale_px) + 2), max(2, int(w / scale_px) + 2)
    coarse = rng.random((gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
