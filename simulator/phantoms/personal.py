"""Small personal items (benign; most are small dense metal), lying flat (mm).

Keys (cylinder keys 50-60 mm, 2-2.4 mm brass or nickel silver) on a split ring, coins (16-32
mm, 1.5-3.2 mm), a wallet with coins and cards (85.6 x 54 x 0.76 mm PVC), a belt with its
buckle, a zip (metal teeth ~3 mm pitch on fabric tapes), jewellery (gold and silver drawn as
lead, their closest attenuation in the table), a wristwatch, spectacles, cutlery, nail
clippers and lighters; and what people wear: shoes (240-310 mm, rubber sole, steel shank) and
folded clothes (cloth in layers, with buttons).
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.geometry import (
    Parts,
    circle,
    coarse,
    copies,
    cylinder,
    finish,
    moved,
    plate,
    shell,
    smooth_noise,
    spline,
    strip,
    tube,
    upright,
)
from simulator.solids import Item, ellipse, rectangle

COIN_METALS = ("copper", "brass", "steel", "zinc", "brass")


def key(rng, cell) -> Parts:
    """One key along +u from its bow's hole at the origin: cylinder key with a cut blade, or a
    car key with a plastic head."""
    length = rng.uniform(45, 62)
    material = str(rng.choice(["brass", "brass", "stainless"]))
    if rng.random() < 0.2:  # car key: ABS head with a transponder chip
        head = [plate(ellipse(15, 11, (12, 0)), 9, "abs", coarse(cell)),
                plate(rectangle(8, 5, (14, 0)), 1.2, "fr4", cell)]
        blade = [plate(rectangle(length - 25, 8.5, (25 + (length - 25) / 2, 0)), 2.4,
                       "stainless", cell)]
        return head + blade + [plate(circle(2.5, (3, 0)), 9, "abs", cell)]
    cuts = np.linspace(20, length - 2, 6)
    depths = rng.uniform(0.5, 3.0, 6)
    edge = [(20, -4.2)] + [(u, -4.2 + d) for u, d in zip(cuts, depths, strict=True)] + \
        [(length, 0.5), (length, 4.2), (20, 4.2)]
    bow = circle(12, (10, 0), 24)
    return [plate(bow, 2.2, material, cell, holes=[circle(2.6, (3, 0), 12)]),
            plate(edge, 2.2, material, cell)]


def keys(rng, cell) -> Item:
    """2-8 keys on a steel split ring, sometimes with a fob or a bottle opener."""
    r = rng.uniform(11, 16)
    parts = tube(circle(r, n=48), 0.8, "steel", cell, closed=True, w_center=-1)
    parts += tube(circle(r - 0.2, n=48), 0.8, "steel", cell, closed=True, w_center=0.6)
    n = int(rng.integers(2, 9))
    for k in range(n):
        angle = rng.uniform(-40, 40) + 360 * k / n
        a = np.radians(angle)
        at = (r - 3) * np.array([np.cos(a), np.sin(a)]) - 3 * np.array([np.cos(a), np.sin(a)])
        parts += moved(key(rng, cell), at, angle, w_offset=rng.uniform(-4, 4))
    if rng.random() < 0.4:
        parts += moved([plate(rectangle(45, 22, (26, 0)), 4, "abs", coarse(cell))], (0, 0),
                       rng.uniform(0, 360), w_offset=5)
    return finish("keys", None, parts, count=n)


def _coin(rng, cell) -> Parts:
    d, t = rng.uniform(16, 32), rng.uniform(1.5, 3.2)
    if rng.random() < 0.25:  # bimetallic: a brass ring round a steel centre
        return [plate(circle(d / 2), t, "brass", cell, holes=[circle(d * 0.33)]),
                plate(circle(d * 0.33), t, "steel", cell)]
    return [plate(circle(d / 2), t, str(rng.choice(COIN_METALS)), cell)]


def coins(rng, cell) -> Item:
    """Loose change: 1-12 coins scattered and overlapping, or a stacked roll."""
    n = int(rng.integers(1, 13))
    parts: Parts = []
    if rng.random() < 0.2:  # a paper roll of identical coins, lying on its side
        d, t = rng.uniform(18, 28), rng.uniform(1.6, 2.4)
        count = int(rng.integers(10, 41))
        parts = cylinder((0, 0), (count * t, 0), d / 2, str(rng.choice(COIN_METALS)), cell)
        parts += cylinder((-1, 0), (count * t + 1, 0), d / 2 + 0.3, "paper", cell,
                          inner=d / 2)
        return finish("coins", None, parts, count=count)
    for _ in range(n):
        parts += moved(_coin(rng, cell), rng.uniform(-12, 12, 2) * np.sqrt(n),
                       w_offset=rng.uniform(-3, 3))
    return finish("coins", None, parts, count=n)


def wallet(rng, cell) -> Item:
    """Leather wallet with cards (PVC, a few with chip and antenna), notes and coins."""
    w, h = rng.uniform(95, 120), rng.uniform(75, 100)
    parts = shell(rectangle(w, h), rng.uniform(10, 18), 1.6, "leather", coarse(cell))
    for k in range(int(rng.integers(2, 9))):
        parts.append(plate(rectangle(85.6, 54, (0, 5)), 0.76, "pvc", coarse(cell),
                           w_center=-4 + k * 0.9))
        if k % 3 == 0:
            parts.append(plate(rectangle(11, 9, (-28, 8)), 0.4, "copper", cell,
                               w_center=-4 + k * 0.9))
    parts.append(plate(rectangle(w - 8, h - 10), 1.5, "paper", coarse(cell), w_center=3))
    for _ in range(int(rng.integers(0, 6))):
        parts += moved(_coin(rng, cell), rng.uniform([-w / 3, -h / 3], [w / 3, -h / 5]),
                       w_offset=5)
    return finish("wallet", None, parts)


def belt(rng, cell) -> Item:
    """A leather belt (30-40 mm, 3-4 mm) rolled up on edge or lying coiled, with its buckle
    (zinc alloy, steel or brass frame and prong)."""
    width, t = rng.uniform(30, 40), rng.uniform(3, 4)
    length = rng.uniform(900, 1200)
    if rng.random() < 0.5:  # rolled: a spiral standing on the belt's edge
        turns = length / (2 * np.pi * 40)
        phi = np.linspace(0, 2 * np.pi * turns, int(80 * turns))
        r = 20 + (t + 0.8) * phi / (2 * np.pi)
        path = np.stack([r * np.cos(phi), r * np.sin(phi)], 1)
        parts = [strip(path, t, width, "leather", cell)]
        end = path[-1]
        buckle_w = 0.0
    else:  # lying loosely coiled in the plane
        path = spline(rng.uniform(-120, 120, (7, 2)), 60)
        parts = [strip(path, width, t, "leather", coarse(cell))]
        end = path[-1]
        buckle_w = t
    frame = rectangle(rng.uniform(40, 60), width + 12, end)
    metal = str(rng.choice(["zinc", "steel", "brass"]))
    parts.append(strip(np.vstack([frame, frame[:1]]), 5, 4, metal, cell, w_center=buckle_w))
    parts.append(strip([end - (15, 0), end + (15, 0)], 3, 3, metal, cell, w_center=buckle_w))
    return finish("belt", None, parts)


def zip_fastener(rng, cell) -> Item:
    """A zip: interlocking teeth (brass, zinc, aluminium or moulded plastic) ~3 mm apart on
    two fabric tapes, a die-cast slider with its pull, stops; straight or curving as on a
    loose garment."""
    length = rng.uniform(150, 600)
    bend = rng.uniform(0, 60)
    path = spline([(0, 0), (length / 3, rng.uniform(-bend, bend)),
                   (2 * length / 3, rng.uniform(-bend, bend)), (length, 0)], 200)
    step = np.diff(path, axis=0)
    seg = np.hypot(*step.T)
    s = np.concatenate([[0], np.cumsum(seg)])
    pitch = rng.uniform(2.8, 3.4)
    at_s = np.arange(2, s[-1] - 2, pitch / 2)
    at = np.stack([np.interp(at_s, s, path[:, 0]), np.interp(at_s, s, path[:, 1])], 1)
    ang = np.degrees(np.arctan2(np.interp(at_s, s[1:], step[:, 1]),
                                np.interp(at_s, s[1:], step[:, 0])))
    side = np.where(np.arange(len(at)) % 2 == 0, 1.0, -1.0)
    normal = np.stack([-np.sin(np.radians(ang)), np.cos(np.radians(ang))], 1)
    material = str(rng.choice(["brass", "zinc", "aluminium", "abs"]))
    tooth = [plate(rectangle(1.6, 5.5), 2.6, material, cell)]
    parts = copies(tooth, at + normal * side[:, None] * 1.0, angles=ang)
    parts.append(strip(path, 30, 0.7, "cloth", coarse(cell)))
    slide_at = at[int(rng.integers(0, len(at)))]
    parts.append(plate(rectangle(14, 12, slide_at), 6, "zinc", cell))
    parts.append(plate(rectangle(20, 8, slide_at + (0, -12)), 1.5, "zinc", cell, w_center=3))
    return finish("zip_fastener", None, parts, teeth=material, length_mm=round(length))


def jewellery(rng, cell) -> Item:
    """A few pieces in a pouch: chains with a pendant, rings, a bangle, earrings; gold and
    silver (as lead), steel, brass or zinc fashion jewellery."""
    parts: Parts = [plate(ellipse(55, 40), 1.0, "cloth", coarse(cell), w_center=-6)]
    for _ in range(int(rng.integers(1, 6))):
        metal = str(rng.choice(["lead", "lead", "stainless", "brass", "zinc"]))
        kind = rng.choice(["chain", "ring", "bangle", "earring"])
        at = rng.uniform(-30, 30, 2)
        if kind == "chain":
            path = spline(at + rng.uniform(-35, 35, (6, 2)), 80, closed=True)
            parts += tube(path, rng.uniform(0.5, 1.1), metal, cell, closed=True)
            parts.append(plate(circle(rng.uniform(5, 11), path[0]), 1.5, metal, cell))
        elif kind == "ring":
            parts += tube(circle(9.5, at, 32), rng.uniform(0.9, 1.6), metal, cell, closed=True)
        elif kind == "bangle":
            parts += tube(circle(32, at, 64), 1.8, metal, cell, closed=True)
        else:
            parts.append(plate(circle(4, at), 1.2, metal, cell))
            parts += tube(circle(6, at + (0, 6), 20), 0.4, metal, cell, closed=True)
    return finish("jewellery", None, parts)


def watch(rng, cell) -> Item:
    """Wristwatch face up, strap laid open: steel case 36-46 mm, brass movement, coin cell or
    mainspring barrel, crystal, caseback; steel link bracelet or leather strap."""
    d = rng.uniform(36, 46)
    r, h = d / 2, rng.uniform(9, 14)
    parts = upright((0, 0), -h / 2, [(0, r * 0.95), (h, r)], "stainless", cell,
                    [(1.0, 0), (1.0, r - 2), (h - 1.5, r - 2)])
    parts += upright((0, 0), -h / 2 + 1.2, [(0, r - 2.2), (4, r - 2.2)], "brass", cell)
    parts += upright((0, 0), -h / 2 + 5.3, [(0, 5.8), (2.1, 5.8)], "steel", cell)
    parts.append(plate(circle(r - 2), 2.0, "glass", cell, w_center=h / 2 - 1))
    parts += cylinder((r + 1, 0), (r + 3.5, 0), 1.2, "steel", cell)  # crown
    strap_w = d * 0.5
    metal = rng.random() < 0.5
    for side in (-1, 1):
        path = [(0, side * (r - 2)), (0, side * (r + rng.uniform(70, 90)))]
        parts.append(strip(path, strap_w, 3.5 if metal else 3.0, "stainless" if metal else
                           "leather", cell if metal else coarse(cell)))
    if not metal:
        parts.append(strip(rectangle(strap_w + 4, 14, (0, r + 12)), 2.0, 2.5, "stainless",
                           cell, closed=True))  # the strap's buckle
    return finish("watch", None, parts, bracelet=metal)


def spectacles(rng, cell) -> Item:
    """Folded spectacles: metal wire or acetate frame, polycarbonate or glass lenses, the
    temples folded behind (steel core wire in acetate), small hinges."""
    lens_w, lens_h = rng.uniform(46, 56), rng.uniform(30, 42)
    metal = rng.random() < 0.5
    lens_mat = "glass" if rng.random() < 0.3 else "abs"
    parts: Parts = []
    for side in (-1, 1):
        centre = (side * (lens_w / 2 + 9), 0)
        rim = ellipse(lens_w / 2, lens_h / 2, centre, n=48)
        parts.append(plate(rim, 2.5, lens_mat, cell))
        if metal:
            parts += tube(rim, 0.8, "stainless", cell, closed=True)
        else:
            parts.append(strip(np.vstack([rim, rim[:1]]), 5, 4, "abs", coarse(cell)))
        temple = [(side * (lens_w + 16), 5), (-side * 20, 8)]
        parts.append(strip(temple, 4 if not metal else 1.6, 3 if not metal else 1.6,
                           "abs" if not metal else "stainless", cell, w_center=5 + 2 * side))
        parts.append(strip(temple, 0.8, 0.8, "steel", cell, w_center=5 + 2 * side))
        parts.append(plate(rectangle(6, 5, (side * (lens_w + 17), 5)), 3, "steel", cell))
    parts.append(strip([(-9, 6), (0, 10), (9, 6)], 3, 2, "stainless" if metal else "abs",
                       cell))
    return finish("spectacles", None, parts, metal=metal, lenses=lens_mat)


def cutlery(rng, cell) -> Item:
    """Stainless forks and spoons (1.5-2.5 mm, dished bowls), one to four pieces."""
    parts: Parts = []
    for k in range(int(rng.integers(1, 5))):
        length = rng.uniform(130, 210)
        t = rng.uniform(1.5, 2.5)
        handle = [(0, -4), (length * 0.6, -2.5), (length * 0.62, 2.5), (0, 5), (-8, 0)]
        piece = [plate(handle, t, "stainless", cell)]
        head_c = (length * 0.6 + length * 0.13, 0)
        if rng.random() < 0.5:  # fork: four tines
            base = ellipse(length * 0.08, 11, head_c)
            tines = [rectangle(length * 0.2, 2.2, (head_c[0] + length * 0.12, v))
                     for v in (-8, -2.7, 2.7, 8)]
            piece.append(plate(base, t, "stainless", cell))
            piece += [plate(tn, t, "stainless", cell) for tn in tines]
        else:  # spoon: a dished bowl
            bowl = ellipse(length * 0.13, length * 0.085, head_c)
            depth = length * 0.04

            def dish(uv, c=head_c, a=length * 0.13, b=length * 0.085, d=depth):
                q = ((uv[:, 0] - c[0]) / a) ** 2 + ((uv[:, 1] - c[1]) / b) ** 2
                return -d * (1 - np.clip(q, 0, 1))
            piece.append(plate(bowl, t, "stainless", cell, w_center=dish))
        parts += moved(piece, (rng.uniform(-20, 20), k * 22.0), rng.uniform(-15, 15),
                       w_offset=k * 3)
    return finish("cutlery", None, parts)


def nail_clippers(rng, cell) -> Item:
    """Nail clippers: two stainless jaws 55-90 mm, the lever on a pin, sometimes a file."""
    length = rng.uniform(55, 90)
    parts = [plate([(0, -7), (length, -5), (length, 5), (0, 7)], 1.6, "stainless", cell,
                   w_center=s) for s in (-3, 3)]
    parts.append(plate([(length * 0.15, -5), (length * 0.95, -4), (length, 4), (length * 0.2,
                                                                                  6)], 1.6,
                       "stainless", cell, w_center=6))
    parts += upright((length * 0.75, 0), -4, [(0, 1.6), (11, 1.6)], "steel", cell)
    return finish("nail_clippers", None, parts)


def lighter(rng, cell) -> Item:
    """Windproof (brass or chromed-steel case 38 x 57 x 13 mm with its steel insert, wick
    and cotton) or disposable lighter (ABS body with liquid butane, steel wheel and cap)."""
    if rng.random() < 0.4:
        metal = str(rng.choice(["brass", "steel"]))
        parts = shell(rectangle(38, 57), 13, 0.8, metal, cell)
        parts += shell(rectangle(34, 46, (0, -4)), 11, 0.4, "steel", cell)
        parts.append(plate(rectangle(32, 42, (0, -5)), 10, "cloth", coarse(cell)))
        parts += cylinder((-6, 20), (6, 20), 4, "steel", cell)  # wheel
        return finish("lighter", None, parts, kind="windproof")
    parts = shell(rectangle(25, 70), 12, 1.5, "abs", coarse(cell))
    parts.append(plate(rectangle(22, 52, (0, -6)), 9 * 0.6, "polyethylene", coarse(cell)))
    parts.append(plate(rectangle(22, 12, (0, 31)), 10, "steel", cell, w_center=0,
                       holes=[rectangle(16, 8, (0, 31))]))
    parts += cylinder((-5, 29), (5, 29), 3.5, "steel", cell)
    return finish("lighter", None, parts, kind="disposable")


def shoe(rng, cell) -> Item:
    """A shoe lying on its sole: rubber sole 15-30 mm thick, leather upper, a steel shank under
    the arch, up to seven brass eyelets."""
    length = rng.uniform(240, 310)
    parts = [plate(ellipse(length / 2, length * 0.18), rng.uniform(15, 30), "rubber",
                   coarse(cell))]
    parts.append(plate(ellipse(length * 0.45, length * 0.16, (5, 0)), 3, "leather",
                       coarse(cell), w_center=35))
    parts.append(strip([(-length * 0.1, 0), (length * 0.15, 0)], 12, 1.5, "steel", cell))
    for k in range(int(rng.integers(0, 8))):  # eyelets
        parts.append(strip(circle(2.5, (length * (0.05 + 0.04 * k), 15), 16), 1.2, 1.5,
                           "brass", cell, closed=True))
    return finish("shoe", None, parts)


def clothes(rng, cell) -> Item:
    """Folded garments, 150-450 x 120-350 mm: 4-40 layers of cloth (a third of each fold is
    fibre) whose thickness varies with the folds, sometimes with buttons. Sampled on a grid three
    cells wide: faint and smooth, and the largest items in a parcel."""
    w, h = rng.uniform(150, 450), rng.uniform(120, 350)
    layers = rng.uniform(4, 40)
    grid = 3 * cell
    outline = ellipse(w / 2, h / 2) if rng.random() < 0.3 else rectangle(w, h)
    field = smooth_noise(rng, (64, 64), 8)

    def folds(uv):
        iu = ((uv[:, 0] / w + 0.5) * 63).clip(0, 63).astype(int)
        iv = ((uv[:, 1] / h + 0.5) * 63).clip(0, 63).astype(int)
        return layers * (0.4 + field[iv, iu]) * 0.35

    parts = [plate(outline, folds, "cloth", grid)]
    for _ in range(int(rng.poisson(2))):  # buttons
        at, r = rng.uniform(-w / 3, w / 3, 2), rng.uniform(5, 9)
        parts.append(plate(circle(r, at, 16), 2.5, str(rng.choice(["abs", "zinc"])), cell))
    return finish("clothes", None, parts)


# The belt's weight includes the share of the first-generation loose belt buckle it replaced.
PERSONAL_FAMILIES = [(keys, 2.0, "small"), (coins, 1.2, "small"), (wallet, 1.0, "small"),
                     (belt, 2.0, "small"), (zip_fastener, 1.5, "small"),
                     (jewellery, 0.7, "small"), (watch, 0.8, "small"),
                     (spectacles, 0.8, "small"), (cutlery, 0.8, "small"),
                     (nail_clippers, 0.5, "small"), (lighter, 0.6, "small"),
                     (shoe, 1.0, "small"), (clothes, 3.0, "large")]
