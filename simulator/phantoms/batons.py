"""Batons (class 'baton'), lying along u (mm).

Telescopic (expandable) batons: three nested hardened-steel tubes with a foam grip on the
handle and a solid tip, 165 / 210 / 254 mm collapsed and 410 / 530 / 660 mm extended (the
16, 21 and 26 inch sizes); handle tube ~24 mm across; light ones have thin walls throughout.
Straight batons: polycarbonate (solid, 32 mm), aluminium tube or hardwood, 450-650 mm, with a
grip; the side-handle tonfa; and the leather sap (blackjack) with its lead weight and spring.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.geometry import (
    Parts,
    coarse,
    cylinder,
    finish,
    lathe,
    plate,
    spring,
    upright,
)
from simulator.solids import Item, ellipse, ellipsoid


def telescopic(rng, cell, extended: bool) -> Parts:
    size = int(rng.choice([16, 21, 21, 26]))
    collapsed = {16: 165.0, 21: 210.0, 26: 254.0}[size] + rng.uniform(-6, 6)
    radii = [(12.0, 1.8), (9.0, 1.6), (6.5, 0.0)]  # (outer radius, wall; 0 = solid tip shaft)
    lengths = [collapsed - 12, collapsed - 20, collapsed - 26]
    overlap = 28.0  # friction-lock taper where the sections wedge together
    parts: Parts = []
    start = 0.0
    for k, ((r, wall), length) in enumerate(zip(radii, lengths, strict=True)):
        if extended and k > 0:
            start += lengths[k - 1] - overlap
        elif not extended:
            start = 4.0 * k
        parts += cylinder((start, 0), (start + length, 0), r, "steel", cell,
                          inner=r - wall if wall else 0.0)
    tip = start + lengths[-1]
    parts += lathe((tip - 2, 0), (tip + 18, 0), [(0, 6.5), (4, 8.5), (14, 8.5), (20, 5)],
                   "steel", cell)
    grip = collapsed * rng.uniform(0.5, 0.6)
    parts += cylinder((2, 0), (grip, 0), 14.5, "rubber", coarse(cell), inner=12.2)
    parts += lathe((-10, 0), (2, 0), [(0, 10), (4, 12.5), (12, 12.5)], "abs", cell)  # end cap
    if rng.random() < 0.4:  # glass breaker
        parts += lathe((-16, 0), (-9, 0), [(0, 1.0), (6, 4.0), (7, 4.0)], "steel", cell)
    return parts


def telescopic_baton_collapsed(rng, cell) -> Item:
    """Expandable baton, collapsed: the three tubes nested inside the handle."""
    return finish("telescopic_baton_collapsed", "baton", telescopic(rng, cell, False))


def telescopic_baton_extended(rng, cell) -> Item:
    """Expandable baton, extended: handle, middle and tip sections in line."""
    return finish("telescopic_baton_extended", "baton", telescopic(rng, cell, True))


def straight_baton(rng, cell) -> Item:
    """Straight baton: solid polycarbonate (32 mm), aluminium tube (25-32 mm, 1.5-2.5 mm
    wall) or hardwood (35 mm); grip section, end caps, lanyard hole."""
    length = rng.uniform(450, 650)
    kind = str(rng.choice(["polymer", "aluminium", "wood"]))
    if kind == "aluminium":
        r = rng.uniform(12.5, 16)
        parts = cylinder((0, 0), (length, 0), r, "aluminium", cell, inner=r - rng.uniform(1.5, 2.5))
        parts += lathe((-8, 0), (4, 0), [(0, r), (12, r)], "abs", cell)
        parts += lathe((length - 4, 0), (length + 8, 0), [(0, r), (12, r * 0.8)], "abs", cell)
    else:
        r = 16.0 if kind == "polymer" else rng.uniform(16, 18)
        material = "abs" if kind == "polymer" else "wood"
        parts = lathe((0, 0), (length, 0), [(0, r * 0.9), (8, r), (length - 30, r),
                                             (length, r * 0.85)], material, coarse(cell))
    grip = rng.uniform(130, 180)
    parts += cylinder((10, 0), (10 + grip, 0), r + 2.5, "rubber", coarse(cell), inner=r)
    return finish("straight_baton", "baton", parts, kind=kind)


def tonfa(rng, cell) -> Item:
    """Side-handle baton (tonfa / PR-24): a 560-610 mm polycarbonate or wood shaft, 32 mm,
    with a 140 mm handle at right angles 150 mm from one end."""
    length = rng.uniform(560, 610)
    material = "abs" if rng.random() < 0.7 else "wood"
    grid = coarse(cell)
    parts = lathe((0, 0), (length, 0), [(0, 14), (6, 16), (length - 6, 16), (length, 14)],
                  material, grid)
    at = rng.uniform(140, 160)
    parts += lathe((at, 14), (at, 150), [(0, 14), (120, 14), (126, 18), (136, 17)], material,
                   grid)
    parts += upright((at, 0), -4, [(0, 3), (8, 3)], "steel", cell)  # the handle's screw
    return finish("tonfa", "baton", parts, material=material)


def blackjack(rng, cell) -> Item:
    """Leather sap: a flat leather body 170-250 mm with a lead slug (120-300 g) or lead shot
    sewn into the wide end and a steel spring in the handle."""
    length = rng.uniform(170, 250)
    width, thick = rng.uniform(38, 60), rng.uniform(14, 22)
    body = [(0, -width * 0.25), (length * 0.55, -width * 0.2), (length, -width / 2),
            (length, width / 2), (length * 0.55, width * 0.2), (0, width * 0.25)]
    parts = [plate(body, thick, "leather", coarse(cell))]
    lead_g = rng.uniform(120, 300)
    volume = lead_g / 11.35 * 1000  # mm^3
    a = np.cbrt(volume / (np.pi * 4 / 3 * 0.45 * 0.22))  # ellipsoid a : b : c = 1 : .45 : .22
    parts.append(ellipsoid((length - a * 1.05, 0, 0), (a, a * 0.45, a * 0.22), "lead", cell))
    parts += spring((8, 0), (length * 0.6, 0), 4.0, 0.8, 3.0, "steel", cell)
    parts.append(plate(ellipse(6, 4, (-2, 0)), 6, "leather", cell))  # wrist loop knot
    return finish("blackjack", "baton", parts, lead_g=round(lead_g))


def telescopic_baton_light(rng, cell) -> Item:
    """A light expandable baton, collapsed or extended: three thin-walled (1.4 mm) steel tubes
    of 160-220 mm, 25 / 20 / 15 mm across, the tip section hollow too, with a rubber grip
    sleeve and a short solid tip."""
    seg = rng.uniform(160, 220)
    extended = rng.random() < 0.5
    parts: Parts = []
    for k, r in enumerate((12.5, 10.0, 7.5)):
        start = k * (seg - 20) if extended else k * 6
        parts += cylinder((start, 0), (start + seg, 0), r, "steel", cell, inner=r - 1.4)
    parts += cylinder((0, 0), (seg * 0.6, 0), 14.5, "rubber", coarse(cell), inner=12.6)
    tip = 2 * (seg - 20) + seg if extended else seg + 12
    parts += cylinder((tip - 12, 0), (tip, 0), 8, "steel", cell)
    return finish("telescopic_baton_light", "baton", parts, extended=extended)


# Weights include the shares of the simpler first-generation designs these replaced, so
# each kind of object is drawn as often as before.
BATON_FAMILIES = [(telescopic_baton_collapsed, 2.0), (telescopic_baton_extended, 1.5),
                  (straight_baton, 1.5), (tonfa, 0.6), (blackjack, 0.5),
                  (telescopic_baton_light, 1.0)]
