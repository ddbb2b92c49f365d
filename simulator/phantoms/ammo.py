"""Ammunition: cartridges of real calibres, shotgun shells, boxes, clips and loose handfuls (mm).

A cartridge is modelled as it is made: a drawn brass case (thin wall, solid head with rim or
extractor groove) holding powder, and the bullet. A bullet's 0.4 mm gilding-metal jacket is
invisible beside its lead core at any scanner's resolution (both are black), so it is folded
into the core. Dimensions are the C.I.P./SAAMI maximum-cartridge drawings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from simulator.phantoms.geometry import (
    Parts,
    copies,
    cylinder,
    finish,
    lathe,
    moved,
    shell,
    upright,
)
from simulator.solids import Item, Slab, ellipsoid, rectangle

POWDER_FILL = np.sqrt(0.6)  # granular powder packs to ~60 %: same mass in a thinner column


@dataclass(frozen=True)
class Calibre:
    """Case length, head (base) diameter, rim diameter, mouth diameter, shoulder (s, diameter)
    or None, bullet diameter and length, overall length; mm."""

    case_len: float
    base_d: float
    rim_d: float
    mouth_d: float
    shoulder: tuple[float, float] | None
    bullet_d: float
    bullet_len: float
    oal: float
    rimmed: bool = False


CALIBRES = {
    "9x19": Calibre(19.15, 9.93, 9.96, 9.65, None, 9.01, 15.5, 29.69),
    ".380acp": Calibre(17.3, 9.5, 9.5, 9.2, None, 9.0, 12.0, 25.0),
    ".45acp": Calibre(22.8, 12.01, 12.01, 12.0, None, 11.48, 17.0, 32.4),
    ".38spl": Calibre(29.3, 9.6, 11.2, 9.6, None, 9.07, 17.0, 39.4, rimmed=True),
    ".357mag": Calibre(33.0, 9.6, 11.2, 9.6, None, 9.07, 16.0, 40.0, rimmed=True),
    ".22lr": Calibre(15.6, 5.7, 6.9, 5.7, None, 5.7, 11.0, 25.4, rimmed=True),
    "5.56x45": Calibre(44.7, 9.58, 9.6, 6.43, (36.5, 9.0), 5.70, 23.0, 57.4),
    "7.62x39": Calibre(38.7, 11.35, 11.35, 8.6, (30.5, 10.07), 7.92, 26.8, 56.0),
    "7.62x51": Calibre(51.2, 11.94, 12.0, 8.72, (39.6, 11.53), 7.82, 31.0, 71.1),
}
PISTOL = ("9x19", ".380acp", ".45acp", ".38spl", ".357mag", ".22lr")
RIFLE = ("5.56x45", "7.62x39", "7.62x51")


def case_profile(c: Calibre):
    """Outer (s, r) knots of the case, head at s = 0."""
    r0, rim = c.base_d / 2, c.rim_d / 2
    head = [(0, rim), (1.3, rim)] + ([(1.3, r0)] if c.rimmed else
                                     [(1.3, r0 * 0.84), (2.4, r0 * 0.84), (2.9, r0)])
    if c.shoulder is None:
        return head + [(c.case_len, c.mouth_d / 2)]
    s_sh, d_sh = c.shoulder
    neck = s_sh + (d_sh - c.mouth_d) / 2 / np.tan(np.radians(22))  # ~22 degree shoulders
    return head + [(s_sh, d_sh / 2), (neck, c.mouth_d / 2), (c.case_len, c.mouth_d / 2)]


def bullet_profile(c: Calibre, seat: float, inset: float = 0.0):
    """(s, r) knots of a round-nose (tangent ogive) bullet whose base is at ``seat``."""
    r = c.bullet_d / 2 - inset
    ogive = min(c.bullet_len * 0.55, c.oal - seat - 2)
    s_og = c.oal - ogive
    x = np.linspace(0, 1, 7) * ogive
    rho = (r ** 2 + ogive ** 2) / (2 * r)
    r_og = np.sqrt(np.clip(rho ** 2 - x ** 2, 0, None)) + r - rho
    knots = [(seat + inset, 0), (seat + inset, r), (s_og, r)]
    knots += [(s_og + xi, max(ri, c.bullet_d * 0.1)) for xi, ri in zip(x[1:], r_og[1:],
                                                                           strict=True)]
    return knots[:-1] + [(c.oal - inset, max(r_og[-1], c.bullet_d * 0.1)), (c.oal - inset, 0)]


def _case(c: Calibre):
    """Outer profile, bore profile, and the depth at which the bullet's base sits."""
    outer = case_profile(c)
    head_t = c.base_d * 0.38  # solid head with the primer pocket
    wall = max(0.3, c.base_d * 0.035)  # drawn walls: ~0.35 mm at the mouth, thicker lower down
    s_o, r_o = np.array(outer).T
    s = np.concatenate([[head_t], s_o[s_o > head_t]])
    taper = np.interp(s, [head_t, c.case_len], [1.8, 1.0])
    bore = [(head_t, 0)] + [(si, np.interp(si, s_o, r_o) - wall * k)
                            for si, k in zip(s, taper, strict=True)]
    seat = c.case_len - min(c.bullet_len * 0.35, c.case_len - head_t - 3)
    return outer, bore, seat


def _powder(bore, seat: float):
    """Powder column profile: the bore up to the bullet's base, thinned to bulk density."""
    s_b, r_b = np.array(bore[1:]).T
    s = np.concatenate([s_b[s_b < seat], [seat]])
    r = np.interp(s, s_b, r_b) * POWDER_FILL
    return [(s[0], 0)] + list(zip(s, r, strict=True)) + [(seat, 0)]


def cartridge(c: Calibre, cell: float, spent: bool = False) -> Parts:
    """One cartridge lying along +u, head at the origin. ``spent``: an empty fired case."""
    return list(_cartridge(c, cell, spent))


@cache  # magazines and boxes hold dozens of identical rounds
def _cartridge(c: Calibre, cell: float, spent: bool) -> tuple[Slab, ...]:
    outer, bore, seat = _case(c)
    parts = lathe((0, 0), (1, 0), outer, "brass", cell, bore)
    if spent:
        return tuple(parts)
    parts += lathe((0, 0), (1, 0), _powder(bore, seat), "smokeless_powder", cell)
    return tuple(parts + lathe((0, 0), (1, 0), bullet_profile(c, seat), "lead", cell))


def standing_cartridge(c: Calibre, cell: float, nose_up: bool = True) -> Parts:
    """One cartridge standing on its head (axis along w), at the origin: for boxes and trays."""
    return list(_standing(c, cell, nose_up))


@cache
def _standing(c: Calibre, cell: float, nose_up: bool) -> tuple[Slab, ...]:
    outer, bore, seat = _case(c)
    parts = upright((0, 0), 0, outer, "brass", cell, bore)
    parts += upright((0, 0), 0, _powder(bore, seat)[1:-1], "smokeless_powder", cell)
    parts += upright((0, 0), 0, bullet_profile(c, seat), "lead", cell)
    return tuple(parts if nose_up else [_flip(p, c.oal) for p in parts])


def _flip(p: Slab, height: float) -> Slab:
    return Slab(p.material, p.uv, height - p.w_hi, height - p.w_lo, p.cell_mm)


def shotshell(cell: float, load: str = "shot") -> Parts:
    return list(_shotshell(cell, load))


@cache
def _shotshell(cell: float, load: str) -> tuple[Slab, ...]:
    """12-gauge shell, 70 mm: plastic hull (20.2 mm across), brass head with its rim, base wad,
    powder, plastic wad, and a load of birdshot (lead at ~60 % packing), buckshot (nine 8.4 mm
    balls, 00 buck) or a slug."""
    hull = [(0, 10.1), (70, 10.1)]
    parts = lathe((0, 0), (1, 0), hull, "polyethylene", cell, [(0, 0), (8, 0), (8, 9.4),
                                                                (70, 9.4)])
    parts += lathe((0, 0), (1, 0), [(0, 11.1), (1.5, 11.1), (1.5, 10.4), (12, 10.4)], "brass",
                   cell, [(0, 0), (1.2, 0), (1.2, 10.1), (12, 10.1)])
    parts += cylinder((8, 0), (11, 0), 9.3, "smokeless_powder", cell)
    parts += cylinder((11, 0), (28, 0), 9.3, "polyethylene", cell, inner=8.5)
    if load == "slug":
        return tuple(parts + lathe((0, 0), (1, 0), [(30, 0), (30, 8.8), (44, 8.8), (48, 6),
                                                    (48, 0)], "lead", cell))
    if load == "buck":
        for k in range(9):  # three layers of three pellets
            phi = 2 * np.pi * (k % 3) / 3 + (k // 3) * 0.6
            parts.append(ellipsoid((33 + 8.6 * (k // 3), 4.6 * np.cos(phi), 4.6 * np.sin(phi)),
                                   (4.2, 4.2, 4.2), "lead", cell))
        return tuple(parts)
    return tuple(parts + cylinder((28, 0), (60, 0), 9.3 * POWDER_FILL ** 0.5, "lead", cell))


def cardboard_box(length: float, width: float, height: float, cell: float) -> Parts:
    """A folded carton (board ~0.5 mm of cellulose; flaps double it at the ends)."""
    return shell(rectangle(length, width), height, 0.6, "cardboard", cell)


# --- families ------------------------------------------------------------------------------------

def cartridge_single(rng, cell) -> Item:
    """One live round of any common calibre."""
    name = str(rng.choice(PISTOL + RIFLE))
    return finish("cartridge_single", "ammunition", cartridge(CALIBRES[name], cell),
                  calibre=name)


def cartridges_loose(rng, cell) -> Item:
    """A handful of loose rounds (2-15) of one calibre, a few of them fired cases, heaped."""
    name = str(rng.choice(PISTOL + RIFLE))
    c = CALIBRES[name]
    n = int(rng.integers(2, 16))
    spread = 12 + 9 * np.sqrt(n)
    pos = rng.uniform(-spread, spread, (n, 2))
    angles = rng.uniform(0, 360, n)
    depth = rng.uniform(-1, 1, n) * c.base_d * min(n / 5, 2)
    spent = rng.random(n) < rng.uniform(0, 0.4)
    parts = []
    for is_spent in (False, True):
        pick = spent == is_spent
        if pick.any():
            parts += copies(cartridge(c, cell, bool(is_spent)), pos[pick], depth[pick],
                            angles[pick])
    return finish("cartridges_loose", "ammunition", parts, calibre=name, count=n)


def ammo_box(rng, cell) -> Item:
    """A retail box: 20-50 rounds standing in a plastic tray (noses up, or alternating) in a
    carton; or rifle rounds lying in two layers. Some rounds may be gone."""
    name = str(rng.choice(PISTOL + RIFLE, p=[0.3, 0.08, 0.12, 0.1, 0.08, 0.07, 0.1, 0.1, 0.05]))
    c = CALIBRES[name]
    pitch = c.rim_d + 1.6
    if name in RIFLE and rng.random() < 0.6:
        return _rifle_box(rng, c, name, cell)
    cols, rows = [(10, 5), (5, 4), (10, 5), (5, 5)][int(rng.integers(0, 4))]
    if name == ".22lr":
        cols, rows = 10, 5
    grid = np.array([(i, j) for j in range(rows) for i in range(cols)], np.float64)
    keep = rng.random(len(grid)) > rng.choice([0, 0, 0.15, 0.4])
    at = (grid - [(cols - 1) / 2, (rows - 1) / 2]) * pitch
    down = (grid.sum(1) % 2 == 1) & (rng.random() < 0.3)  # some brands alternate noses
    parts = []
    for up, pick in ((True, keep & ~down), (False, keep & down)):
        if pick.any():
            parts += copies(standing_cartridge(c, cell, up), at[pick])
    length, width, height = cols * pitch + 3, rows * pitch + 3, c.oal + 3
    tray = shell(rectangle(length - 1, width - 1), c.oal * 0.55, 0.5, "polyethylene", cell,
                 lid=False)
    parts += moved(tray, w_offset=c.oal * 0.275)
    parts += moved(cardboard_box(length, width, height, cell), w_offset=c.oal / 2)
    return finish("ammo_box", "ammunition", parts, calibre=name, count=int(keep.sum()))


def _rifle_box(rng, c: Calibre, name: str, cell) -> Item:
    """20 rifle rounds lying nose-to-tail in two layers of a carton sleeve."""
    per_layer = 10
    v = (np.arange(per_layer) - (per_layer - 1) / 2) * (c.base_d + 0.8)
    flip = np.arange(per_layer) % 2 == 1
    parts = []
    for layer in (-1, 1):
        w = layer * (c.base_d / 2 + 0.4)
        for turned in (False, True):
            pick = flip == turned
            heads = np.stack([np.full(pick.sum(), c.oal / 2 if turned else -c.oal / 2),
                              v[pick]], 1)
            parts += copies(cartridge(c, cell), heads, np.full(pick.sum(), w),
                            np.full(pick.sum(), 180.0 if turned else 0.0))
    parts += cardboard_box(c.oal + 4, per_layer * (c.base_d + 0.8) + 4, 2 * c.base_d + 3, cell)
    return finish("ammo_box", "ammunition", parts, calibre=name, count=20)


def shotgun_shells(rng, cell) -> Item:
    """12-gauge shells: a few loose, or a box of 10 or 25 standing in rows."""
    load = str(rng.choice(["shot", "shot", "buck", "slug"]))
    one = shotshell(cell, load)
    if rng.random() < 0.6:
        n = int(rng.integers(1, 7))
        pos = rng.uniform(-20, 20, (n, 2)) * np.sqrt(n)
        parts = copies(one, pos, rng.uniform(-10, 10, n) * (n > 1), rng.uniform(0, 360, n))
        return finish("shotgun_shells", "ammunition", parts, load=load, count=n)
    cols, rows = (5, 2) if rng.random() < 0.5 else (5, 5)
    # Boxed shells lie side by side, heads alternating, rows stacked in depth.
    v = (np.arange(cols) - (cols - 1) / 2) * 22.6
    parts = []
    for r in range(rows):
        for turned in (False, True):
            pick = (np.arange(cols) + r) % 2 == int(turned)
            heads = np.stack([np.full(pick.sum(), 35.0 if turned else -35.0), v[pick]], 1)
            parts += copies(one, heads, np.full(pick.sum(), (r - (rows - 1) / 2) * 22.6),
                            np.full(pick.sum(), 180.0 if turned else 0.0))
    parts += cardboard_box(74, cols * 22.6 + 3, rows * 22.6 + 3, cell)
    return finish("shotgun_shells", "ammunition", parts, load=load, count=cols * rows)


def stripper_clip(rng, cell) -> Item:
    """Ten rifle rounds side by side in a steel stripper clip (5.56 or 7.62x39), the way
    military ammunition is packed for loading magazines."""
    name = str(rng.choice(["5.56x45", "7.62x39"]))
    c = CALIBRES[name]
    n = 10
    u = (np.arange(n) - (n - 1) / 2) * (c.base_d + 0.3)
    parts = copies(cartridge(c, cell), np.stack([u, np.full(n, -c.oal / 2)], 1),
                   angles=np.full(n, 90.0))
    span = n * (c.base_d + 0.3) + 4
    parts += shell(rectangle(span, 5.0, (0, -c.oal / 2 + 1.0)), c.base_d + 1.2, 0.5, "steel",
                 cell, lid=False)
    return finish("stripper_clip", "ammunition", parts, calibre=name)


# Weights include the shares of the simpler first-generation designs these replaced, so
# each kind of object is drawn as often as before.
AMMO_FAMILIES = [(cartridge_single, 1.5), (cartridges_loose, 2.25), (ammo_box, 1.7),
                 (shotgun_shells, 1.15), (stripper_clip, 0.5)]
