"""Gun families (class 'gun'): pistols of every size and build, revolvers, a field-stripped
pistol and a 3D-printed one (mm). The part builders live in ``pistols`` and ``revolvers``.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.ammo import CALIBRES
from simulator.phantoms.geometry import (
    Parts,
    cylinder,
    finish,
    lathe,
    moved,
    plate,
    shell,
    strip,
    upright,
)
from simulator.phantoms.magazines import pistol_magazine
from simulator.phantoms.pistols import pistol_groups
from simulator.phantoms.revolvers import revolver_groups
from simulator.solids import Item, Slab, rectangle


def _all(groups: dict[str, Parts]) -> Parts:
    return [s for parts in groups.values() for s in parts]


def pistol_polymer(rng, cell) -> Item:
    """Striker-fired polymer-frame pistol (Glock, P320, M&P class), compact or full size."""
    size = str(rng.choice(["compact", "full", "full"]))
    return finish("pistol_polymer", "gun", _all(pistol_groups(rng, cell, "polymer", size)),
                  size=size)


def pistol_steel(rng, cell) -> Item:
    """Hammer-fired pistol on a steel or aluminium frame with grip panels (1911, Beretta 92,
    SIG P226, CZ 75 class)."""
    return finish("pistol_steel", "gun", _all(pistol_groups(rng, cell, "steel")))


def pistol_pocket(rng, cell) -> Item:
    """Small blowback pocket pistol, fixed barrel with the recoil spring around it (Walther
    PPK, Makarov class), .380 ACP."""
    return finish("pistol_pocket", "gun", _all(pistol_groups(rng, cell, "pocket")))


def pistol_long(rng, cell) -> Item:
    """Long-barrelled pistols: long-slide competition 9 mm (Glock 34 class, sometimes with a
    compensator), or a .22 target pistol with a tubular receiver and bull barrel."""
    if rng.random() < 0.5:
        return finish("pistol_long", "gun", _all(pistol_groups(rng, cell, "polymer", "long")),
                      variant="long_slide")
    return finish("pistol_long", "gun", target_pistol(rng, cell), variant="target_22")


def target_pistol(rng, cell) -> Parts:
    """Ruger Mark style .22: steel tube receiver (OD 28 mm) with the bolt inside, a bull
    barrel (OD 22 mm) of 4.5-6.9 inches, a steeply raked grip frame with panels, and a
    10-round single-stack magazine. 225-300 mm long."""
    receiver, barrel_len = rng.uniform(105, 118), rng.uniform(114, 175)
    parts = cylinder((0, 0), (receiver, 0), 14, "steel", cell, inner=11)
    parts += cylinder((4, 0), (62, 0), 10.5, "steel", cell)  # bolt
    parts += lathe((receiver, 0), (receiver + barrel_len, 0),
                   [(0, 11.5), (barrel_len - 4, 11.5), (barrel_len, 10)], "steel", cell,
                   [(0, 2.8), (barrel_len, 2.8)])
    parts.append(plate(rectangle(5, 7, (receiver + barrel_len - 8, 13)), 3, "steel", cell))
    rake = np.radians(rng.uniform(28, 36))
    g = np.array([-np.sin(rake), -np.cos(rake)])
    top_front, top_back = np.array([62.0, -12]), np.array([18.0, -12])
    length = rng.uniform(95, 110)
    grip = [top_front, top_front + g * length, top_back + g * length + (8, 0), top_back,
            (8, -8), (8, -12)]
    frame_mat = str(rng.choice(["steel", "aluminium"]))
    parts += shell(grip, 22, 2.0, frame_mat, cell)
    parts.append(plate(rectangle(100, 6, (62, -14)), 20, frame_mat, cell))
    for side in (-1, 1):
        parts.append(plate((np.array(grip[:4]) - grip[0]) * 0.85 + grip[0] + (-3, -4), 4,
                           str(rng.choice(["wood", "abs", "rubber"])), cell, w_center=side * 13))
    guard = [(64, -14), (66, -36), (72, -40), (102, -40), (106, -34), (106, -16)]
    parts.append(strip(guard, 5, 8, frame_mat, cell))
    parts.append(strip([(76, -16), (79, -26), (77, -33)], 4.5, 6, "steel", cell))
    mag = pistol_magazine(CALIBRES[".22lr"], length + 6, False, int(rng.integers(0, 11)), cell)
    top = top_front + (-14, 6) + g * 0
    return parts + moved(mag, top, -np.degrees(rake))


def revolver(rng, cell) -> Item:
    """Double-action revolver, 2-6 inch barrel (S&W J/K/L/N frames, Colt Python, Ruger GP100
    class): cylinder with its chambers loaded, barrel and ejector shroud, frame, hammer,
    trigger, grip with wood or rubber."""
    groups, meta = revolver_groups(rng, cell)
    return finish("revolver", "gun", _all(groups), **meta)


def pistol_fieldstripped(rng, cell) -> Item:
    """A pistol taken apart as for cleaning: frame, slide, barrel, recoil spring and magazine
    lying side by side. Labelled gun_part: the image shows separate parts (no outline of a gun
    to call), and the parcel is diverted either way."""
    kind = str(rng.choice(["polymer", "steel"]))
    groups = pistol_groups(rng, cell, kind)
    parts = list(groups["frame"])
    lift = rng.uniform(45, 70)
    parts += moved(groups["slide"], (rng.uniform(-20, 20), lift), rng.uniform(-8, 8))
    parts += moved(groups["barrel"], (rng.uniform(-10, 30), lift + rng.uniform(35, 55)),
                   rng.uniform(-15, 15))
    parts += moved(groups["spring"], (rng.uniform(-10, 40), -rng.uniform(80, 110)),
                   rng.uniform(-20, 20))
    if "magazine" in groups:
        parts += moved(groups["magazine"], (rng.uniform(60, 110), rng.uniform(-20, 10)),
                       rng.uniform(-30, 30), pivot=(60, -60))
    return finish("pistol_fieldstripped", "gun_part", parts, kind=kind)


def pistol_printed(rng, cell) -> Item:
    """3D-printed pistol (FGC-9 / Glock-frame-copy class): slide and frame printed in polymer,
    the steel kept to a thin barrel liner, springs, pins and a commercial magazine. Mostly
    faint organic: the hard case for a detector."""
    groups = pistol_groups(rng, cell, "polymer")
    parts = [Slab("abs", s.uv, s.w_lo, s.w_hi, s.cell_mm) for s in groups["slide"]]
    parts += [s for s in groups["frame"] if s.material == "abs"] + groups["spring"]
    barrel = [s for s in groups["barrel"] if s.material == "steel"]
    lo, hi = np.min([s.bounds[:2] for s in barrel], 0), np.max([s.bounds[3:5] for s in barrel], 0)
    v = (lo[1] + hi[1]) / 2
    parts += cylinder((lo[0], v), (hi[0], v), 6.0, "steel", cell, inner=4.6)  # barrel liner
    parts += [Slab("abs", s.uv, s.w_lo, s.w_hi, s.cell_mm) for s in barrel]
    parts += groups.get("magazine", [])
    for _ in range(int(rng.integers(2, 5))):  # steel pins and screws holding the print
        at = (lo[0] + rng.uniform(0, hi[0] - lo[0]), v - rng.uniform(8, 25))
        parts += upright(at, -13, [(0, 1.5), (26, 1.5)], "steel", cell)
    return finish("pistol_printed", "gun", parts)


# Weights include the shares of the simpler first-generation designs these replaced, so
# each kind of object is drawn as often as before.
GUN_FAMILIES = [(pistol_polymer, 4.5), (pistol_steel, 2.5), (pistol_pocket, 1.0),
                (pistol_long, 1.0), (revolver, 2.75), (pistol_printed, 0.4)]
