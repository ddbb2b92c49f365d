"""Semi-automatic pistols, lying on their side (mm): u forward along the bore, v up, w across.

Built the way they are made: a steel slide (a U-section shell with a solid breech block and a
front wall, ejection port on the right) riding on the frame's rails, the barrel inside it (a
chamber hood and locking lug under a tilting barrel), the recoil spring on its guide rod below
the barrel, a frame of polymer with steel inserts or of steel / aluminium with grip panels, a
trigger guard, trigger, hammer where there is one, and a magazine in the raked grip.

Proportions follow real pistols: Glock 26 / 19 / 17 / 34 (slide 160 / 174 / 186 / 207 mm, height
106-139 mm, slide 25.5 mm wide), Colt 1911 and Beretta 92 (216-217 mm, 140 mm high), Walther PPK
(155 mm, 100 mm high), Ruger Mark target pistols (225-300 mm, tubular receiver, bull barrel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.phantoms.ammo import CALIBRES, Calibre, cartridge
from simulator.phantoms.geometry import (
    Parts,
    carve,
    circle,
    coarse,
    cylinder,
    lathe,
    moved,
    plate,
    prism,
    shell,
    spring,
    strip,
    upright,
)
from simulator.phantoms.magazines import capacity, pistol_magazine
from simulator.solids import rectangle


@dataclass(frozen=True)
class Pistol:
    kind: str  # "polymer" (striker, steel inserts), "steel" (hammer, panels), "pocket"
    cal: Calibre
    slide_len: float
    slide_h: float
    slide_w: float
    breech: float  # breech face, mm from the slide's rear
    height: float  # slide top to magazine floor plate
    rake: float  # grip angle from vertical, deg
    grip_w: float
    frame: str  # frame material
    double: bool  # double-stack magazine
    panels: str = "abs"  # grip panel material on metal frames

    @property
    def r_barrel(self) -> float:
        return self.cal.bullet_d / 2 + (2.3 if self.kind != "pocket" else 2.0)

    @property
    def vb(self) -> float:  # slide bottom; the bore axis is v = 0
        return -(self.r_barrel + 5.5)

    @property
    def vt(self) -> float:
        return self.vb + self.slide_h


def draw_pistol(rng, kind: str, size: str = "full") -> Pistol:
    if kind == "pocket":
        length = rng.uniform(140, 160)
        return Pistol(kind, CALIBRES[".380acp"], length, rng.uniform(23, 26),
                      rng.uniform(20, 24), length * rng.uniform(0.28, 0.33),
                      rng.uniform(95, 110), rng.uniform(12, 18), rng.uniform(24, 28), "steel",
                      False, "abs")
    if kind == "polymer":
        length = {"compact": rng.uniform(158, 176), "full": rng.uniform(180, 196),
                  "long": rng.uniform(200, 226)}[size]
        height = {"compact": rng.uniform(106, 122), "full": rng.uniform(128, 142),
                  "long": rng.uniform(134, 145)}[size]
        cal = CALIBRES[str(rng.choice(["9x19"] * 6 + [".45acp"]))]
        return Pistol(kind, cal, length, rng.uniform(28, 31.5), rng.uniform(24, 27.5),
                      length * rng.uniform(0.31, 0.35), height, rng.uniform(18, 23),
                      rng.uniform(29, 33), "abs", True)
    cal = CALIBRES[str(rng.choice(["9x19", ".45acp"]))]
    length = rng.uniform(180, 216)
    return Pistol(kind, cal, length, rng.uniform(26, 31), rng.uniform(23, 30),
                  length * rng.uniform(0.31, 0.35), rng.uniform(130, 146), rng.uniform(15, 20),
                  rng.uniform(30, 36), str(rng.choice(["steel", "steel", "aluminium"])),
                  bool(cal.bullet_d < 10 and rng.random() < 0.7),
                  str(rng.choice(["wood", "rubber", "abs"])))


# --- slide and barrel ----------------------------------------------------------------------------

def slide(p: Pistol, cell: float, open_top: bool = False) -> Parts:
    """The slide: solid breech block (striker channel), a U-section shell over the barrel, a
    front wall, the ejection port cut in the right wall, sights."""
    vb, vt, hw, wall = p.vb, p.vt, p.slide_w / 2, min(4.2, p.slide_w * 0.17)
    c = 2.5  # chamfered top edges
    outer = [[(vb, -hw), (vb, hw), (vt - c, hw), (vt, hw - c), (vt, -hw + c), (vt - c, -hw)]]
    top_in = p.r_barrel + 3.5
    channel = rectangle(top_in - vb + 2, 2 * (hw - wall), ((top_in + vb - 2) / 2, 0))
    profile = [(0, vb), (p.slide_len - 12, vb), (p.slide_len, vb + 6), (p.slide_len, vt - 2),
               (p.slide_len - 3, vt), (3, vt), (0, vt - 3)]
    front = p.slide_len - 9
    parts = prism((0, 0), (p.breech, 0), outer, "steel", cell,
                  [circle(3.2), rectangle(8, 2 * (hw - wall), (vb + 3, 0))], clip=profile)
    if open_top:  # Beretta 92 style: the slide's top is cut away over the barrel
        outer_open = [rectangle(p.r_barrel - vb, 2 * hw, ((p.r_barrel + vb) / 2, 0))]
        parts += prism((p.breech, 0), (p.breech + 20, 0), outer, "steel", cell, [channel],
                       clip=profile)
        parts += prism((p.breech + 20, 0), (front, 0), outer_open, "steel", cell, [channel],
                       clip=profile)
    else:
        parts += prism((p.breech, 0), (front, 0), outer, "steel", cell, [channel], clip=profile)
    spring_v = vb + 1
    parts += prism((front, 0), (p.slide_len, 0), outer, "steel", cell,
                   [circle(p.r_barrel + 0.3), circle(4.8, (spring_v, 0))], clip=profile)
    port = rectangle(p.cal.oal + 3, vt + 2, (p.breech + p.cal.oal / 2 + 2, vt / 2 + 0.5))
    parts = carve(parts, [port], 0.5, hw + 1, cell)
    sight = rectangle(4, 5, (p.slide_len - 10, vt + 2))
    parts.append(plate(sight, 3.5, "steel", cell))
    parts.append(plate(rectangle(9, 6, (9, vt + 2.5)), p.slide_w * 0.5, "steel", cell))
    parts += cylinder((3, 0), (p.breech - 1, 0), 1.6, "steel", cell)  # striker / firing pin
    parts += spring((6, 0), (p.breech - 8, 0), 2.6, 0.35, 1.6, "steel", cell)
    return parts


def barrel(p: Pistol, cell: float, chambered: bool, tilting: bool = True) -> Parts:
    """Barrel from the breech face to the muzzle: chamber hood and locking lug, bore."""
    c, r = p.cal, p.r_barrel
    length = p.slide_len - 1.5 - p.breech
    hood = r + 1.6 if tilting else r
    outer = [(0, hood), (22, hood), (22, r), (length, r)]
    bore = [(0, c.base_d / 2 + 0.05), (c.case_len, c.mouth_d / 2 + 0.05),
            (c.case_len, c.bullet_d / 2 - 0.1), (length, c.bullet_d / 2 - 0.1)]
    parts = lathe((p.breech, 0), (p.breech + length, 0), outer, "steel", cell, bore)
    if tilting:
        lug = [(p.breech + 6, -hood + 1), (p.breech + 24, -hood + 1), (p.breech + 20, -hood - 6),
               (p.breech + 10, -hood - 6)]
        parts.append(plate(lug, 9, "steel", cell))
    if chambered:
        parts += moved(cartridge(c, cell), (p.breech, 0))
    return parts


def recoil_spring(p: Pistol, cell: float, concentric: bool = False) -> Parts:
    """Recoil spring on its guide rod below the barrel (or wound round a fixed barrel)."""
    front = p.slide_len - 9
    if concentric:
        return spring((p.breech + 4, 0), (front, 0), p.r_barrel + 1.3, 0.7, 4.5, "steel", cell)
    v = p.vb + 1
    rod = cylinder((p.breech + 6, v), (front + 4, v), 1.9, "steel", cell)
    return rod + spring((p.breech + 10, v), (front, v), 4.0, 0.55, 3.2, "steel", cell)


# --- frame, grip, magazine -----------------------------------------------------------------------

def grip_geometry(p: Pistol):
    """Front-strap top point F, grip axis g (down the grip), forward normal n, grip depth and
    length along the axis."""
    a = np.radians(p.rake)
    g, n = np.array([-np.sin(a), -np.cos(a)]), np.array([np.cos(a), -np.sin(a)])
    depth = p.cal.oal + 21
    front = np.array([p.breech + 6, p.vb - 10])
    v_bottom = p.vt - p.height + 4
    return front, g, n, depth, (front[1] - v_bottom) / np.cos(a)


def grip_outline(p: Pistol) -> np.ndarray:
    f, g, n, depth, length = grip_geometry(p)
    back = f - np.array([depth, 0.0])
    return np.array([f, f + g * length, back + g * length + n * 3, back + g * 10,
                     back + (-8, 7), back + (-6, 10), f + (0, 10)])


def frame(p: Pistol, cell: float) -> Parts:
    """Receiver (a U-channel under the slide), grip (hollow shell), trigger guard, trigger,
    and for polymer frames the steel inserts; for metal frames grip panels and a hammer."""
    f, g, n, depth, length = grip_geometry(p)
    metal = p.frame != "abs"
    wall = 2.2 if metal else 3.0
    grid = cell if metal else coarse(cell)
    fw = p.slide_w - 1
    back_u = f[0] - depth - 8
    profile = [(back_u, p.vb - 2), (back_u + 6, p.vb - 10), (p.slide_len - 16, p.vb - 10),
               (p.slide_len - 12, p.vb - 4), (p.slide_len - 12, p.vb), (back_u, p.vb)]
    u_section = [rectangle(10, fw, (p.vb - 5, 0))]
    channel = [rectangle(8, fw - 2 * wall, (p.vb - 1, 0))]
    parts = prism((back_u, 0), (p.slide_len - 12, 0), u_section, p.frame, grid, channel,
                  clip=profile)
    grip = grip_outline(p)
    parts += shell(grip, p.grip_w if not metal else fw, wall, p.frame, grid)
    guard_len, guard_h = p.cal.oal + 24, 24 + p.height * 0.03
    guard = [f + (1, 0), f + (2, -guard_h + 6), f + (8, -guard_h), f + (guard_len - 6, -guard_h),
             f + (guard_len, -guard_h + 6), f + (guard_len + 2, 2)]
    parts.append(strip(guard, 5.0, 9 if not metal else 7, p.frame, grid))
    trigger = [f + (12, 4), f + (15, -6), f + (15, -14), f + (13, -19)]
    parts.append(strip(trigger, 5.0, 7, "steel" if metal else "abs", cell))
    parts.append(strip([f + (13, 4), (back_u + 14, p.vb - 6)], 3, 1.2, "steel", cell,
                       w_center=fw / 2 - 3))  # trigger bar
    parts += metal_frame_parts(p, cell) if metal else polymer_inserts(p, cell)
    return parts


def polymer_inserts(p: Pistol, cell: float) -> Parts:
    """Steel parts moulded into or pinned in a polymer frame: locking block, rear rail and
    trigger housing, front rails, pins, slide stop lever, magazine catch."""
    f, *_ = grip_geometry(p)
    fw = p.slide_w - 1
    parts = [plate(rectangle(18, 9, (p.breech + 12, p.vb - 3)), fw - 8, "steel", cell),
             plate(rectangle(20, 10, (f[0] - 50, p.vb - 5)), fw - 9, "steel", cell),
             plate(rectangle(10, 3, (p.slide_len - 45, p.vb - 1)), fw - 2, "steel", cell),
             strip([(p.breech - 4, p.vb - 4), (p.breech + 24, p.vb - 4)], 4, 1.4, "steel", cell,
                   w_center=-fw / 2 - 0.7),
             plate(rectangle(6, 10, f + (-3, -14)), fw - 4, "steel", cell)]
    for u, v in ((p.breech + 8, p.vb - 6), (p.breech + 20, p.vb - 4), (f[0] - 48, p.vb - 7)):
        parts += upright((u, v), -fw / 2, [(0, 1.5), (fw, 1.5)], "steel", cell)
    return parts


def metal_frame_parts(p: Pistol, cell: float) -> Parts:
    """Grip panels (wood, rubber or polymer) with their screws, hammer, mainspring, sear."""
    f, g, n, depth, length = grip_geometry(p)
    fw = p.slide_w - 1
    centre = grip_outline(p)[:4].mean(0)
    panel = (grip_outline(p)[:4] - centre) * [0.82, 0.9] + centre
    parts = []
    t = (p.grip_w - fw) / 2
    for side in (-1, 1):
        parts.append(plate(panel, t, p.panels, coarse(cell), w_center=side * (fw + t) / 2))
    for k in (0.25, 0.75):
        at = f - np.array([depth / 2, 0]) + g * length * k
        parts += upright(at, -p.grip_w / 2, [(0, 2.5), (p.grip_w, 2.5)], "steel", cell)
    pivot = np.array([f[0] - depth + 4, p.vb - 4])
    hammer = [pivot + (6, -5), pivot + (6, 4), pivot + (-2, 12), pivot + (-9, 14),
              pivot + (-10, 10), pivot + (-5, 2), pivot + (-5, -5)]
    parts.append(plate(hammer, 7, "steel", cell))
    back = f - np.array([depth - 4, 0])
    parts += spring(back + g * 14, back + g * (length * 0.7), 2.6, 0.5, 1.8, "steel", cell)
    parts.append(plate(rectangle(12, 5, pivot + (14, -2)), 5, "steel", cell))  # sear
    return parts


def magazine_in_grip(p: Pistol, cell: float, rounds_share: float) -> Parts:
    """The magazine seated in the grip, its top just under the slide."""
    f, g, n, depth, length = grip_geometry(p)
    d = p.cal.oal + 4.5
    centre = f - n * (4 + d / 2)
    lift = (p.vb - 3 - centre[1]) / g[1]
    top = centre + g * lift
    mag_len = (top[1] - (p.vt - p.height + 3)) / np.cos(np.radians(p.rake))
    rounds = int(round(capacity(p.cal, mag_len, p.double) * rounds_share))
    body = "polymer" if p.kind == "polymer" else "steel"
    mag = pistol_magazine(p.cal, mag_len, p.double, rounds, cell, body)
    return moved(mag, top, -p.rake)


def pistol_groups(rng, cell: float, kind: str, size: str = "full") -> dict[str, Parts]:
    """Every part of one pistol, grouped as it field-strips: slide, barrel, spring, frame,
    magazine."""
    p = draw_pistol(rng, kind, size)
    share = float(rng.choice([1.0, 1.0, rng.uniform(0.3, 1.0), 0.0]))
    groups = {"slide": slide(p, cell, open_top=kind == "steel" and rng.random() < 0.3),
              "barrel": barrel(p, cell, rng.random() < 0.5, tilting=kind != "pocket"),
              "spring": recoil_spring(p, cell, concentric=kind == "pocket"),
              "frame": frame(p, cell)}
    if rng.random() < 0.9:
        groups["magazine"] = magazine_in_grip(p, cell, share)
    if size == "long" and rng.random() < 0.4:  # a compensator on a long-slide competition gun
        groups["barrel"] += lathe((p.slide_len - 2, 0), (p.slide_len + 28, 0),
                                  [(0, p.r_barrel + 4), (30, p.r_barrel + 4)], "steel", cell,
                                  [(0, p.cal.bullet_d / 2 + 0.5), (30, p.cal.bullet_d / 2 + 0.5)])
    return groups
