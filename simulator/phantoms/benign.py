"""Benign clutter, hard negatives first: tools, scissors, keys, buckles, electronics, cables,
bottles, cans, books, clothes, shoes, toys. Dimensions in mm from common products.

``large`` items (clothes, books, laptops) fill space; ``small`` ones lie among them.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.shapes import band, disc, plate, ring, slab, smooth_noise
from simulator.phantoms.threats import centred, pistol
from simulator.solids import Item, ellipse, ellipsoid, rectangle, rod, transform


def _finish(name, parts, rng) -> Item:
    return centred(Item(name, parts, None)).transformed(angle_deg=float(rng.uniform(0, 360)))


def wrench(rng, cell):
    """Combination spanner 100-300 mm long, open end and ring end."""
    length = rng.uniform(100, 300)
    jaw = length * 0.09 + 8
    parts = [band([(-length / 2 + jaw, 0), (length / 2 - jaw, 0)], jaw * 0.6, 5, "steel", cell)]
    parts.append(ring((length / 2 - jaw * 0.6, 0), jaw * 0.55, jaw * 0.4, 7, "steel", cell))
    parts.append(ring((-length / 2 + jaw * 0.6, 0), jaw * 0.55, jaw * 0.4, 6, "steel", cell,
                      arc=(40, 320)))
    return _finish("wrench", parts, rng)


def belt_buckle(rng, cell):
    w, h = rng.uniform(40, 70), rng.uniform(35, 55)
    parts = [band(rectangle(w, h), 6, 4, "zinc", cell, closed=True)]
    parts.append(band([(-w / 2, 0), (w / 2 - 3, 0)], 3, 3, "steel", cell))
    parts.append(plate(rectangle(120, 35, (-w / 2 - 60, 0)), 3.5, "leather", cell))
    return _finish("belt_buckle", parts, rng)


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


def pen(rng, cell):
    length = rng.uniform(130, 150)
    parts = rod((0, 0), (length, 0), 4.5, "abs", cell, inner_radius=3.5)
    parts += rod((10, 0), (30, 0), 2, "steel", cell, inner_radius=1.6)
    parts += rod((length - 6, 0), (length + 4, 0), 1.5, "brass", cell)
    return _finish("pen", parts, rng)


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
    (wrench, 1.0, "small"), (belt_buckle, 1.0, "small"), (charger, 1.0, "small"),
    (pen, 1.0, "small"), (can, 0.8, "small"), (jar, 0.4, "small"), (shoe, 1.0, "small"),
    (toy_gun, 0.6, "small"), (toy_car, 0.6, "small"), (tablet_toolkit, 0.6, "small"),
    (food_block, 0.8, "small"), (book, 1.0, "large"), (clothes, 3.0, "large"),
]
