"""Double-action revolvers, lying on their side (mm): u forward along the bore, v up.

The cylinder is a steel drum bored through by 5-8 chambers (a prism whose cross-section is a
disc minus the chamber circles and, on most, minus flutes between them); the chamber at 12
o'clock lines up with the barrel. The frame surrounds the cylinder window (top strap, recoil
shield, frame bottom), the barrel screws into its front; hammer, trigger, trigger guard and a
grip of wood panels or one-piece rubber over a narrow steel grip frame.

Dimensions: .38 Special / .357 Magnum cylinders 37-44 mm across and 38-44 mm long (S&W K, L,
N frames), J-frame five-shot 33 mm; barrels 2-6 inches; overall 160 mm (snub) to 290 mm
(Colt Python 6"), 105-150 mm high.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.ammo import CALIBRES, cartridge
from simulator.phantoms.geometry import (
    Parts,
    circle,
    coarse,
    copies,
    cylinder,
    lathe,
    plate,
    prism,
    spline,
    strip,
    upright,
)
from simulator.solids import rectangle


def cylinder_drum(n: int, r_bolt: float, radius: float, length: float, r_chamber: float,
                  fluted: bool, cell: float) -> Parts:
    """The drum lying along +u from u = 0, its axis at v = -r_bolt, chamber 0 at 12 o'clock."""
    phi = 2 * np.pi * np.arange(n) / n
    centre = np.array([-r_bolt, 0.0])  # (t, w) = (v, w)
    chambers = [circle(r_chamber, centre + r_bolt * np.array([np.cos(a), np.sin(a)]), 24)
                for a in phi]
    holes = chambers + [circle(3.2, centre, 16)]
    if fluted:
        holes += [circle(radius * 0.13, centre + (radius + radius * 0.05) *
                         np.array([np.cos(a + np.pi / n), np.sin(a + np.pi / n)]), 20)
                  for a in phi]
    return prism((0, 0), (length, 0), [circle(radius, centre, 64)], "steel", cell, holes)


def revolver_groups(rng, cell: float) -> tuple[dict[str, Parts], dict]:
    snub = rng.random() < 0.3
    n = 5 if snub and rng.random() < 0.7 else int(rng.choice([6, 6, 6, 6, 7, 8]))
    name = str(rng.choice([".38spl", ".357mag"]))
    c = CALIBRES[name]
    r_ch = c.base_d / 2 + 0.08
    r_bolt = (2 * r_ch + 2.2) / (2 * np.sin(np.pi / n))
    radius = r_bolt + r_ch + rng.uniform(2.6, 3.6)
    length = rng.uniform(38.5, 41) if name == ".38spl" else rng.uniform(40.5, 44)
    barrel = rng.uniform(50, 66) if snub else float(rng.choice([76, 102, 102, 127, 152]))
    barrel += rng.uniform(-2, 2)
    groups = {"cylinder": cylinder_drum(n, r_bolt, radius, length, r_ch, rng.random() < 0.6,
                                        cell)}
    groups["cylinder"] += cylinder((-2, -r_bolt), (length + 2, -r_bolt), 3.0, "steel", cell)
    groups["rounds"] = chamber_rounds(rng, c, n, r_bolt, cell)
    groups["barrel"] = barrel_parts(rng, length, barrel, r_bolt, cell)
    bottom = -r_bolt - radius
    groups["frame"] = frame_parts(rng, length, radius, r_bolt, snub, cell)
    groups["grip"] = grip_parts(rng, bottom, snub, radius, cell)
    return groups, {"barrel_mm": round(barrel), "chambers": n, "calibre": name}


def chamber_rounds(rng, c, n: int, r_bolt: float, cell: float) -> Parts:
    """Live rounds, fired cases or nothing in each chamber (heads against the recoil shield)."""
    phi = 2 * np.pi * np.arange(n) / n
    v, w = -r_bolt + r_bolt * np.cos(phi), r_bolt * np.sin(phi)
    state = rng.choice(3, n, p=[0.8, 0.1, 0.1]) if rng.random() < 0.8 else np.zeros(n, int)
    parts: Parts = []
    for s, spent in ((0, False), (1, True)):
        pick = state == s
        if pick.any():
            parts += copies(cartridge(c, cell, spent), np.stack([np.full(pick.sum(), -1.3),
                                                                 v[pick]], 1), w[pick])
    return parts


def barrel_parts(rng, cyl_len: float, length: float, r_bolt: float, cell: float) -> Parts:
    """Barrel (forcing cone at the cylinder gap), ejector-rod shroud or full underlug,
    ejector rod, front sight, sometimes a ventilated rib."""
    u0, u1 = cyl_len + 0.2, cyl_len + 0.2 + length
    r = rng.uniform(8.5, 10.0)
    parts = lathe((u0, 0), (u1, 0), [(0, r + 1), (12, r + 1), (12, r), (length, r * 0.92)],
                  "steel", cell, [(0, 5.2), (6, 4.5), (length, 4.5)])
    lug = str(rng.choice(["full", "half", "none"]))
    under = -r_bolt - 4
    if lug == "full":
        parts.append(plate([(u0, -r + 2), (u1, -r + 2), (u1, under - 1), (u0, under - 2)], 15,
                           "steel", cell))
    elif lug == "half":
        shroud = min(length * 0.8, 50)
        parts.append(plate([(u0, -r + 2), (u0 + shroud, -r + 2), (u0 + shroud - 6, under),
                            (u0, under)], 13, "steel", cell))
    rod_len = min(length * 0.8, 50)
    parts += cylinder((cyl_len, -r_bolt), (cyl_len + rod_len, -r_bolt), 3.0, "steel", cell)
    parts.append(plate([(u1 - 16, r - 1), (u1 - 1, r - 1), (u1 - 1, r + 6), (u1 - 5, r + 6)],
                       4, "steel", cell))
    if rng.random() < 0.3:
        parts.append(plate(rectangle(length, 5, ((u0 + u1) / 2, r + 2)), 9, "steel", cell))
    return parts


def frame_parts(rng, cyl_len: float, radius: float, r_bolt: float, snub: bool,
                cell: float) -> Parts:
    """Frame round the cylinder window, hammer, trigger, trigger guard, hand and bolt."""
    top = radius - r_bolt + 6.5
    bottom = -r_bolt - radius - 7
    outline = [(cyl_len + 15, top - 4), (cyl_len + 15, bottom + 6), (cyl_len + 4, bottom),
               (-16, bottom), (-30, bottom + 10), (-36, -r_bolt), (-26, top - 6), (-12, top)]
    window = rectangle(cyl_len + 1, top - bottom - 12.5, (cyl_len / 2, (top + bottom) / 2 - 0.2))
    parts = [plate(outline, 2 * radius * 0.72, "steel", cell, holes=[window])]
    parts.append(plate(rectangle(cyl_len + 30, 6, (cyl_len / 2, top - 3)), 17, "steel", cell))
    pivot = np.array([-22.0, -r_bolt])
    if snub and rng.random() < 0.5:
        hammer = [pivot + (8, -6), pivot + (8, 10), pivot + (-4, 14), pivot + (-8, 2)]
    else:
        hammer = [pivot + (8, -6), pivot + (8, 10), pivot + (-2, 20), pivot + (-14, 26),
                  pivot + (-16, 20), pivot + (-8, 6), pivot + (-6, -6)]
    parts.append(plate(hammer, 8, "steel", cell))
    guard = [(-14, bottom + 1), (-12, bottom - 20), (-4, bottom - 26), (14, bottom - 26),
             (22, bottom - 18), (24, bottom + 1)]
    parts.append(strip(guard, 5, 8, "steel", cell))
    parts.append(strip([(2, bottom + 2), (5, bottom - 9), (4, bottom - 18), (0, bottom - 22)],
                       7, 8, "steel", cell))
    parts += upright((-22, -r_bolt), -radius * 0.72, [(0, 2), (2 * radius * 0.72, 2)], "steel",
                     cell)
    return parts


def grip_parts(rng, frame_bottom: float, snub: bool, radius: float, cell: float) -> Parts:
    """Grip: the steel grip frame with a leaf mainspring, covered by wood panels or a one-piece
    rubber grip; round (bird's-head) or square butt. 36-44 mm front to back."""
    rake = np.radians(rng.uniform(20, 32))
    g = np.array([-np.sin(rake), -np.cos(rake)])  # down the grip
    n = np.array([np.cos(rake), -np.sin(rake)])  # towards the front strap
    length = rng.uniform(72, 86) if snub else rng.uniform(95, 115)
    depth = rng.uniform(36, 44)
    front = np.array([-12.0, frame_bottom - 2])
    top_back = np.array([-40.0, frame_bottom + 22])
    butt = rng.uniform(0.2, 1.0)  # 1: round butt
    bottom = front + g * length
    outline = spline([front, front + g * length * 0.5 + n * 2, bottom - n * depth * 0.1 * butt,
                      bottom - n * depth * 0.5 + g * 3, bottom - n * depth * (1 - 0.1 * butt),
                      front + g * length * 0.45 - n * (depth + 2), top_back + g * 6,
                      top_back, front + (0, 8)], 48, closed=True)
    # The grip frame: front strap, backstrap and butt of the steel frame, open in the middle
    # under the panels (the shape it has in X-ray images), plus the leaf mainspring.
    centre = outline.mean(0)
    ring = (outline - centre) * 0.86 + centre
    parts = [strip(ring[8:44], 5, 10, "steel", cell),
             strip([top_back + g * 10 + n * 9, front + g * (length - 12) - n * depth * 0.55], 5,
                   1.6, "steel", cell)]
    if rng.random() < 0.5:
        for side in (-1, 1):
            parts.append(plate(outline, 7.5, "wood", coarse(cell), w_center=side * 9.5))
        parts += upright(front + g * length * 0.45 - n * depth * 0.45, -14,
                         [(0, 2.8), (28, 2.8)], "steel", cell)
    else:
        parts.append(plate(outline, 31 if not snub else 28, "rubber", coarse(cell)))
    return parts
