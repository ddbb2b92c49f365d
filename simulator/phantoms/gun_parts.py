"""Loose gun parts (class 'gun_part'), in mm: what a parcel holds when a gun is shipped in
pieces. Barrels (pistol, revolver, rifle), slides, frames and receivers, magazines (see
``magazines``) and revolver cylinders, each cut from the same models as the whole guns.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms import guns
from simulator.phantoms.ammo import CALIBRES, cartridge
from simulator.phantoms.geometry import (
    Parts,
    coarse,
    copies,
    cylinder,
    finish,
    lathe,
    plate,
    shell,
    strip,
    upright,
)
from simulator.phantoms.magazines import gun_magazine
from simulator.phantoms.pistols import pistol_groups
from simulator.phantoms.revolvers import cylinder_drum, revolver_groups
from simulator.solids import Item, rectangle


def gun_barrel(rng, cell) -> Item:
    """A pistol barrel (chamber hood and lug), a revolver barrel with its shroud, or a rifle
    barrel: 300-510 mm, 25-30 mm at the chamber tapering to 15-19 mm, threaded muzzle."""
    kind = str(rng.choice(["pistol", "revolver", "rifle", "rifle"]))
    if kind == "pistol":
        return finish("gun_barrel", "gun_part", pistol_groups(rng, cell, "polymer")["barrel"],
                      kind=kind)
    if kind == "revolver":
        return finish("gun_barrel", "gun_part", revolver_groups(rng, cell)[0]["barrel"],
                      kind=kind)
    length = rng.uniform(300, 510)
    breech, muzzle = rng.uniform(12.5, 15), rng.uniform(7.5, 9.5)
    bore = rng.uniform(2.8, 3.9)  # 5.56 to 7.62 mm bores
    outer = [(0, breech), (45, breech), (70, muzzle + 3), (length - 15, muzzle),
             (length - 15, muzzle - 1.5), (length, muzzle - 1.5)]
    parts = lathe((0, 0), (length, 0), outer, "steel", cell,
                  [(0, 5.0), (40, 4.8), (46, bore), (length, bore)])
    if rng.random() < 0.5:  # gas block
        parts += cylinder((length * 0.55, 0), (length * 0.55 + 20, 0), muzzle + 6, "steel", cell,
                          inner=muzzle)
    return finish("gun_barrel", "gun_part", parts, kind=kind)


def gun_slide(rng, cell) -> Item:
    """A pistol slide on its own, sometimes with the barrel and recoil spring still in it."""
    groups = pistol_groups(rng, cell, str(rng.choice(["polymer", "steel", "pocket"])))
    parts = groups["slide"]
    if rng.random() < 0.5:
        parts = parts + [s for s in groups["barrel"] if s.material == "steel"] + groups["spring"]
    return finish("gun_slide", "gun_part", parts)


def gun_frame(rng, cell) -> Item:
    """A stripped pistol frame (polymer with steel inserts, or steel / aluminium with grip
    panels), or an AR-15 lower receiver."""
    if rng.random() < 0.7:
        groups = pistol_groups(rng, cell, str(rng.choice(["polymer", "polymer", "steel"])))
        return finish("gun_frame", "gun_part", groups["frame"], kind="pistol")
    return finish("gun_frame", "gun_part", ar_lower(rng, cell), kind="ar15_lower")


def ar_lower(rng, cell) -> Parts:
    """AR-15 lower receiver: forged aluminium body with the magazine well, trigger guard,
    buffer tube threads; steel trigger, hammer, pins and springs; polymer pistol grip."""
    body = [(0, 0), (150, 0), (150, -14), (130, -20), (118, -22), (60, -22), (40, -30),
            (5, -30), (0, -12)]
    well = rectangle(62, 40, (100, -20))
    parts = [plate(body, 24, "aluminium", cell, holes=[rectangle(58, 14, (100, -8))])]
    parts += shell(well, 24, 2.2, "aluminium", cell)
    parts.append(strip([(60, -22), (62, -48), (70, -52), (40, -52), (36, -40)], 5, 10,
                       "aluminium", cell))
    parts.append(plate([(36, -28), (10, -30), (-12, -90), (12, -96), (40, -34)], 28, "abs",
                       coarse(cell)))
    parts += lathe((-2, -6), (-40, -6), [(0, 15), (38, 15)], "aluminium", cell,
                   [(0, 12.5), (38, 12.5)])  # start of the buffer tube
    parts.append(plate([(70, -16), (78, -16), (80, -34), (74, -40)], 6, "steel", cell))
    parts.append(plate([(42, -6), (58, -4), (60, -14), (48, -16)], 7, "steel", cell))
    for at in ((52, -14), (72, -12), (8, -6), (140, -6)):
        parts += upright(at, -12, [(0, 2), (24, 2)], "steel", cell)
    return parts


def revolver_cylinder(rng, cell) -> Item:
    """A revolver cylinder out of its frame: 5-8 chambers, with crane and ejector rod,
    empty, with fired cases or loaded."""
    n = int(rng.choice([5, 6, 6, 6, 7, 8]))
    c = CALIBRES[str(rng.choice([".38spl", ".357mag"]))]
    r_ch = c.base_d / 2 + 0.08
    r_bolt = (2 * r_ch + 2.2) / (2 * np.sin(np.pi / n))
    radius = r_bolt + r_ch + rng.uniform(2.6, 3.6)
    length = rng.uniform(38.5, 44)
    parts = cylinder_drum(n, r_bolt, radius, length, r_ch, rng.random() < 0.6, cell)
    parts += cylinder((-3, -r_bolt), (length + 45, -r_bolt), 3.0, "steel", cell)
    parts.append(plate([(length + 2, -r_bolt + 4), (length + 14, -r_bolt + 4),
                        (length + 14, -r_bolt - radius - 6), (length + 2, -r_bolt - radius)],
                       10, "steel", cell))  # crane
    state = str(rng.choice(["empty", "spent", "loaded"]))
    if state != "empty":
        phi = 2 * np.pi * np.arange(n) / n
        heads = np.stack([np.full(n, -1.3), -r_bolt + r_bolt * np.cos(phi)], 1)
        parts += copies(cartridge(c, cell, state == "spent"), heads, r_bolt * np.sin(phi))
    return finish("revolver_cylinder", "gun_part", parts, state=state)


# Weights include the shares of the simpler first-generation designs these replaced, so
# each kind of object is drawn as often as before.
GUN_PART_FAMILIES = [(gun_barrel, 1.5), (gun_slide, 1.5), (gun_frame, 1.0),
                     (gun_magazine, 2.25), (revolver_cylinder, 1.05),
                     (guns.pistol_fieldstripped, 0.7)]
