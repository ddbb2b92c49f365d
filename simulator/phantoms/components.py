"""Electrical components shared by devices and improvised explosives (mm): cells and
batteries, wires and cables, circuit boards with parts, coils and motors.

Benign electronics and IEDs are built from the same parts on purpose: a detector must tell a
remote control from a timer by the whole, not by the presence of a battery and a board.

Cells: AA 14.5 x 50.5 mm, AAA 10.5 x 44.5, 18650 Li-ion 18.3 x 65, 9 V (PP3) 48.5 x 26.5 x 17.5
with six AAAA cells inside; all in 0.25-0.3 mm nickel-plated steel cans around the active mass
('battery'), alkaline cells with a brass current collector pin down the axis.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.geometry import (
    Parts,
    copies,
    cylinder,
    lathe,
    plate,
    shell,
    spring,
    tube,
    upright,
    wander,
)
from simulator.solids import rectangle

CELLS = {"AA": (14.5, 50.5), "AAA": (10.5, 44.5), "18650": (18.3, 65.0), "C": (26.2, 50.0)}


def cell_along(kind: str, p0, direction_deg: float, cell: float, w_center: float = 0.0) -> Parts:
    """One cylindrical cell lying in the plane, its negative end at ``p0``."""
    d, length = CELLS[kind]
    r = d / 2
    a = np.radians(direction_deg)
    p0 = np.asarray(p0, np.float64)
    p1 = p0 + length * np.array([np.cos(a), np.sin(a)])
    parts = cylinder(p0, p1, r, "steel", cell, inner=r - 0.28, w_center=w_center)
    parts += lathe(p0, p1, [(0.3, r - 0.3), (length - 1.5, r - 0.3)], "battery", cell,
                   w_center=w_center)
    nub = p1 + 1.2 * (p1 - p0) / length
    parts += cylinder(p1, nub, 2.6, "steel", cell, w_center=w_center)
    if kind in ("AA", "AAA", "C"):  # alkaline: brass collector pin
        parts += cylinder(p0 + 0.08 * (p1 - p0), p0 + 0.8 * (p1 - p0), 0.7, "brass", cell,
                          w_center=w_center)
    return parts


def cell_pack(kind: str, count: int, cell: float, holder: bool = True) -> Parts:
    """``count`` cells side by side, alternating polarity, in a plastic holder with springs."""
    d, length = CELLS[kind]
    parts: Parts = []
    for k in range(count):
        v = (k - (count - 1) / 2) * (d + 0.8)
        flip = k % 2 == 1
        parts += cell_along(kind, (length / 2 if flip else -length / 2, v), 180 if flip else 0,
                            cell)
        if holder:
            end = -length / 2 - 3 if not flip else length / 2 + 3
            parts += spring((end - 2, v), (end + 2, v), d * 0.3, 0.35, 1.2, "steel", cell)
    if holder:
        parts += shell(rectangle(length + 12, count * (d + 0.8) + 3), d + 2, 1.2, "abs", cell,
                       lid=False)
    return parts


def nine_volt(cell: float) -> Parts:
    """PP3 9 V battery: steel jacket, six AAAA cells (8.3 x 42.5 mm) in two rows, snap
    terminals."""
    parts = shell(rectangle(46.0, 26.5, (0, 0)), 17.5, 0.3, "steel", cell)
    for row in (-1, 1):
        for k in range(3):
            v = (k - 1) * 8.6
            parts += lathe((-21.5, v), (21.5, v), [(0, 4.1), (43, 4.1)], "battery", cell,
                           w_center=row * 4.3)
    for v in (-6.3, 6.3):
        parts += upright((24.5, v), -3, [(0, 3.0), (4.5, 3.0)], "steel", cell)
    return parts


def wire(points, cell: float, core_r: float = 0.3, sheath_r: float = 1.0,
         w_center: float = 0.0) -> Parts:
    """An insulated wire (copper core in PVC) along a polyline."""
    return (tube(points, sheath_r, "pvc", cell, inner=core_r, w_center=w_center)
            + tube(points, core_r, "copper", cell, w_center=w_center))


def twin_wire(rng, start, end, cell: float, bend: float = 30.0, core_r: float = 0.3,
              w_center: float = 0.0) -> Parts:
    """A pair of insulated wires side by side, wandering from ``start`` to ``end``."""
    path = wander(rng, start, end, bend)
    step = np.gradient(path, axis=0)
    normal = np.stack([-step[:, 1], step[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    sheath = core_r + 0.7
    return (wire(path + normal * sheath, cell, core_r, sheath, w_center)
            + wire(path - normal * sheath, cell, core_r, sheath, w_center))


def pcb(rng, width: float, height: float, cell: float, density: float = 1.0,
        w_center: float = 0.0) -> Parts:
    """A populated circuit board, centred at the origin: 1.6 mm FR4 with copper pours, ICs
    (epoxy packages on copper lead frames), electrolytic capacitors (aluminium cans), small
    passives, a crystal, connectors; solder joints."""
    parts = [plate(rectangle(width, height), 1.6, "fr4", cell, w_center=w_center)]
    top = w_center + 0.8
    parts.append(plate(rectangle(width * 0.9, height * 0.9), 0.07, "copper", cell,
                       w_center=w_center - 0.8))  # ground pour on the back
    area = width * height
    for _ in range(int(density * area / 900) + 1):  # ICs
        w, h = min(rng.uniform(5, 20), width - 2), min(rng.uniform(4, 14), height - 2)
        at = rng.uniform([-width / 2 + w / 2, -height / 2 + h / 2],
                         [width / 2 - w / 2, height / 2 - h / 2])
        parts.append(plate(rectangle(w, h, at), rng.uniform(1, 3), "abs", cell,
                           w_center=top + 1))
        parts.append(plate(rectangle(w * 0.6, h * 0.6, at), 0.25, "copper", cell,
                           w_center=top + 0.8))
        for side in (-1, 1):
            parts.append(plate(rectangle(w * 0.9, 1.2, at + (0, side * (h / 2 + 0.6))), 0.3,
                               "copper", cell, w_center=top + 0.2))
    for _ in range(int(density * area / 1500)):  # electrolytic capacitors, standing
        r = min(rng.uniform(2.5, 5), width / 2 - 1, height / 2 - 1)
        at = rng.uniform([-width / 2 + r, -height / 2 + r], [width / 2 - r, height / 2 - r])
        parts += upright(at, top, [(0, r), (rng.uniform(7, 16), r)], "aluminium", cell,
                         [(0.3, r - 0.3), (20, r - 0.3)])
    n_small = int(density * area / 60)
    at = rng.uniform([-width / 2 + 2, -height / 2 + 2], [width / 2 - 2, height / 2 - 2],
                     (n_small, 2))
    small = [plate(rectangle(2.0, 1.2), 0.6, "fr4", cell, w_center=top + 0.3),
             plate(rectangle(0.6, 1.2, (-0.8, 0)), 0.4, "lead", cell, w_center=top + 0.2),
             plate(rectangle(0.6, 1.2, (0.8, 0)), 0.4, "lead", cell, w_center=top + 0.2)]
    parts += copies(small, at, angles=rng.choice([0.0, 90.0], n_small))
    if rng.random() < 0.5:  # crystal can
        parts.append(plate(rectangle(11, 4.5, rng.uniform(-width / 3, width / 3, 2)), 3.5,
                           "steel", cell, w_center=top + 1.8))
    return parts


def coil(p0, p1, r_out: float, r_in: float, material: str, cell: float,
         core: str | None = "steel", w_center: float = 0.0) -> Parts:
    """A wound coil (copper winding as a thick tube) on an optional core rod."""
    parts = cylinder(p0, p1, r_out, material, cell, inner=r_in, w_center=w_center)
    if core:
        parts += cylinder(p0, p1, r_in * 0.9, core, cell, w_center=w_center)
    return parts


def motor(center, length: float, radius: float, cell: float, axis_deg: float = 0.0) -> Parts:
    """A small DC / universal motor: steel can and shaft, copper armature winding, magnets."""
    a = np.radians(axis_deg)
    d = np.array([np.cos(a), np.sin(a)])
    c = np.asarray(center, np.float64)
    p0, p1 = c - d * length / 2, c + d * length / 2
    parts = cylinder(p0, p1, radius, "steel", cell, inner=radius - 0.6)
    parts += coil(p0 + d * length * 0.2, p1 - d * length * 0.2, radius * 0.6, radius * 0.25,
                  "copper", cell)
    parts += cylinder(p0 + d * length * 0.15, p1 - d * length * 0.15, radius - 0.7, "steel",
                      cell, inner=radius - 2.5)  # magnets / stator
    parts += cylinder(p0 - d * 6, p1 + d * 8, 1.0, "steel", cell)  # shaft
    return parts
