"""Loose blades (class 'blade') and throwing stars (class 'shuriken'), lying flat (mm).

Blades are thin ground steel: double-edge razor blades 43 x 22 x 0.1 mm with their slot,
single-edge razors 38 x 19 x 0.23 mm with a folded spine, utility (box-cutter) blades 61 x 19 x
0.6 mm, snap-off blades 18 x 100 x 0.5 mm (or 9 x 80 x 0.38) scored every segment, and scalpel
blades (No. 10, 11, 15, 22; 0.4 mm) with the keyhole slot, sometimes on a handle. Flat, one
razor blade barely dims the beam; edge-on it is a thin dark line. Throwing stars are ground
(hira-shuriken), hooked like a saw blade, or stamped flat from plate.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.geometry import (
    Parts,
    circle,
    copies,
    finish,
    ground,
    plate,
    shell,
)
from simulator.solids import Item, rectangle


def _pack(parts: Parts, count: int, gap: float, wrapper: tuple | None, cell) -> Parts:
    """``count`` blades stacked ``gap`` mm apart, each in a paper wrapper (outline, mm)."""
    if wrapper is not None:
        parts = parts + [plate(rectangle(*wrapper), 0.16, "paper", cell, w_center=0.1)]
    return copies(parts, np.zeros((count, 2)), np.arange(count) * gap)


def razor_blade(rng, cell) -> Item:
    """Double-edge safety razor blades, 43 x 22 x 0.1 mm stainless, the central slot with its
    three windows; one, or a pack of 5-10 wrapped blades."""
    outline = rectangle(43, 22)
    edges = [np.array([(-21.5, 11), (21.5, 11)]), np.array([(-21.5, -11), (21.5, -11)])]
    holes = [rectangle(30, 2.6), circle(3.2, (0, 0), 20)] + \
        [np.array([(s * 15, 0), (s * 19, 2.2), (s * 21, 0), (s * 19, -2.2)]) for s in (-1, 1)]
    blade = [ground(outline, 0.1, 1.5, "stainless", cell, edges=edges, edge_t=0.03,
                    holes=holes)]
    count = int(rng.choice([1, 1, 5, 10]))
    parts = _pack(blade, count, 0.3, (47, 26) if count > 1 else None, cell)
    if count > 1 and rng.random() < 0.6:  # plastic dispenser case
        parts += shell(rectangle(50, 28), count * 0.3 + 3, 0.8, "polyethylene", cell)
    return finish("razor_blade", "blade", parts, count=count)


def single_edge_razor(rng, cell) -> Item:
    """Single-edge industrial razor blade: 38 x 19 x 0.23 mm carbon steel with a folded steel
    spine; one or a few."""
    body = [ground(rectangle(38, 16, (0, -1.5)), 0.23, 2.0, "steel", cell,
                   edges=[np.array([(-19, -9.5), (19, -9.5)])], edge_t=0.03)]
    body.append(plate(rectangle(38, 3.5, (0, 8.0)), 0.9, "steel", cell))
    count = int(rng.integers(1, 6))
    return finish("single_edge_razor", "blade", _pack(body, count, 1.0, None, cell), count=count)


def utility_blade(rng, cell) -> Item:
    """Trapezoid box-cutter blade, 61 x 19 x 0.6 mm with two notches in its back; loose or a
    pack of five."""
    back = [(-30.5 + 12, 9.5), (-6, 9.5), (-4.5, 8), (-3, 9.5), (3, 9.5), (4.5, 8), (6, 9.5),
            (30.5 - 12, 9.5)]
    outline = np.array([(-30.5, -9.5), (30.5, -9.5)] + back[::-1])
    edge = np.array([(-30.5, -9.5), (30.5, -9.5)])
    blade = [ground(outline, 0.6, 3.0, "steel", cell, edges=[edge], edge_t=0.05)]
    count = int(rng.choice([1, 1, 1, 5]))
    return finish("utility_blade", "blade", _pack(blade, count, 0.65, None, cell), count=count)


def snap_off_blade(rng, cell) -> Item:
    """Snap-off cutter blade: 18 x 100 x 0.5 mm (or 9 x 80 x 0.38), scored at the snapping
    angle every 10-13 mm (the score lines are thinner steel); one or a tube of ten."""
    wide = rng.random() < 0.6
    width, length, t = (18.0, 100.0, 0.5) if wide else (9.0, 80.0, 0.38)
    slant = width / np.tan(np.radians(59))
    outline = [(0, 0), (length, 0), (length - slant, width), (-slant, width)]
    step = 10.0 if not wide else 13.0
    cuts = np.arange(step, length - slant, step)

    def thickness(uv):
        along = uv[:, 0] + slant * uv[:, 1] / width  # distance along the blade on score lines
        scored = np.min(np.abs(along[:, None] - cuts[None]), axis=1) < 0.4
        return np.where(scored, t * 0.6, t)

    blade = [ground(outline, thickness, 2.0, "steel", cell, edges=[np.array(outline[:2])],
                    edge_t=0.05)]
    count = 10 if rng.random() < 0.3 else 1
    parts = _pack(blade, count, 0.55, None, cell)
    if count > 1:
        parts += shell(rectangle(length + 6, width + 4, (length / 2 - slant / 2, width / 2)),
                       count * 0.55 + 2, 0.6, "polyethylene", cell)
    return finish("snap_off_blade", "blade", parts, width=width, count=count)


SCALPELS = {  # outline of the cutting part (mm, tang at u < 0) and which side is sharp
    10: ([(0, 3.5), (24, 4.0), (36, 1.5), (40, -1.0), (34, -4.5), (18, -5.5), (0, -4.5)], "low"),
    11: ([(0, 3.5), (20, 3.0), (40, 2.5), (12, -5.0), (0, -4.5)], "diag"),
    15: ([(0, 3.0), (16, 3.0), (24, 0.5), (22, -2.5), (12, -4), (0, -3.5)], "low"),
    22: ([(0, 4.5), (30, 5.0), (46, 2.0), (50, -1.5), (40, -6.5), (20, -7.5), (0, -6.0)],
         "low"),
}


def scalpel_blade(rng, cell) -> Item:
    """Surgical scalpel blades (No. 10, 11, 15, 22): 0.38-0.45 mm stainless with the keyhole
    slot for the handle's bayonet; loose, or on a flat No. 3 / No. 4 stainless handle."""
    number = int(rng.choice(list(SCALPELS)))
    tip, side = SCALPELS[number]
    tip = np.array(tip, np.float64)
    tang = np.array([(-18, -4.0), (-18, 3.0), (0, tip[0, 1])])
    outline = np.vstack([tang[1:], tip[1:], [tang[0]]])
    edge = tip[2:] if side == "low" else tip[2:4]
    holes = [rectangle(13, 2.4, (-9, 0)), circle(2.2, (-14, 0), 14)]
    t = rng.uniform(0.38, 0.45)
    parts = [ground(outline, t, 1.5, "stainless", cell, edges=[edge], edge_t=0.03, holes=holes)]
    with_handle = rng.random() < 0.35
    if with_handle:  # No. 3 handle: 125 mm flat bar, 2.5 mm, ribbed grip
        ribs = [rectangle(1.2, 8, (-60 - 3 * k, 0)) for k in range(12)]
        parts.append(plate(rectangle(112, 9, (-72, 0)), 2.5, "stainless", cell, holes=ribs))
        parts.append(plate(rectangle(16, 3.8, (-9, 0)), 1.8, "stainless", cell, w_center=0.9))
    return finish("scalpel_blade", "blade", parts, number=number, handle=with_handle)


def _star(points: int, outer: float, inner: float, hook: float) -> np.ndarray:
    """Star outline; ``hook`` > 0 sweeps every point round like a pinwheel (saw-tooth)."""
    phi = np.linspace(0, 2 * np.pi, points * 24, endpoint=False)
    x = (phi * points / (2 * np.pi)) % 1
    if hook > 0:
        r = inner + (outer - inner) * x ** (1 + 2 * hook)
    else:
        r = inner + (outer - inner) * (1 - np.abs(2 * x - 1))
    return np.stack([r * np.cos(phi), r * np.sin(phi)], 1)


def shuriken_star(rng, cell) -> Item:
    """Hira-shuriken: 4-8 straight points, 80-125 mm across, 1.5-3 mm steel with ground
    edges; often a centre hole and decorative holes in the arms."""
    points = int(rng.integers(4, 9))
    outer = rng.uniform(40, 62)
    inner = outer * rng.uniform(0.28, 0.45)
    holes = [circle(rng.uniform(5, 11))] if rng.random() < 0.7 else []
    if rng.random() < 0.4:
        holes += [circle(2.5, inner * 0.9 * np.array([np.cos(a), np.sin(a)]), 12)
                  for a in 2 * np.pi * (np.arange(points) + 0.5) / points]
    t = rng.uniform(1.5, 3.0)
    plate_ = ground(_star(points, outer, inner, 0), t, rng.uniform(3, 6), "steel", cell,
                    edge_t=0.3, holes=holes)
    return finish("shuriken_star", "shuriken", [plate_], points=points)


def shuriken_hooked(rng, cell) -> Item:
    """Pinwheel throwing star: 4-8 hooked, curved points like a saw blade, 80-120 mm."""
    points = int(rng.integers(4, 9))
    outer = rng.uniform(40, 60)
    inner = outer * rng.uniform(0.45, 0.6)
    holes = [circle(rng.uniform(5, 10))] if rng.random() < 0.8 else []
    plate_ = ground(_star(points, outer, inner, rng.uniform(0.4, 1.2)), rng.uniform(1.5, 2.5),
                    rng.uniform(3, 5), "steel", cell, edge_t=0.3, holes=holes)
    return finish("shuriken_hooked", "shuriken", [plate_], points=points)


def shuriken_stamped(rng, cell) -> Item:
    """Stamped throwing star: 4-8 straight points, 60-120 mm across, cut from 1.5-3 mm steel
    plate and left flat (no ground edges), usually with a centre hole."""
    points = int(rng.integers(4, 9))
    outer = rng.uniform(30, 60)
    inner = outer * rng.uniform(0.3, 0.5)
    phi = np.arange(2 * points) * np.pi / points
    radius = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    outline = np.stack([radius * np.cos(phi), radius * np.sin(phi)], 1)
    holes = [circle(inner * rng.uniform(0.3, 0.6))] if rng.random() < 0.7 else []
    parts = [plate(outline, rng.uniform(1.5, 3), "steel", cell, holes=holes)]
    return finish("shuriken_stamped", "shuriken", parts, points=points)


# Weights include the shares of the simpler first-generation designs these replaced, so
# each kind of object is drawn as often as before.
BLADE_FAMILIES = [(razor_blade, 1.5), (single_edge_razor, 0.5), (utility_blade, 1.6),
                  (snap_off_blade, 1.4), (scalpel_blade, 1.05)]
SHURIKEN_FAMILIES = [(shuriken_star, 2.0), (shuriken_hooked, 1.0), (shuriken_stamped, 0.5)]
