"""Benign clutter, hard negatives first: tools, scissors, keys, buckles, electronics, cables,
bottles, cans, books, clothes, shoes, toys. Dimensions in mm from common products.

``large`` items (clothes, books, laptops) fill space; ``small`` ones lie among them.
"""

from __future__ import annotations

import numpy as np

from edge.scanner.phantoms.shapes import band, bevel, disc, plate, ring, slab, smooth_noise
from edge.scanner.phantoms.threats import centred, pistol
from edge.scanner.solids import Item, ellipse, ellipsoid, rectangle, rod, rotate_2d, transform


def _finish(name, parts, rng) -> Item:
    return centred(Item(name, parts, None)).transformed(angle_deg=float(rng.uniform(0, 360)))


def pliers(rng, cell):
    """Combination pliers 160-250 mm: two forged steel halves crossing at a pivot, PVC grips."""
    length = rng.uniform(160, 250)
    spread = rng.uniform(4, 12)
    parts = []
    for sign in (-1, 1):
        jaw = [(0, 0), (length * 0.3, sign * 3), (length * 0.3, sign * 9), (0, sign * 10)]
        handle = [(0, 0), (-length * 0.7, sign * spread * 2.5)]
        parts.append(plate(jaw, 9, "steel", cell, w_center=sign * 2.5))
        parts.append(band(handle, 9, 8, "steel", cell, w_center=sign * 2.5))
        grip = [(-length * 0.2, sign * spread * 0.8), (-length * 0.7, sign * spread * 2.5)]
        parts.append(band(grip, 16, 14, "pvc", cell))
    parts.append(disc((0, 0), 6, 12, "steel", cell))
    return _finish("pliers", parts, rng)


def scissors(rng, cell):
    """Scissors 130-250 mm: two stainless blades, plastic finger loops."""
    length = rng.uniform(130, 250)
    opening = rng.uniform(0, 25)
    parts = []
    for sign in (-1, 1):
        blade = [(0, 0), (length * 0.55, sign * 1.5), (length * 0.55, sign * 4), (0, sign * 9)]
        b = plate(blade, bevel(sign * 9, 0, 2.0), "stainless", cell, w_center=sign * 1.1)
        parts.append(transform(b, sign * opening / 2))
        centre = rotate_2d(np.array([[-length * 0.3, sign * 14.0]]), sign * opening / 2)[0]
        parts.append(ring(centre, 13, 5, 8, "abs", cell, aspect=0.7))
        parts.append(band([(0, 0), centre], 6, 3, "stainless", cell))
    parts.append(disc((0, 0), 3, 5, "steel", cell))
    return _finish("scissors", parts, rng)


def wrench(rng, cell):
    """Combination spanner 100-300 mm long, open end and ring end."""
    length = rng.uniform(100, 300)
    jaw = length * 0.09 + 8
    parts = [band([(-length / 2 + jaw, 0), (length / 2 - jaw, 0)], jaw * 0.6, 5, "steel", cell)]
    parts.append(ring((length / 2 - jaw * 0.6, 0), jaw * 0.55, jaw * 0.4, 7, "steel", cell))
    parts.append(ring((-length / 2 + jaw * 0.6, 0), jaw * 0.55, jaw * 0.4, 6, "steel", cell,
                      arc=(40, 320)))
    return _finish("wrench", parts, rng)


def screwdriver(rng, cell):
    shaft = rng.uniform(60, 200)
    r = rng.uniform(2, 4)
    parts = rod((0, 0), (shaft, 0), r, "steel", cell)
    parts += rod((-rng.uniform(80, 110), 0), (0, 0), rng.uniform(12, 17), "abs", cell)
    return _finish("screwdriver", parts, rng)


def keys(rng, cell):
    """A key ring with 2-6 keys (brass or nickel-steel, 2 mm, 45-70 mm long)."""
    parts = [ring((0, 0), 13, 1.6, 1.6, "steel", cell)]
    for k in range(int(rng.integers(2, 7))):
        length = rng.uniform(45, 70)
        angle = rng.uniform(-60, 60) + 40 * k
        bow = ellipse(13, 11, (20, 0))
        teeth = [(30, 4), (20 + length, 4)] + [(20 + length - j * 5, -4 + 2 * (j % 2))
                                               for j in range(int(length // 5))] + [(30, -4)]
        material = str(rng.choice(["brass", "stainless"]))
        key = [plate(bow, 2.2, material, cell, holes=[(13, 0, 3)]), plate(teeth, 2.2, material,
                                                                             cell)]
        parts += [transform(s, angle, w_offset=k * 2.5) for s in key]
    return _finish("keys", parts, rng)


def coins(rng, cell):
    parts = []
    for _ in range(int(rng.integers(1, 9))):
        r = rng.uniform(8, 14)
        parts.append(disc(rng.uniform(-25, 25, 2), r, rng.uniform(1.5, 2.3),
                          str(rng.choice(["copper", "brass", "steel", "zinc"])), cell))
    return _finish("coins", parts, rng)


def belt_buckle(rng, cell):
    w, h = rng.uniform(40, 70), rng.uniform(35, 55)
    parts = [band(rectangle(w, h), 6, 4, "zinc", cell, closed=True)]
    parts.append(band([(-w / 2, 0), (w / 2 - 3, 0)], 3, 3, "steel", cell))
    parts.append(plate(rectangle(120, 35, (-w / 2 - 60, 0)), 3.5, "leather", cell))
    return _finish("belt_buckle", parts, rng)


def stapler(rng, cell):
    length = rng.uniform(120, 180)
    parts = [plate(rectangle(length, 25), 4, "steel", cell, w_center=-18)]
    parts.append(plate(rectangle(length * 0.95, 20), 1.2, "steel", cell, w_center=10))
    parts.append(plate(rectangle(length, 35), 30, "abs", cell))
    parts.append(band([(-length * 0.3, 0), (length * 0.2, 0)], 8, 1, "steel", cell))  # spring
    return _finish("stapler", parts, rng)


def hair_dryer(rng, cell):
    """Body tube with motor (steel + copper coil) and heating wire; handle with cable."""
    parts = rod((0, 0), (200, 0), 40, "abs", cell, inner_radius=37)
    parts += rod((20, 0), (60, 0), 18, "copper", cell, inner_radius=12)
    parts += rod((20, 0), (60, 0), 11, "steel", cell)
    parts += rod((90, 0), (160, 0), 28, "steel", cell, inner_radius=27.6)
    parts.append(plate(rectangle(40, 120, (40, -90)), 30, "abs", cell))
    parts.append(band([(40, -150), (60, -260), (20, -330)], 6, 6, "pvc", cell))
    parts.append(band([(40, -150), (60, -260), (20, -330)], 2, 1.5, "copper", cell))
    return _finish("hair_dryer", parts, rng)


def charger(rng, cell):
    """Phone charger: plastic shell, small board with a transformer (ferrite+copper), pins."""
    size = rng.uniform(30, 50)
    parts = [plate(rectangle(size, size), size * 0.8, "abs", cell)]
    parts.append(plate(rectangle(size * 0.8, size * 0.8), 1.6, "fr4", cell))
    parts.append(plate(rectangle(12, 12, (0, 4)), 12, "copper", cell))
    for sign in (-1, 1):
        parts.append(plate(rectangle(19, 2, (size / 2 + 9, sign * 6)), 6, "brass", cell))
    parts.append(band([(-size / 2, 0), (-size / 2 - 60, 20), (-size / 2 - 100, -30)], 4, 3,
                      "pvc", cell))
    return _finish("charger", parts, rng)


def phone(rng, cell):
    w, h = rng.uniform(65, 80), rng.uniform(140, 165)
    parts = [plate(rectangle(w, h), 1.2, "glass", cell, w_center=3.5)]
    parts.append(plate(rectangle(w - 10, h * 0.55, (0, -h * 0.12)), 4.5, "battery", cell))
    parts.append(plate(rectangle(w - 12, h * 0.3, (0, h * 0.3)), 1.2, "fr4", cell))
    parts.append(band(rectangle(w, h), 2.5, 8, "aluminium", cell, closed=True))
    parts.append(plate(rectangle(12, 12, (w * 0.25, h * 0.4)), 4, "steel", cell))  # camera
    return _finish("phone", parts, rng)


def power_bank(rng, cell):
    n = int(rng.integers(1, 5))
    parts = []
    for k in range(n):  # 18650 cells: 18 mm across, 65 mm long
        parts += rod((0, k * 18.5), (65, k * 18.5), 9, "battery", cell)
    parts.append(plate(rectangle(75, n * 18.5 + 6, (32, (n - 1) * 9.25)), 2, "abs", cell))
    return _finish("power_bank", parts, rng)


def cable(rng, cell):
    """A coiled charging or power cable."""
    turns = rng.uniform(2, 6)
    r = rng.uniform(25, 60)
    phi = np.linspace(0, 2 * np.pi * turns, int(60 * turns))
    pts = np.stack([r * np.cos(phi) + rng.normal(0, 3, len(phi)).cumsum() * 0.3,
                    r * 0.7 * np.sin(phi) + phi * 2], 1)
    width = rng.uniform(3, 7)
    return _finish("cable", [band(pts, width, width * 0.8, "pvc", cell),
                             band(pts, width * 0.35, width * 0.25, "copper", cell)], rng)


def pen(rng, cell):
    length = rng.uniform(130, 150)
    parts = rod((0, 0), (length, 0), 4.5, "abs", cell, inner_radius=3.5)
    parts += rod((10, 0), (30, 0), 2, "steel", cell, inner_radius=1.6)
    parts += rod((length - 6, 0), (length + 4, 0), 1.5, "brass", cell)
    return _finish("pen", parts, rng)


def umbrella(rng, cell):
    """Folded umbrella: steel shaft, 8 ribs alongside, fabric, plastic handle."""
    length = rng.uniform(230, 350)
    parts = rod((0, 0), (length, 0), 5, "steel", cell, inner_radius=4)
    for k in range(8):
        parts += [transform(s, 0, (0, 0), w_offset=4 * np.cos(k)) for s in
                  rod((30, 7 * np.sin(k)), (length - 10, 7 * np.sin(k)), 1.0, "steel", cell)]
    parts += rod((0, 0), (length, 0), 18, "cloth", cell, inner_radius=16)
    parts += rod((-90, 0), (0, 0), 14, "abs", cell)
    return _finish("umbrella", parts, rng)


def bottle(rng, cell):
    """PET / PE bottle of water or juice, 0.5-1.5 l."""
    r, length = rng.uniform(30, 45), rng.uniform(180, 300)
    fill = rng.uniform(0.3, 1.0)
    parts = rod((0, 0), (length, 0), r, "polyethylene", cell, inner_radius=r - 0.4)
    parts += rod((0, 0), (length * fill, 0), r - 0.5, str(rng.choice(["water", "food"])), cell)
    parts += rod((length, 0), (length + 25, 0), 13, "polyethylene", cell)
    return _finish("bottle", parts, rng)


def can(rng, cell):
    """Drink can (aluminium) or food tin (steel), full."""
    steel = rng.random() < 0.5
    r, length = (rng.uniform(35, 50), rng.uniform(70, 120)) if steel else (33, 115)
    parts = rod((0, 0), (length, 0), r, "steel" if steel else "aluminium", cell,
                inner_radius=r - (0.25 if steel else 0.12))
    parts += rod((1, 0), (length - 1, 0), r - 0.5, "food" if steel else "water", cell)
    return _finish("tin" if steel else "drink_can", parts, rng)


def jar(rng, cell):
    r, length = rng.uniform(35, 50), rng.uniform(80, 140)
    parts = rod((0, 0), (length, 0), r, "glass", cell, inner_radius=r - 3)
    parts += rod((3, 0), (length - 3, 0), r - 3.2, "food", cell)
    parts += rod((length, 0), (length + 10, 0), r + 1, "steel", cell, inner_radius=r + 0.7)
    return _finish("jar", parts, rng)


def shoe(rng, cell):
    length = rng.uniform(240, 310)
    sole = ellipse(length / 2, length * 0.18)
    parts = [plate(sole, rng.uniform(15, 30), "rubber", cell)]
    parts.append(plate(ellipse(length * 0.45, length * 0.16, (5, 0)), 3, "leather", cell,
                       w_center=35))
    parts.append(band([(-length * 0.1, 0), (length * 0.15, 0)], 12, 1.5, "steel", cell))
    for k in range(int(rng.integers(0, 8))):  # eyelets
        parts.append(ring((length * (0.05 + 0.04 * k), 15), 2.5, 1.2, 1.5, "brass", cell))
    return _finish("shoe", parts, rng)


def toy_gun(rng, cell):
    """A plastic toy pistol with a few screws: gun-shaped, benign."""
    parts = [transform(s) for s in pistol(rng, cell, polymer=True, loaded=False)
             if s.material != "steel"]
    parts = [slab(p.uv, (p.w_hi - p.w_lo) * 0.7, "abs", cell) for p in parts]
    for _ in range(int(rng.integers(2, 6))):
        parts.append(disc(rng.uniform(-40, 40, 2), 1.5, 8, "steel", cell))
    return _finish("toy_gun", parts, rng)


def toy_car(rng, cell):
    length = rng.uniform(60, 200)
    parts = [plate(rectangle(length, length * 0.45), length * 0.3, "abs", cell)]
    for u in (-length * 0.3, length * 0.3):
        parts += rod((u, -length * 0.27), (u, length * 0.27), 1.2, "steel", cell)
        for v in (-length * 0.25, length * 0.25):
            parts.append(disc((u, v), length * 0.09, 6, "rubber", cell))
    return _finish("toy_car", parts, rng)


def zip_fastener(rng, cell):
    """A loose zip: a run of metal teeth along a curve, with its slider."""
    length = rng.uniform(150, 500)
    t = np.linspace(0, 1, 40)[:, None]
    pts = np.hstack([t * length, np.sin(t * rng.uniform(1, 4)) * rng.uniform(5, 40)])
    teeth = band(pts, 6, 2.5, str(rng.choice(["brass", "zinc", "abs"])), cell)
    tape = band(pts, 28, 0.8, "cloth", cell)
    return _finish("zip", [teeth, tape, plate(rectangle(12, 10, pts[5]), 5, "zinc", cell)], rng)


def candle(rng, cell):
    r, length = rng.uniform(20, 40), rng.uniform(60, 200)
    return _finish("candle", rod((0, 0), (length, 0), r, "polyethylene", cell), rng)


def book(rng, cell):
    w, h, t = rng.uniform(130, 240), rng.uniform(180, 310), rng.uniform(10, 45)
    parts = [plate(rectangle(w, h), t, "paper", cell * 2)]
    if rng.random() < 0.2:  # spiral binding
        parts.append(band([(-w / 2 + 5, -h / 2), (-w / 2 + 5, h / 2)], 8, 8, "steel", cell))
    return _finish("book", parts, rng)


def clothes(rng, cell):
    """Folded garments: cloth whose thickness varies with folds and layers, sometimes with
    buttons, a zip or a metal logo."""
    w, h = rng.uniform(150, 450), rng.uniform(120, 350)
    layers = rng.uniform(4, 40)
    coarse = cell * 3
    outline = ellipse(w / 2, h / 2) if rng.random() < 0.3 else rectangle(w, h)
    base = plate(outline, 1.0, "cloth", coarse)
    uv = base.uv.astype(np.float64)
    field = smooth_noise(rng, (64, 64), 8)
    iu = ((uv[:, 0] / w + 0.5) * 63).clip(0, 63).astype(int)
    iv = ((uv[:, 1] / h + 0.5) * 63).clip(0, 63).astype(int)
    thickness = layers * (0.4 + field[iv, iu]) * 0.35  # cloth fills about a third of a fold
    parts = [slab(uv, thickness, "cloth", coarse)]
    for _ in range(int(rng.poisson(2))):
        parts.append(disc(rng.uniform(-w / 3, w / 3, 2), rng.uniform(5, 9), 2.5,
                          str(rng.choice(["abs", "zinc"])), cell))
    return _finish("clothes", parts, rng)


def laptop(rng, cell):
    """Laptop: aluminium shell, battery cells, main board, hinge, screen glass."""
    w, h = rng.uniform(300, 360), rng.uniform(200, 250)
    parts = [plate(rectangle(w, h), 1.2, "aluminium", cell * 2, w_center=w_) for w_ in (-8, 8)]
    parts.append(plate(rectangle(w - 20, 60, (0, -h / 2 + 45)), 6, "battery", cell))
    parts.append(plate(rectangle(w * 0.5, h * 0.4, (-w * 0.15, h * 0.1)), 1.6, "fr4", cell))
    for k in range(12):  # chips on the board
        parts.append(plate(rectangle(10, 10, (-w * 0.3 + 12 * k, h * 0.1)), 1.5, "copper",
                           cell))
    parts.append(plate(rectangle(w - 6, h - 6), 1.0, "glass", cell * 2))
    for sign in (-1, 1):
        parts += rod((sign * w * 0.3 - 12, h / 2 - 6), (sign * w * 0.3 + 12, h / 2 - 6), 4,
                     "steel", cell)
    return _finish("laptop", parts, rng)


def tablet_toolkit(rng, cell):
    """A small toolkit: plastic case with screwdriver bits (steel) in a row."""
    n = int(rng.integers(6, 20))
    parts = [plate(rectangle(n * 9 + 20, 60), 18, "abs", cell)]
    for k in range(n):
        parts += rod((-n * 4.5 + 9 * k, -12), (-n * 4.5 + 9 * k, 13), 3.2, "steel", cell)
    return _finish("bit_set", parts, rng)


def food_block(rng, cell):
    w, h = rng.uniform(80, 200), rng.uniform(60, 150)
    parts = [ellipsoid((0, 0, 0), (w / 2, h / 2, rng.uniform(15, 40)), "food", cell * 2)]
    return _finish("food", parts, rng)


# (builder, weight, size): tools and metal look-alikes weigh most (hard negatives).
BENIGN_BUILDERS = [
    (pliers, 1.5, "small"), (scissors, 2.0, "small"), (wrench, 1.2, "small"),
    (screwdriver, 1.2, "small"), (keys, 2.0, "small"), (coins, 1.0, "small"),
    (belt_buckle, 1.0, "small"), (stapler, 0.8, "small"), (hair_dryer, 0.6, "small"),
    (charger, 1.5, "small"), (phone, 1.2, "small"), (power_bank, 1.0, "small"),
    (cable, 2.0, "small"), (pen, 1.5, "small"), (umbrella, 0.8, "small"),
    (bottle, 1.0, "small"), (can, 1.0, "small"), (jar, 0.5, "small"), (shoe, 1.0, "small"),
    (toy_gun, 0.5, "small"), (toy_car, 0.6, "small"), (zip_fastener, 1.5, "small"),
    (candle, 0.4, "small"), (tablet_toolkit, 0.6, "small"), (food_block, 0.8, "small"),
    (book, 1.0, "large"), (clothes, 3.0, "large"), (laptop, 0.8, "large"),
]
