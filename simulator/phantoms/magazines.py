"""Detachable box magazines for pistols and rifles, loaded or empty (mm).

A magazine is a thin sheet-steel (or aluminium, or steel-lined polymer) tube with a follower,
a flat coil spring and a floor plate; rounds sit under the feed lips, double-stacked (staggered
left and right, half a case diameter apart) or single-stacked. Local frame: the top centre at
the origin, the tube running down -v, rounds pointing +u.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.ammo import CALIBRES, Calibre, cartridge
from simulator.phantoms.geometry import (
    Parts,
    coarse,
    copies,
    finish,
    moved,
    plate,
    prism,
    spring,
)
from simulator.solids import Item, rectangle


def box_section(depth: float, width: float, wall: float):
    """Outer and inner outlines of a rectangular tube's cross-section, in (t, w)."""
    return [rectangle(depth, width)], [rectangle(depth - 2 * wall, width - 2 * wall)]


def round_positions(c: Calibre, inner_w: float, count: int, double: bool, top: float = 1.0):
    """(v of each round's axis, w offset) from the top of the stack down."""
    if double:
        off = max(inner_w / 2 - c.rim_d / 2, 0.0)
        pitch = max(c.rim_d / 2, np.sqrt(max(c.rim_d ** 2 - (2 * off) ** 2, 0.0)))
        w = off * np.where(np.arange(count) % 2 == 0, 1, -1)
    else:
        pitch, w = c.rim_d, np.zeros(count)
    return -(top + c.rim_d / 2 + pitch * np.arange(count)), w


def pistol_magazine(c: Calibre, length: float, double: bool, rounds: int, cell: float,
                    body: str = "steel") -> Parts:
    """A pistol magazine ``length`` mm long holding ``rounds`` rounds of ``c``. ``body``:
    'steel' (0.7 mm sheet), or 'polymer' (a steel liner in a polymer shell, Glock style; the
    liner is what shows, so the shell is drawn only as the floor plate and feed-lip block)."""
    depth = c.oal + 4.5
    width = (c.rim_d * 1.85 if double else c.rim_d) + 2.6
    wall = 0.7
    outer, inner = box_section(depth, width, wall)
    parts = prism((0, 0), (0, -length), outer, "steel", cell, inner)
    if body == "polymer":
        parts.append(plate(rectangle(depth + 2, 6, (0, -3)), width + 2, "abs", coarse(cell)))
    v, w = round_positions(c, width - 2 * wall, rounds, double)
    head = -depth / 2 + wall + 0.6
    if rounds:
        parts += copies(cartridge(c, cell), np.stack([np.full(rounds, head), v], 1), w)
    below = (v[-1] if rounds else -2.0) - c.rim_d / 2
    parts.append(plate(rectangle(depth - 3, 7, (0, below - 3.5)), width - 2 * wall - 1, "abs",
                       cell))  # follower
    coil = (width - 2 * wall) / 2 - 1.2
    parts += spring((0, below - 7), (0, -length + 2), coil, 0.55, 4.0, "steel", cell,
                    aspect=(depth / 2 - 2.5) / coil)
    floor_mat = "abs" if body == "polymer" else "steel"
    parts.append(plate(rectangle(depth + 4, 4, (1, -length - 1)), width + 2, floor_mat, cell))
    return parts


def capacity(c: Calibre, length: float, double: bool) -> int:
    """Rounds that fit above a compressed spring (about 20 % of the tube) and the follower."""
    per = c.rim_d / 2 if double else c.rim_d
    return max(1, int((length * 0.8 - 10) / per))


def rifle_magazine(rng, cell: float, kind: str, rounds: int) -> Parts:
    """STANAG (AR-15) 30-round aluminium magazine, slightly curved, 5.56x45; or the steel
    AK 30-round 'banana' magazine, strongly curved (radius ~ 260 mm), 7.62x39."""
    c = CALIBRES["5.56x45" if kind == "stanag" else "7.62x39"]
    material, wall = ("aluminium", 0.9) if kind == "stanag" else ("steel", 0.8)
    depth, width = c.oal + 6, c.rim_d * 1.8 + 2 * wall
    length = 185.0 if kind == "stanag" else 200.0
    bend = 0.22 if kind == "stanag" else 0.75  # radians of curvature over the length
    segments = 6
    outer, inner = box_section(depth, width, wall)
    v_all, w_all = round_positions(c, width - 2 * wall, 30, True, top=1.5)
    rounds = min(rounds, 30)
    parts: Parts = []
    for k in range(segments):
        s0, s1 = length * k / segments, length * (k + 1) / segments
        a = bend * (k + 0.5) / segments  # the tube curves forward as it goes down
        at = _arc_point(s0, length, bend)
        seg = prism((0, 0), (0, -(s1 - s0) - 0.5), outer, material, cell, inner)
        parts += moved(seg, at, np.degrees(a))
        pick = (-v_all[:rounds] >= s0) & (-v_all[:rounds] < s1)
        if pick.any():
            local = np.stack([np.full(pick.sum(), -depth / 2 + wall + 0.6),
                              v_all[:rounds][pick] + s0], 1)
            rounds_k = copies(cartridge(c, cell), local, w_all[:rounds][pick])
            parts += moved(rounds_k, at, np.degrees(a))
    end = _arc_point(length, length, bend)
    parts += moved([plate(rectangle(depth + 4, 5, (0, -2.5)), width + 3, "abs", cell)], end,
                   np.degrees(bend))
    return parts


def _arc_point(s: float, length: float, bend: float) -> np.ndarray:
    """Point at arc length s along a curve from the origin heading down (-v), turning towards
    +u by ``bend`` radians over ``length``."""
    if bend < 1e-6:
        return np.array([0.0, -s])
    radius = length / bend
    phi = s / radius
    return np.array([radius * (1 - np.cos(phi)), -radius * np.sin(phi)])


def gun_magazine(rng, cell) -> Item:
    """A loose magazine: pistol (double or single stack, steel or polymer-bodied) or rifle
    (STANAG aluminium, AK steel), loaded, partly loaded or empty."""
    fill = float(rng.choice([0.0, rng.uniform(0.2, 1.0), 1.0]))
    kind = str(rng.choice(["pistol", "pistol", "stanag", "ak"]))
    if kind != "pistol":
        rounds = int(round(30 * fill))
        return finish("gun_magazine", "gun_part", rifle_magazine(rng, cell, kind, rounds),
                      kind=kind, rounds=rounds)
    name = str(rng.choice(["9x19", "9x19", ".45acp", ".380acp", ".22lr"]))
    c = CALIBRES[name]
    double = name == "9x19" and rng.random() < 0.8
    length = rng.uniform(95, 140) if name != ".380acp" else rng.uniform(70, 90)
    rounds = int(round(capacity(c, length, double) * fill))
    body = "polymer" if double and rng.random() < 0.5 else "steel"
    parts = pistol_magazine(c, length, double, rounds, cell, body)
    return finish("gun_magazine", "gun_part", parts, calibre=name, rounds=rounds)
