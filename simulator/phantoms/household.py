"""Household goods (benign): containers of liquid and food, glass, wax, pens, umbrellas,
flasks, toiletries, food (mm). Containers lie on their side, the liquid pooled under a flat
surface.

Sizes: PET bottles 0.33-2 l (65-105 mm across), wine bottles 75 mm x 300 mm in 3 mm glass,
cans 66 x 115 mm (0.1 mm aluminium walls), food tins 73-100 mm in 0.2 mm tinplate, jars with
3 mm glass and steel lids, aerosols in 0.4 mm aluminium, stainless vacuum flasks (two 0.5 mm
walls: a pipe look-alike), folded umbrellas (steel shaft and eight ribs), pens (ink refill,
spring, brass tip), candles (paraffin wax ~ polyethylene); books (paper, some spiral-bound),
toys (an ABS toy pistol with a few screws, a toy car with steel axles).
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.geometry import (
    Parts,
    circle,
    coarse,
    cylinder,
    finish,
    lathe,
    moved,
    plate,
    prism,
    shell,
    spline,
    spring,
    strip,
    upright,
)
from simulator.phantoms.pistols import pistol_groups
from simulator.solids import Item, Slab, ellipse, ellipsoid, rectangle


def _liquid(length: float, r: float, fill: float, material: str, cell, p0=(0.0, 0.0)) -> Parts:
    """Liquid lying in a cylinder of radius r along +u: a flat surface at the fill level."""
    level = r * (2 * fill - 1) * 1.05  # roughly: fill is the share of the diameter
    p0 = np.asarray(p0, np.float64)
    return lathe(p0, p0 + (length, 0), [(0, r), (length, r)], material, coarse(cell),
                 level=level)


def _disc(u: float, r: float, t: float, material: str, cell) -> Parts:
    """A disc of radius r, t thick, across the u axis at ``u`` (a can's end)."""
    return prism((u - t / 2, 0), (u + t / 2, 0), [circle(r)], material, cell)


def bottle(rng, cell) -> Item:
    """PET bottle of water, juice or oil (0.3-0.4 mm walls, a polypropylene cap), or a glass
    bottle of wine (3 mm walls, cork or screw cap)."""
    glass = rng.random() < 0.3
    r = rng.uniform(35, 38) if glass else rng.uniform(32, 52)
    length = rng.uniform(230, 300) if glass else rng.uniform(160, 320)
    neck = 13 if glass else 12
    wall = 3.0 if glass else 0.35
    profile = [(0, r), (length * 0.7, r), (length * 0.82, neck), (length, neck)]
    bore = [(wall, 0), (wall, r - wall), (length * 0.7, r - wall), (length * 0.82, neck - wall),
            (length, neck - wall)]
    parts = lathe((0, 0), (length, 0), profile, "glass" if glass else "polyethylene",
                  coarse(cell) if not glass else cell, bore)
    fill = rng.uniform(0.2, 1.0)
    liquid = "water" if rng.random() < 0.6 else "food"
    parts += _liquid(length * 0.7, r - wall, fill, liquid, cell, (wall, 0))
    cap = "abs" if not glass or rng.random() < 0.5 else "aluminium"
    parts += cylinder((length - 2, 0), (length + 18, 0), neck + 1.5, cap, cell, inner=neck)
    return finish("bottle", None, parts, glass=glass, fill=round(fill, 2))


def drink_can(rng, cell) -> Item:
    """Beverage can: aluminium, 0.1 mm body walls and a thicker end, 66 x 115 mm (330 ml)
    or slim 58 x 146 mm; full or part full."""
    r, length = (33.0, 115.0) if rng.random() < 0.7 else (29.0, 146.0)
    parts = lathe((0, 0), (length, 0), [(0, r - 4), (5, r), (length - 8, r), (length, r - 6)],
                  "aluminium", cell, [(0.3, 0), (0.3, r - 4.3), (5, r - 0.1),
                                      (length - 8, r - 0.1), (length - 0.3, r - 6.3),
                                      (length - 0.3, 0)])
    parts += _liquid(length - 8, r - 0.2, rng.uniform(0.5, 1.0), "water", cell, (3, 0))
    return finish("drink_can", None, parts)


def food_tin(rng, cell) -> Item:
    """Tinplate food can, 0.2 mm steel with rolled beads and seamed ends, full of food."""
    r, length = rng.uniform(36, 50), rng.uniform(55, 120)
    parts = cylinder((0, 0), (length, 0), r, "steel", cell, inner=r - 0.2)
    for u in (0.5, length - 0.5):  # seamed rims and the ends (discs across the axis)
        parts += cylinder((u - 0.5, 0), (u + 0.5, 0), r + 1, "steel", cell, inner=r - 0.2)
        parts += _disc(u, r, 0.25, "steel", cell)
    parts += moved(_liquid(length - 2, r - 0.3, rng.uniform(0.8, 1.0), "food", cell), (1, 0))
    return finish("food_tin", None, parts)


def glass_jar(rng, cell) -> Item:
    """Glass jar (3-4 mm walls, thicker base) of jam, honey or pickles, with a steel lid."""
    r, length = rng.uniform(30, 50), rng.uniform(70, 140)
    wall = rng.uniform(3, 4)
    parts = lathe((0, 0), (length, 0), [(0, r), (length - 8, r), (length - 5, r - 4),
                                        (length, r - 4)], "glass", cell,
                  [(6, 0), (6, r - wall), (length - 8, r - wall), (length, r - 4 - wall)])
    parts += _liquid(length - 14, r - wall, rng.uniform(0.6, 1.0), "food", cell, (6, 0))
    parts += cylinder((length - 1, 0), (length + 8, 0), r - 2.5, "steel", cell,
                      inner=r - 2.8)
    parts += _disc(length + 8, r - 2.5, 0.3, "steel", cell)
    return finish("glass_jar", None, parts)


def aerosol(rng, cell) -> Item:
    """Aerosol can (deodorant, hairspray): 0.4 mm aluminium or tinplate, domed base, liquid,
    valve cup and plastic cap."""
    r, length = rng.uniform(22, 33), rng.uniform(110, 220)
    material = "aluminium" if rng.random() < 0.7 else "steel"
    wall = 0.4 if material == "aluminium" else 0.2
    parts = lathe((0, 0), (length, 0), [(0, r), (length - 15, r), (length - 5, r * 0.55),
                                        (length, r * 0.5)], material, cell,
                  [(1, 0), (1, r - wall), (length - 15, r - wall), (length - 5, r * 0.55 - wall),
                   (length, r * 0.5 - wall)])
    parts += _liquid(length - 20, r - wall, rng.uniform(0.2, 0.8), "water", cell, (2, 0))
    parts += cylinder((length - 2, 0), (length + 30, 0), r, "abs", coarse(cell), inner=r - 1.2)
    parts += cylinder((length - 6, 0), (length + 4, 0), 1.2, "steel", cell)  # valve stem
    return finish("aerosol", None, parts, material=material)


def cosmetics(rng, cell) -> Item:
    """Toiletries: a lotion or shampoo bottle (PE, flattened), a perfume flacon (thick glass
    with a metal pump), a lipstick (brass case) and a toothpaste tube (laminate with an
    aluminium foil layer)."""
    parts: Parts = []
    for k in range(int(rng.integers(1, 4))):
        kind = rng.choice(["lotion", "perfume", "lipstick", "toothpaste"])
        at, ang = (rng.uniform(-40, 40), k * 55.0), rng.uniform(-20, 20)
        if kind == "lotion":
            w, h = rng.uniform(50, 70), rng.uniform(130, 200)
            one = shell(ellipse(h / 2, w / 2), w * 0.6, 1.0, "polyethylene", coarse(cell))
            one.append(plate(ellipse(h / 2 - 2, w / 2 - 2), w * 0.5, "water", coarse(cell)))
        elif kind == "perfume":
            one = shell(rectangle(60, 50), 30, 5, "glass", cell)
            one.append(plate(rectangle(50, 40), 20, "water", coarse(cell)))
            one += cylinder((30, 0), (45, 0), 7, "brass", cell, inner=6)
            one += cylinder((0, 0), (28, 0), 0.8, "polyethylene", cell)
        elif kind == "lipstick":
            one = cylinder((0, 0), (75, 0), 9.5, "brass", cell, inner=9.0)
            one += cylinder((5, 0), (65, 0), 6, "polyethylene", cell)
        else:
            one = lathe((0, 0), (170, 0), [(0, 18), (150, 18), (160, 8), (170, 8)],
                        "polyethylene", coarse(cell), [(0, 17.6), (150, 17.6)])
            one.append(plate(rectangle(150, 36, (75, 0)), 0.03, "aluminium", cell))
            one += _liquid(140, 15, 0.7, "food", cell, (10, 0))
        parts += moved(one, at, ang, w_offset=rng.uniform(-10, 10))
    return finish("cosmetics", None, parts)


def mug(rng, cell) -> Item:
    """Ceramic mug (stoneware ~ glass), 80-95 mm across, 4-6 mm walls, with its handle."""
    r, height = rng.uniform(40, 48), rng.uniform(90, 110)
    wall = rng.uniform(4, 6)
    parts = upright((0, 0), 0, [(0, r), (height, r)], "glass", cell,
                    [(8, 0), (8, r - wall), (height, r - wall)])
    handle = [(r - 2, 25), (r + 25, 35), (r + 25, 75), (r - 2, 85)]
    parts.append(strip(spline(handle, 20), 10, 14, "glass", cell, w_center=height / 2))
    return finish("mug", None, parts)


def candle(rng, cell) -> Item:
    """Paraffin candles: a pillar or tapers (wax ~ polyethylene, cotton wick), or a few
    tealights in their aluminium cups."""
    if rng.random() < 0.35:
        parts: Parts = []
        for k in range(int(rng.integers(2, 7))):
            at = (k % 3 * 40.0, k // 3 * 40.0)
            parts += upright(at, 0, [(0, 19.5), (16, 19.5)], "aluminium", cell,
                             [(0.15, 0), (0.15, 19.3), (16, 19.3)])
            parts += upright(at, 0.2, [(0, 19.2), (14, 19.2)], "polyethylene", coarse(cell))
            parts.append(plate(circle(4, at), 0.3, "aluminium", cell))  # wick clip
        return finish("candle", None, parts, kind="tealights")
    r, length = rng.uniform(10, 40), rng.uniform(100, 250)
    parts = lathe((0, 0), (length, 0), [(0, r), (length - 5, r), (length, r * 0.8)],
                  "polyethylene", coarse(cell))
    parts += cylinder((-2, 0), (length + 8, 0), 0.8, "cloth", cell)
    return finish("candle", None, parts, kind="pillar")


def umbrella(rng, cell) -> Item:
    """Folded umbrella: telescopic steel (or aluminium) shaft, eight steel ribs and stretchers
    bundled round it, nylon canopy, runner, plastic handle, its strap."""
    compact = rng.random() < 0.5
    length = rng.uniform(230, 300) if compact else rng.uniform(560, 650)  # + 150 mm handle
    parts = cylinder((0, 0), (length, 0), 5.5, "steel", cell, inner=4.8)
    if compact:
        parts += cylinder((0, 0), (length * 0.9, 0), 4.3, "steel", cell, inner=3.7)
    for k in range(8):
        phi = 2 * np.pi * k / 8
        v, w = 8 * np.cos(phi), 8 * np.sin(phi)
        parts += cylinder((length * 0.1, v), (length * 0.97, v * 0.6), 0.9, "steel", cell,
                          w_center=w)
    parts += lathe((length * 0.05, 0), (length, 0), [(0, 20), (length * 0.6, 18),
                                                     (length * 0.95, 8)], "cloth",
                   coarse(cell), [(0, 19.3), (length * 0.6, 17.3), (length * 0.95, 7.3)])
    parts += cylinder((length * 0.08, 0), (length * 0.13, 0), 8, "abs", cell, inner=5.6)
    grip = [(0, 0), (-90, 0)] if compact else [(0, 0), (-120, 0), (-150, 30), (-130, 60)]
    parts.append(strip(grip, 28, 28, "abs", coarse(cell)))
    return finish("umbrella", None, parts, compact=compact)


def pens(rng, cell) -> Item:
    """A few pens and pencils: plastic barrels with ink refills (PE tube, brass tip with a
    steel ball), click springs and steel clips; wooden pencils with graphite cores; a metal
    pen now and then."""
    parts: Parts = []
    for k in range(int(rng.integers(1, 6))):
        length = rng.uniform(125, 150)
        kind = rng.choice(["ballpoint", "ballpoint", "pencil", "metal"])
        if kind == "pencil":
            one = cylinder((0, 0), (length, 0), 3.6, "wood", coarse(cell))
            one += cylinder((0, 0), (length, 0), 1.0, "glass", cell)  # graphite ~ glass here
        else:
            barrel = "brass" if kind == "metal" else "abs"
            one = cylinder((0, 0), (length, 0), 4.5, barrel, cell,
                           inner=4.5 - (0.5 if kind == "metal" else 0.9))
            one += cylinder((10, 0), (length - 8, 0), 1.5, "polyethylene", cell, inner=1.0)
            one += lathe((length - 10, 0), (length + 2, 0), [(0, 1.5), (12, 0.6)], "brass",
                         cell)
            one += spring((length * 0.55, 0), (length * 0.68, 0), 1.9, 0.25, 1.0, "steel", cell)
            one.append(strip([(8, 5), (45, 5)], 3, 0.6, "steel", cell, w_center=4))
        parts += moved(one, (rng.uniform(-15, 15), k * 12.0), rng.uniform(-8, 8),
                       w_offset=rng.uniform(-3, 3))
    return finish("pens", None, parts)


def vacuum_flask(rng, cell) -> Item:
    """Stainless vacuum flask / travel mug: two 0.5-0.6 mm steel walls a few mm apart, a
    plastic lid with a stopper; sometimes part full. A steel cylinder like a pipe bomb."""
    r, length = rng.uniform(33, 45), rng.uniform(170, 320)
    parts = cylinder((0, 0), (length, 0), r, "stainless", cell, inner=r - 0.6)
    parts += cylinder((3, 0), (length - 20, 0), r - 4, "stainless", cell, inner=r - 4.5)
    parts += _disc(0.3, r, 0.6, "stainless", cell)
    parts += cylinder((length - 25, 0), (length + 25, 0), r + 1, "abs", coarse(cell),
                      inner=r - 1)
    if rng.random() < 0.6:
        parts += _liquid(length - 25, r - 4.6, rng.uniform(0.2, 1.0), "water", cell, (3, 0))
    return finish("vacuum_flask", None, parts)


def food(rng, cell) -> Item:
    """Packed food: chocolate bars (sometimes in foil), biscuits, a bag of pasta or rice or
    coffee beans (granular: speckled), cheese, fruit."""
    kind = str(rng.choice(["bars", "biscuits", "grains", "cheese", "fruit"]))
    parts: Parts = []
    if kind == "bars":
        for k in range(int(rng.integers(1, 5))):
            parts.append(plate(rectangle(160, 75, (0, k * 80.0)), rng.uniform(8, 14), "food",
                               coarse(cell), w_center=k * 2.0))
            if rng.random() < 0.5:
                parts.append(plate(rectangle(158, 73, (0, k * 80.0)), 0.012, "aluminium",
                                   cell, w_center=k * 2.0 + 7))
    elif kind == "biscuits":
        n = int(rng.integers(15, 30))
        parts += cylinder((0, 0), (n * 7.0, 0), 32, "food", coarse(cell))
        parts += cylinder((-2, 0), (n * 7.0 + 2, 0), 33, "polyethylene", coarse(cell),
                          inner=32.9)
    elif kind == "grains":
        w, h = rng.uniform(120, 200), rng.uniform(180, 280)
        bump = rng.random((int(h / 6), int(w / 6)))

        def grainy(uv, bump=bump):  # granular fill: thickness varies grain by grain
            i = np.clip(((uv[:, 1] + h / 2) / 6).astype(int), 0, bump.shape[0] - 1)
            j = np.clip(((uv[:, 0] + w / 2) / 6).astype(int), 0, bump.shape[1] - 1)
            return 25 * (0.6 + 0.4 * bump[i, j])
        parts.append(plate(ellipse(w / 2, h / 2, n=40), grainy, "food", coarse(cell)))
    elif kind == "cheese":
        parts.append(plate([(0, 0), (140, 0), (100, 80)], 50, "food", coarse(cell)))
    else:
        for k in range(int(rng.integers(1, 6))):
            rr = rng.uniform(30, 45)
            parts.append(ellipsoid((k * 2.1 * rr, rng.uniform(-20, 20), 0), (rr, rr, rr * 0.95),
                                   "water", coarse(cell)))
    return finish("food", None, parts, kind=kind)


def book(rng, cell) -> Item:
    """A book, 130-240 x 180-310 mm, 10-45 mm of paper; one in five spiral-bound (a 1.2 mm
    steel wire coiled along the spine)."""
    w, h, t = rng.uniform(130, 240), rng.uniform(180, 310), rng.uniform(10, 45)
    parts = [plate(rectangle(w, h), t, "paper", coarse(cell))]
    if rng.random() < 0.2:
        parts += spring((-w / 2 + 5, -h / 2), (-w / 2 + 5, h / 2), 5, 0.6, 8.5, "steel", cell)
    return finish("book", None, parts)


def toy_gun(rng, cell) -> Item:
    """A toy pistol: a polymer pistol's frame, grip and trigger guard moulded in thinner ABS,
    held by a few steel screws; no barrel, slide or magazine. Gun-shaped, benign."""
    frame = pistol_groups(rng, cell, "polymer")["frame"]
    parts: Parts = [Slab("abs", s.uv, s.w_lo * 0.7, s.w_hi * 0.7, s.cell_mm) for s in frame
                    if s.material != "steel"]
    lo = np.min([s.bounds[:2] for s in parts], 0)
    hi = np.max([s.bounds[3:5] for s in parts], 0)
    for _ in range(int(rng.integers(2, 6))):
        parts.append(plate(circle(1.5, rng.uniform(lo, hi), 12), 8, "steel", cell))
    return finish("toy_gun", None, parts)


def toy_car(rng, cell) -> Item:
    """A toy car, 60-200 mm: moulded ABS body, two steel axles, rubber wheels."""
    length = rng.uniform(60, 200)
    parts = [plate(rectangle(length, length * 0.45), length * 0.3, "abs", coarse(cell))]
    for u in (-length * 0.3, length * 0.3):
        parts += cylinder((u, -length * 0.27), (u, length * 0.27), 1.2, "steel", cell)
        for v in (-length * 0.25, length * 0.25):
            parts.append(plate(circle(length * 0.09, (u, v), 24), 6, "rubber", cell))
    return finish("toy_car", None, parts)


# The weights of cans, tins, jars, pens and food include the shares of the simpler
# first-generation designs they replaced, so each kind of object is drawn as often as before.
HOUSEHOLD_FAMILIES = [(bottle, 1.2, "small"), (drink_can, 1.2, "small"),
                      (food_tin, 1.2, "small"), (glass_jar, 1.0, "small"),
                      (aerosol, 0.8, "small"), (cosmetics, 1.0, "small"), (mug, 0.5, "small"),
                      (candle, 0.4, "small"), (umbrella, 0.6, "small"), (pens, 2.2, "small"),
                      (vacuum_flask, 0.5, "small"), (food, 1.8, "small"),
                      (book, 1.0, "large"), (toy_gun, 0.6, "small"), (toy_car, 0.6, "small")]
