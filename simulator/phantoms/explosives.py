"""Improvised explosive devices (class 'explosive'), lying flat (mm).

Each has the four parts screening looks for: a main charge of organic explosive (RDX, PETN,
TNT, ammonium nitrate or smokeless powder; 0.1-1.5 kg), a detonator (an aluminium or copper
tube 6.5-7.5 mm across, 40-80 mm long: base charge, a dense primary charge, plug and leg
wires), wires (copper in PVC), and a power source (9 V, AA pack, Li-ion cell), often with a
switch or timer (a board, a digital clock, a wind-up alarm clock). Plastic explosive blocks
follow the M112 (279 x 51 x 38 mm, 0.57 kg) and smaller commercial sizes; dynamite-style
sticks are 25-40 mm across; pipe bombs use 3/4 to 2 inch steel pipe with threaded caps. A
crude device is drawn with plain parts: a bare charge, a plain detonator, bare cells.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.components import cell_along, cell_pack, nine_volt, pcb, twin_wire
from simulator.phantoms.geometry import (
    Parts,
    circle,
    coarse,
    cylinder,
    finish,
    lathe,
    moved,
    plate,
    shell,
    strip,
    upright,
)
from simulator.solids import Item, rectangle

CHARGES = ("rdx", "petn", "tnt", "ammonium_nitrate")


def detonator(p0, direction_deg: float, length: float, cell: float,
              w_center: float = 0.0) -> Parts:
    """Electric detonator, closed end at ``p0``: aluminium (or copper) shell 7.3 mm, PETN base
    charge, lead azide primary (drawn as lead at its 4.8 g/cm3 share), delay element, rubber
    plug; the leg wires leave from the other end."""
    a = np.radians(direction_deg)
    d = np.array([np.cos(a), np.sin(a)])
    p0 = np.asarray(p0, np.float64)

    def at(s: float) -> np.ndarray:
        return p0 + d * s

    parts = lathe(at(0), at(length), [(0, 3.65), (length, 3.65)], "aluminium", cell,
                  [(0.6, 0), (0.6, 3.3), (length, 3.3)], w_center)
    parts += cylinder(at(0.6), at(16), 3.2, "petn", cell, w_center=w_center)
    parts += cylinder(at(16), at(21), 3.2 * 0.65, "lead", cell, w_center=w_center)
    parts += cylinder(at(21), at(length - 12), 1.6, "lead", cell, inner=0.9,
                      w_center=w_center)  # delay element in its lead tube
    parts += cylinder(at(length - 10), at(length), 3.2, "rubber", cell, w_center=w_center)
    return parts


def wrapped_block(size, material: str, cell: float, w_center: float = 0.0) -> Parts:
    """A block of explosive in plastic film (0.1 mm polyethylene)."""
    length, width, height = size
    parts = [plate(rectangle(length, width), height, material, coarse(cell), w_center=w_center)]
    parts += moved(shell(rectangle(length + 1, width + 1), height + 1, 0.15, "polyethylene",
                         coarse(cell)), w_offset=w_center)
    return parts


def power(rng, at, cell: float) -> Parts:
    """A power source at ``at``: 9 V block, an AA / AAA pack, or a Li-ion cell."""
    kind = str(rng.choice(["9v", "9v", "pack", "18650"]))
    if kind == "9v":
        return moved(nine_volt(cell), at, rng.uniform(0, 360))
    if kind == "18650":
        return moved(cell_along("18650", (-32.5, 0), 0, cell), at, rng.uniform(0, 360))
    parts = cell_pack(str(rng.choice(["AA", "AAA"])), int(rng.integers(2, 5)), cell,
                      holder=rng.random() < 0.7)
    return moved(parts, at, rng.uniform(0, 360))


def switch(rng, at, cell: float) -> Parts:
    """Timer or switch: a small board with an LCD, a wind-up alarm clock's steel works and
    bells, or a toggle switch."""
    kind = str(rng.choice(["board", "clock", "toggle"]))
    if kind == "board":
        parts = pcb(rng, rng.uniform(40, 70), rng.uniform(30, 50), cell)
        parts.append(plate(rectangle(30, 14, (0, 5)), 2.0, "glass", cell, w_center=4))
        return moved(parts, at, rng.uniform(0, 360))
    if kind == "clock":
        r = rng.uniform(28, 40)
        parts = [plate(circle(r), 1.0, "steel", cell, w_center=s) for s in (-12, 12)]
        parts.append(strip(circle(r, n=48), 2.0, 24, "steel", cell, closed=True))
        for k in range(4):  # gear train
            parts.append(plate(circle(r * 0.3, (r * 0.35 * np.cos(k * 1.7),
                                                r * 0.35 * np.sin(k * 1.7))), 1.0, "brass",
                               cell, w_center=-6 + 3 * k))
        for s in (-1, 1):  # bells on top
            parts += lathe((s * r * 0.5, r), (s * r * 0.55, r + 18), [(0, 14), (18, 2)],
                           "steel", cell, [(0, 13), (16, 0)])
        return moved(parts, at, rng.uniform(0, 360))
    parts = [plate(rectangle(20, 12), 12, "abs", cell)]
    parts += cylinder((0, 0), (0, 14), 1.6, "steel", cell)
    parts.append(plate(rectangle(14, 8), 5, "brass", cell))
    return moved(parts, at, rng.uniform(0, 360))


def _firing_train(rng, charge_end, cell: float, w_center: float) -> Parts:
    """Detonator pushed into the charge at ``charge_end``, wires to a power source and
    sometimes through a switch or timer."""
    angle = rng.uniform(-25, 25)
    a = np.radians(angle)
    tip = np.asarray(charge_end, np.float64) - 25 * np.array([np.cos(a), np.sin(a)])
    length = rng.uniform(45, 75)
    parts = detonator(tip, angle, length, cell, w_center)
    det_end = tip + length * np.array([np.cos(a), np.sin(a)])
    battery_at = det_end + rng.uniform([40, -70], [110, 70])
    parts += power(rng, battery_at, cell)
    if rng.random() < 0.6:
        switch_at = det_end + rng.uniform([20, -110], [130, 110])
        parts += switch(rng, switch_at, cell)
        parts += twin_wire(rng, det_end, switch_at, cell)
        parts += twin_wire(rng, switch_at, battery_at, cell)
    else:
        parts += twin_wire(rng, det_end, battery_at, cell)
    return parts


def ied_block(rng, cell) -> Item:
    """Plastic explosive: one to three wrapped blocks (M112-like or smaller commercial
    blocks, 0.15-1.5 kg) with a detonator, wires, battery, often a timer."""
    material = str(rng.choice(["rdx", "rdx", "petn"]))  # C-4 / Semtex / Detasheet
    count = int(rng.choice([1, 1, 2, 3]))
    length, width, height = rng.uniform(90, 280), rng.uniform(45, 80), rng.uniform(18, 40)
    parts: Parts = []
    for k in range(count):
        parts += moved(wrapped_block((length, width, height), material, cell),
                       (0, k * (width + 1)))
    if count > 1:  # taped together
        parts.append(strip([(0, -width / 2), (0, (count - 0.5) * width)], 25, 0.6, "pvc",
                           cell, w_center=height / 2 + 0.4))
    parts += _firing_train(rng, (length / 2, 0), cell, 0.0)
    return finish("ied_block", "explosive", parts, charge=material, blocks=count)


def ied_sticks(rng, cell) -> Item:
    """Stick charges (dynamite / emulsion / ammonium nitrate cartridges, 25-40 mm across,
    150-220 mm, paper wrapped) taped in a bundle of 2-6, detonator in one, wires, battery,
    sometimes an alarm clock."""
    material = str(rng.choice(CHARGES))
    n = int(rng.integers(2, 7))
    r, length = rng.uniform(12.5, 20), rng.uniform(150, 220)
    parts: Parts = []
    layers = 2 if n >= 4 else 1
    per = int(np.ceil(n / layers))
    for k in range(n):
        v, w = (k % per) * 2 * r, (k // per - (layers - 1) / 2) * 2 * r
        parts += cylinder((-length / 2, v), (length / 2, v), r - 0.4, material, coarse(cell),
                          w_center=w)
        parts += cylinder((-length / 2, v), (length / 2, v), r, "paper", coarse(cell),
                          inner=r - 0.4, w_center=w)
    for u in (-length * 0.3, length * 0.3):  # tape wrapped round the bundle
        parts.append(strip([(u, -r), (u, (per - 0.5) * 2 * r)], 20, 0.5, "pvc", cell,
                           w_center=layers * r + 0.3))
        parts.append(strip([(u, -r), (u, (per - 0.5) * 2 * r)], 20, 0.5, "pvc", cell,
                           w_center=-layers * r - 0.3))
    parts += _firing_train(rng, (length / 2, 0), cell, (-(layers - 1) / 2) * 2 * r)
    return finish("ied_sticks", "explosive", parts, charge=material, sticks=n)


def pipe_bomb(rng, cell) -> Item:
    """Pipe bomb: a steel pipe (26.7-60.3 mm OD, 2.9-3.9 mm wall, 150-300 mm) with threaded
    end caps, filled with smokeless powder or an improvised mixture; the igniter's wires
    leave through a hole in one cap to a battery; sometimes nails taped round it."""
    od, wall = [(26.7, 2.9), (33.4, 3.4), (42.2, 3.6), (48.3, 3.7), (60.3, 3.9)][
        int(rng.integers(0, 5))]
    length = rng.uniform(150, 300)
    r = od / 2
    fill = str(rng.choice(["smokeless_powder", "smokeless_powder", "ammonium_nitrate", "tnt"]))
    parts = cylinder((0, 0), (length, 0), r, "steel", cell, inner=r - wall)
    cap = r + 4
    for s0, s1 in ((-8, 22), (length - 22, length + 8)):  # caps overlap the threaded ends
        parts += lathe((s0, 0), (s1, 0), [(0, cap), (30, cap)], "steel", cell,
                       [(8 if s0 < 0 else 0, r + 0.2), (22 if s0 < 0 else 30, r + 0.2)])
    parts += cylinder((1, 0), (length - 1, 0), (r - wall) * 0.97, fill, cell)
    parts += cylinder((length - 30, 0), (length - 10, 0), 2.0, "copper", cell)  # igniter
    wire_out = (length + 9, 0)
    battery_at = np.array([length + rng.uniform(50, 110), rng.uniform(-60, 60)])
    parts += power(rng, battery_at, cell)
    parts += twin_wire(rng, wire_out, battery_at, cell)
    if rng.random() < 0.3:  # nails taped round the pipe as fragments
        for _ in range(int(rng.integers(8, 20))):
            v = rng.uniform(-r, r)
            u0 = rng.uniform(0, length - 70)
            parts += cylinder((u0, v), (u0 + 65, v), 1.6, "steel", cell,
                              w_center=np.sqrt(max(r ** 2 - v ** 2, 0)) + 2.0)
    return finish("pipe_bomb", "explosive", parts, fill=fill, pipe_od=od)


def ied_boxed(rng, cell) -> Item:
    """A device built into a box (lunch box, small case): a charge (block or bag of
    explosive), a circuit board with a relay or a phone board, a cell pack and wiring."""
    length, width, depth = rng.uniform(150, 240), rng.uniform(100, 170), rng.uniform(50, 80)
    material = str(rng.choice(CHARGES))
    parts = shell(rectangle(length, width), depth, rng.uniform(1.5, 2.5),
                  str(rng.choice(["abs", "polyethylene"])), coarse(cell))
    charge = (length * 0.55, width * 0.8, depth * rng.uniform(0.4, 0.8))
    at = (-length * 0.2, 0.0)
    parts += moved(wrapped_block(charge, material, cell), at)
    board_at = (length * 0.3, width * 0.2)
    board = pcb(rng, length * 0.3, width * 0.4, cell, density=1.5)
    board += upright((0, 0), 1, [(0, 6), (15, 6)], "copper", cell)  # relay coil
    parts += moved(board, board_at, w_offset=-depth * 0.3)
    pack_at = np.array([length * 0.3, -width * 0.25])
    parts += moved(cell_pack("AA", int(rng.integers(2, 5)), cell), pack_at, 90,
                   w_offset=-depth * 0.2)
    tip = np.array([at[0] + charge[0] / 2 - 20, 0.0])
    parts += detonator(tip, 0, 55, cell)
    parts += twin_wire(rng, tip + (55, 0), board_at, cell, 15)
    parts += twin_wire(rng, board_at, pack_at, cell, 15)
    return finish("ied_boxed", "explosive", parts, charge=material)


def ied_crude(rng, cell) -> Item:
    """A crude device: a bare block (80-180 x 50-100 x 20-50 mm) or 2-5 sticks (30 mm) bound
    with a broad band of tape, a plain aluminium detonator with a dense tip, a 9 V block or
    2-4 AA cells (drawn as their active mass only), twin wire, sometimes a bare timer board."""
    material = str(rng.choice(CHARGES))
    parts: Parts = []
    if rng.random() < 0.5:
        size = (rng.uniform(80, 180), rng.uniform(50, 100))
        parts.append(plate(rectangle(*size), rng.uniform(20, 50), material, coarse(cell)))
        anchor = np.array([size[0] / 2, 0.0])
    else:
        n, length = int(rng.integers(2, 6)), rng.uniform(120, 200)
        for k in range(n):
            parts += cylinder((-length / 2, k * 31), (length / 2, k * 31), 15, material,
                              coarse(cell))
        parts.append(strip([(0, -16), (0, n * 31 - 15)], 25, 32, "polyethylene", coarse(cell)))
        anchor = np.array([length / 2, 0.0])
    det_tip = anchor + [rng.uniform(-30, -10), rng.uniform(-10, 10)]
    det_end = det_tip + [rng.uniform(45, 70), 0]
    parts += cylinder(det_tip, det_end, 3.6, "aluminium", cell, inner=3.2)
    parts += cylinder(det_tip, det_tip + [10, 0], 3.1, "lead", cell)
    battery_at = anchor + [rng.uniform(60, 120), rng.uniform(-60, 60)]
    if rng.random() < 0.5:  # 9 V block: 48.5 x 26.5 x 17.5 mm
        parts.append(plate(rectangle(48.5, 26.5, battery_at), 17.5, "battery", cell))
    else:  # AA cells: 50.5 mm long, 14.5 mm across
        for k in range(int(rng.integers(2, 5))):
            at = battery_at + [0, 15 * k]
            parts += cylinder(at, at + [50.5, 0], 7.25, "battery", cell)
    parts += twin_wire(rng, det_end, battery_at, cell)
    if rng.random() < 0.5:  # timer board
        board = battery_at + [0, -55]
        parts.append(plate(rectangle(50, 35, board), 1.6, "fr4", cell))
        for _ in range(6):
            parts.append(plate(rectangle(6, 4, board + rng.uniform(-20, 20, 2)), 2, "copper",
                               cell))
        parts += twin_wire(rng, board, battery_at, cell)
    return finish("ied_crude", "explosive", parts, charge=material)


EXPLOSIVE_FAMILIES = [(ied_block, 1.5), (ied_sticks, 1.2), (pipe_bomb, 1.0), (ied_boxed, 1.0),
                      (ied_crude, 0.5)]
