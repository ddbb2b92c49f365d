"""Threat families: guns, gun parts, ammunition, knives, blades, shuriken, batons, explosives.

Real-world dimensions (mm) with the sources of the numbers in comments; every family draws its
proportions at random within the range real products span.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.shapes import band, bevel, cartridge, disc, plate, ring, slab
from simulator.solids import Item, Slab, rectangle, rod, rotate_2d, transform

# (case length, case diameter, bullet diameter, bullet length), from the C.I.P./SAAMI drawings
CALIBRES = {
    "9x19": (19.15, 9.93, 9.01, 15.0),
    ".45acp": (22.8, 12.0, 11.5, 17.0),
    "5.56x45": (44.7, 9.5, 5.7, 19.0),
    "7.62x39": (38.7, 11.35, 7.9, 26.0),
}


def _grip_outline(rear_u, top_v, length, width, angle_deg):
    """Grip polygon hanging from (rear_u, top_v), raked back by ``angle_deg`` from vertical."""
    corners = np.array([[0, 0], [width, 0], [width, -length], [0, -length]], np.float64)
    return rotate_2d(corners, -angle_deg) + [rear_u, top_v]


def _magazine(rear_u, top_v, length, angle, cell, loaded=True) -> list[Slab]:
    """Double-stack magazine in the grip: steel box walls with cartridges stacked inside."""
    parts = [plate(_grip_outline(rear_u + 3, top_v, length, 22, angle), 1.6, "steel", cell,
                   w_center=w) for w in (-10.5, 10.5)]
    if loaded:
        axis = rotate_2d(np.array([[0.0, -1.0]]), -angle)[0]
        for k in range(int(length // 10)):
            head = np.array([rear_u + 6, top_v]) + axis * (4 + 10 * k)
            off = rotate_2d(np.array([[1.0, 0.0]]), -angle)[0]
            parts += cartridge(head + off * (k % 2) * 2, off, 19.15, 9.93, 9.01, 15.0, cell)
    return parts


def pistol(rng, cell, length=None, polymer=None, loaded=True) -> list[Slab]:
    """Semi-automatic pistol lying on its side: slide (steel U-shell) over the barrel, frame,
    grip with magazine, trigger guard and trigger. Compact 160-180 mm long, full size 185-210,
    long-slide 220-250 (Glock 26 / 17 / 34 class dimensions)."""
    L = length or rng.uniform(160, 230)
    slide_h = rng.uniform(27, 33)
    width = rng.uniform(22, 30)
    polymer = rng.random() < 0.6 if polymer is None else polymer
    top = slide_h
    parts: list[Slab] = []
    # Slide: two steel side walls and a top, hollow over the barrel.
    outline = rectangle(L, slide_h, (0, top - slide_h / 2))
    for w in (-width / 2 + 2.5, width / 2 - 2.5):
        parts.append(plate(outline, 4.5, "steel", cell, holes=[(L * 0.15, top - 10, 5)],
                           w_center=w))
    parts.append(plate(rectangle(L, 5, (0, top - 2.5)), width - 9, "steel", cell))
    barrel_r = rng.uniform(6.5, 8)
    parts += rod((-L / 2 + 4, top - 14), (L / 2 - 1, top - 14), barrel_r, "steel", cell,
                 inner_radius=4.5)
    # Frame under the slide, grip, trigger guard.
    frame_mat = "abs" if polymer else "steel"
    frame_t = width * 0.85 if polymer else width * 0.4
    dust = rectangle(L * 0.62, 14, (L * 0.12, top - slide_h - 7))
    parts.append(plate(dust, frame_t, frame_mat, cell))
    grip_len = rng.uniform(0.5, 0.68) * L
    angle = rng.uniform(15, 22)
    rear = -L / 2 + 4
    parts.append(plate(_grip_outline(rear, top - slide_h + 2, grip_len, 32, angle), frame_t,
                       frame_mat, cell))
    parts.append(plate(rectangle(L * 0.3, 6, (-L * 0.05, top - slide_h - 3)), 12, "steel", cell))
    guard_c = (rear + 32 + 22, top - slide_h - 12)
    parts.append(ring(guard_c, 15, 5, frame_t * 0.6, frame_mat, cell, arc=(180, 360),
                      aspect=0.9))
    parts.append(band([(guard_c[0] - 6, guard_c[1] + 8), (guard_c[0] - 3, guard_c[1] - 6)],
                      4, 6, "steel", cell))
    parts += _magazine(rear, top - slide_h, grip_len, angle, cell, loaded)
    return parts


def revolver(rng, cell) -> list[Slab]:
    """Double-action revolver: barrel, frame, six-shot cylinder with cartridges, grip with wood
    panels over a steel strap. 180-300 mm long (2 to 6 inch barrels)."""
    barrel = rng.uniform(50, 155)
    cyl_len, cyl_r = rng.uniform(38, 44), rng.uniform(18, 21)
    frame_l = cyl_len + 40
    parts: list[Slab] = []
    parts += rod((frame_l / 2, 10), (frame_l / 2 + barrel, 10), 9.5, "steel", cell,
                 inner_radius=4.5)
    parts.append(plate(rectangle(frame_l, 48, (0, 4)), 7, "steel", cell, w_center=-cyl_r + 3))
    parts.append(plate(rectangle(frame_l, 48, (0, 4)), 7, "steel", cell, w_center=cyl_r - 3))
    parts += rod((-cyl_len / 2, 4), (cyl_len / 2, 4), cyl_r, "steel", cell,
                 inner_radius=cyl_r * 0.8)
    for k in range(6):  # cartridges in the chambers, seen along their axes' plane
        phi = 2 * np.pi * k / 6
        v = 4 + 12 * np.cos(phi)
        parts += [transform(s, w_offset=12 * np.sin(phi)) for s in
                  cartridge((-cyl_len / 2, v), (1, 0), 33, 9.6, 9.1, 14, cell)]
    grip = _grip_outline(-frame_l / 2, -18, rng.uniform(90, 115), 34, rng.uniform(20, 30))
    parts.append(plate(grip, 8, "steel", cell))
    for w in (-9, 9):
        parts.append(plate(grip, 8, "wood" if rng.random() < 0.6 else "rubber", cell,
                           w_center=w))
    parts.append(ring((-frame_l / 2 + 28, -22), 14, 4.5, 9, "steel", cell, arc=(180, 360)))
    return parts


def _finish(name, label, parts, rng) -> Item:
    return centred(Item(name, parts, label)).transformed(angle_deg=float(rng.uniform(0, 360)))


def centred(item: Item) -> Item:
    """The item moved so its bounding box is centred on the origin (placement relies on it)."""
    lo = np.min([s.bounds[:2] for s in item.slabs if len(s.uv)], axis=0)
    hi = np.max([s.bounds[3:5] for s in item.slabs if len(s.uv)], axis=0)
    return item.transformed(offset=-(lo + hi) / 2)


def gun_pistol(rng, cell):
    return _finish("pistol", "gun", pistol(rng, cell), rng)


def gun_revolver(rng, cell):
    return _finish("revolver", "gun", revolver(rng, cell), rng)


def gun_pistol_unloaded(rng, cell):
    """Pistol without its magazine, steel frame: the 'empty' gun a parcel might hide."""
    return _finish("pistol_unloaded", "gun", pistol(rng, cell, polymer=False, loaded=False), rng)


def part_barrel(rng, cell):
    length = rng.uniform(90, 500)  # pistol to rifle barrels
    r = rng.uniform(7, 13)
    parts = rod((-length / 2, 0), (length / 2, 0), r, "steel", cell,
                inner_radius=rng.uniform(2.8, 6))
    return _finish("loose_barrel", "gun_part", parts, rng)


def part_slide(rng, cell):
    parts = [s for s in pistol(rng, cell) if s.w_lo.min() > -16 and s.w_hi.max() < 16][:3]
    return _finish("loose_slide", "gun_part", parts, rng)


def part_magazine(rng, cell):
    length = rng.uniform(100, 150)
    parts = _magazine(0, length / 2, length, 0, cell, loaded=rng.random() < 0.6)
    return _finish("magazine", "gun_part", parts, rng)


def part_cylinder(rng, cell):
    r, length = rng.uniform(18, 21), rng.uniform(38, 44)
    parts = rod((-length / 2, 0), (length / 2, 0), r, "steel", cell, inner_radius=r * 0.8)
    parts.append(plate(rectangle(length, 6, (0, 0)), 6, "steel", cell))
    return _finish("revolver_cylinder", "gun_part", parts, rng)


def ammo_single(rng, cell):
    name = str(rng.choice(list(CALIBRES)))
    return _finish(f"cartridge_{name}", "ammunition", cartridge((0, 0), (1, 0), *CALIBRES[name],
                                                                cell), rng)


def ammo_loose(rng, cell):
    name = str(rng.choice(list(CALIBRES)))
    parts = []
    for _ in range(int(rng.integers(3, 9))):
        direction = rotate_2d(np.array([[1.0, 0.0]]), rng.uniform(0, 360))[0]
        parts += cartridge(rng.uniform(-30, 30, 2), direction, *CALIBRES[name], cell)
    return _finish("cartridges_loose", "ammunition", parts, rng)


def ammo_carton(rng, cell):
    """Box of 20-50 rounds: cardboard box, plastic tray, cartridges in a grid."""
    name = str(rng.choice(["9x19", ".45acp", "5.56x45"]))
    case_len, case_d, bullet_d, bullet_len = CALIBRES[name]
    cols, rows = int(rng.integers(4, 8)), int(rng.integers(4, 7))
    pitch = case_d + 1.5
    parts = []
    length = case_len + bullet_len * 0.7
    for i in range(rows):
        head = (-length / 2, (i - (rows - 1) / 2) * pitch)
        for j in range(cols):  # rows of cartridges lying side by side in depth
            parts += [transform(s, w_offset=(j - (cols - 1) / 2) * pitch)
                      for s in cartridge(head, (1, 0), case_len, case_d, bullet_d, bullet_len,
                                         cell)]
    outline = rectangle(length + 8, rows * pitch + 8)
    parts.append(plate(outline, 1.0, "cardboard", cell, w_center=cols * pitch / 2 + 2))
    parts.append(plate(outline, 1.0, "cardboard", cell, w_center=-cols * pitch / 2 - 2))
    return _finish("cartridge_box", "ammunition", parts, rng)


def ammo_shotshell(rng, cell):
    """12-gauge shells: 70 mm plastic hull, 20 mm across, brass head, lead shot."""
    parts = []
    for k in range(int(rng.integers(1, 6))):
        v = k * 21.5
        parts += rod((0, v), (70, v), 10.2, "polyethylene", cell, inner_radius=9.4)
        parts += rod((0, v), (rng.uniform(8, 16), v), 10.3, "brass", cell, inner_radius=9.8)
        parts += rod((12, v), (48, v), 8.5, "lead", cell)  # shot at ~60 % packing
    return _finish("shotgun_shells", "ammunition", parts, rng)


def _handle(u0, u1, height, thickness, material, cell, rivets=2) -> list[Slab]:
    parts = [plate(rectangle(u1 - u0, height, ((u0 + u1) / 2, 0)), thickness, material, cell)]
    parts.append(plate(rectangle((u1 - u0) * 0.9, height * 0.45, ((u0 + u1) / 2, 0)), 2.0,
                       "steel", cell))  # tang
    for k in range(rivets):
        u = u0 + (k + 1) * (u1 - u0) / (rivets + 1)
        parts.append(disc((u, 0), 2.5, thickness + 0.5, "brass", cell))
    return parts


def knife_kitchen(rng, cell):
    """Kitchen / chef's knife: 150-250 mm blade, 1.5-2.5 mm spine bevelled to the edge."""
    blade, height = rng.uniform(150, 250), rng.uniform(25, 50)
    outline = [(0, height / 2), (blade * 0.8, height / 2), (blade, height / 2 - 2),
               (blade * 0.8, -height * 0.2), (0, -height / 2)]
    parts = [plate(outline, bevel(height / 2, -height / 2, rng.uniform(1.5, 2.5)), "stainless",
                   cell)]
    parts += _handle(-rng.uniform(100, 130), 0, 22, rng.uniform(14, 20),
                     str(rng.choice(["abs", "wood"])), cell, rivets=int(rng.integers(0, 4)))
    return _finish("kitchen_knife", "knife", parts, rng)


def knife_folding(rng, cell):
    """Folding knife, open or closed: steel liners, plastic or aluminium scales, 60-100 mm
    blade."""
    blade, handle = rng.uniform(60, 100), rng.uniform(90, 130)
    height = rng.uniform(18, 28)
    outline = [(0, height / 2), (blade, height / 2 - 3), (blade * 0.85, -height / 2 + 4),
               (0, -height / 2)]
    is_open = rng.random() < 0.5
    blade_slab = plate(outline, bevel(height / 2, -height / 2, rng.uniform(2.5, 3.5)), "steel",
                       cell)
    if not is_open:
        blade_slab = transform(blade_slab, 180, (0, 0))
    parts = [blade_slab]
    body = rectangle(handle, height + 4, (-handle / 2, 0))
    scale = str(rng.choice(["abs", "aluminium"]))
    for w in (-3.2, 3.2):
        parts.append(plate(body, 1.0, "steel", cell, w_center=w))
        parts.append(plate(body, 2.5, scale, cell, w_center=w * 1.8))
    parts.append(disc((-4, 0), 3.5, 12, "steel", cell))  # pivot
    return _finish("folding_knife_open" if is_open else "folding_knife_closed", "knife",
                   parts, rng)


def knife_combat(rng, cell):
    """Fixed combat knife: 4-6 mm thick clip-point blade 150-200 mm, steel guard, full tang."""
    blade, height = rng.uniform(150, 200), rng.uniform(30, 40)
    outline = [(0, height / 2), (blade * 0.7, height / 2), (blade, 0), (blade * 0.75,
               -height / 2), (0, -height / 2)]
    parts = [plate(outline, bevel(height / 2, -height / 2, rng.uniform(4, 6)), "steel", cell)]
    parts.append(plate(rectangle(8, height + 30, (-4, 0)), 8, "steel", cell))
    parts += _handle(-rng.uniform(110, 130), -8, 30, 24, "rubber", cell, rivets=0)
    return _finish("combat_knife", "knife", parts, rng)


def knife_cleaver(rng, cell):
    blade, height = rng.uniform(160, 200), rng.uniform(70, 100)
    outline = rectangle(blade, height, (blade / 2, -height / 2 + 15))
    parts = [plate(outline, bevel(15, -height + 15, rng.uniform(2, 3.5)), "stainless", cell,
                   holes=[(blade - 20, 0, 7)])]
    parts += _handle(-120, 0, 24, 20, "wood", cell, rivets=3)
    return _finish("cleaver", "knife", parts, rng)


def blade_razor(rng, cell):
    """Double-edge razor blade: 43 x 22 mm, 0.1 mm stainless with its central slot."""
    outline = rectangle(43, 22)
    s = plate(outline, 0.1, "stainless", cell)
    uv = s.uv.astype(np.float64)
    slot = (np.abs(uv[:, 1]) < 1.5) & (np.abs(uv[:, 0]) < 15)
    parts = [slab(uv[~slot], 0.1, "stainless", cell)]
    stack = int(rng.integers(1, 11))  # sold in packs of 5 or 10
    parts = [transform(p, w_offset=0.12 * k) for k in range(stack) for p in parts]
    return _finish("razor_blades", "blade", parts, rng)


def blade_utility(rng, cell):
    """Box-cutter blade: trapezoid 61 x 19 mm, 0.6 mm; sometimes a snap-off blade 100 x 18."""
    if rng.random() < 0.5:
        outline = [(0, 0), (61, 0), (61 - 12, 19), (12, 19)]
        return _finish("utility_blade", "blade", [plate(outline, 0.6, "steel", cell)], rng)
    outline = [(0, 0), (100, 0), (95, 18), (0, 18)]
    return _finish("snap_off_blade", "blade", [plate(outline, 0.5, "steel", cell)], rng)


def blade_scalpel(rng, cell):
    outline = [(0, 0), (40, 3), (30, 9), (0, 8)]
    return _finish("scalpel_blade", "blade", [plate(outline, 0.4, "stainless", cell)], rng)


def shuriken(rng, cell):
    """Throwing star: 4 to 8 points, 60-120 mm across, 1.5-3 mm steel, often a centre hole."""
    points = int(rng.integers(4, 9))
    outer = rng.uniform(30, 60)
    inner = outer * rng.uniform(0.3, 0.5)
    phi = np.arange(2 * points) * np.pi / points
    radius = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    outline = np.stack([radius * np.cos(phi), radius * np.sin(phi)], 1)
    holes = [(0, 0, inner * rng.uniform(0.3, 0.6))] if rng.random() < 0.7 else []
    return _finish(f"shuriken_{points}", "shuriken",
                   [plate(outline, rng.uniform(1.5, 3), "steel", cell, holes=holes)], rng)


def baton_telescopic(rng, cell):
    """Telescopic baton, 3 nested steel tubes: collapsed 160-240 mm, extended 400-650 mm."""
    seg = rng.uniform(160, 220)
    radii = (12.5, 10.0, 7.5)
    extended = rng.random() < 0.5
    parts = []
    for k, r in enumerate(radii):
        start = k * (seg - 20) if extended else k * 6
        parts += rod((start, 0), (start + seg, 0), r, "steel", cell, inner_radius=r - 1.4)
    parts += rod((0, 0), (seg * 0.6, 0), 14.5, "rubber", cell, inner_radius=12.6)
    parts.append(disc((0, 0), 1, 1, "steel", cell))
    tip_u = (2 * (seg - 20) + seg) if extended else seg + 12
    parts.append(slab(np.array([[tip_u, 0.0]]), 1, "steel", cell))
    parts += rod((tip_u - 12, 0), (tip_u, 0), 8, "steel", cell)
    return _finish("telescopic_baton_" + ("open" if extended else "closed"), "baton", parts, rng)


def baton_straight(rng, cell):
    """Straight baton / tonfa-like rod: 500-650 mm, polycarbonate or aluminium."""
    length = rng.uniform(500, 650)
    if rng.random() < 0.5:
        parts = rod((0, 0), (length, 0), 15, "abs", cell)
    else:
        parts = rod((0, 0), (length, 0), 14, "aluminium", cell, inner_radius=11)
    parts += rod((0, 0), (160, 0), 17, "rubber", cell, inner_radius=15)
    return _finish("straight_baton", "baton", parts, rng)


def _wire(rng, start, end, cell) -> list[Slab]:
    """A twin wire (copper in PVC) sagging between two points."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    t = np.linspace(0, 1, 12)[:, None]
    sag = np.sin(np.pi * t) * rng.uniform(-30, 30)
    normal = rotate_2d((end - start)[None] / (np.linalg.norm(end - start) + 1e-9), 90)[0]
    pts = start + (end - start) * t + normal * sag
    return [band(pts, 2.4, 2.0, "pvc", cell), band(pts, 0.8, 0.6, "copper", cell)]


def explosive(rng, cell):
    """Improvised device: organic charge (block or sticks of RDX / TNT / PETN / AN), detonator
    (aluminium tube with a dense primary charge), wires, battery, sometimes a timer board."""
    material = str(rng.choice(["rdx", "tnt", "petn", "ammonium_nitrate"]))
    parts: list[Slab] = []
    if rng.random() < 0.5:
        size = (rng.uniform(80, 180), rng.uniform(50, 100))
        parts.append(plate(rectangle(*size), rng.uniform(20, 50), material, cell))
        anchor = np.array([size[0] / 2, 0.0])
    else:
        n, length = int(rng.integers(2, 6)), rng.uniform(120, 200)
        for k in range(n):
            parts += rod((-length / 2, k * 31), (length / 2, k * 31), 15, material, cell)
        parts.append(band([(0, -16), (0, n * 31 - 15)], 25, 32, "polyethylene", cell))  # tape
        anchor = np.array([length / 2, 0.0])
    det_tip = anchor + [rng.uniform(-30, -10), rng.uniform(-10, 10)]
    det_end = det_tip + [rng.uniform(45, 70), 0]
    parts += rod(det_tip, det_end, 3.6, "aluminium", cell, inner_radius=3.2)
    parts += rod(det_tip, det_tip + [10, 0], 3.1, "lead", cell)
    battery_at = anchor + [rng.uniform(60, 120), rng.uniform(-60, 60)]
    if rng.random() < 0.5:  # 9 V block: 48.5 x 26.5 x 17.5 mm
        parts.append(plate(rectangle(48.5, 26.5, battery_at), 17.5, "battery", cell))
    else:  # AA cells: 50.5 mm long, 14.5 mm across
        for k in range(int(rng.integers(2, 5))):
            at = battery_at + [0, 15 * k]
            parts += rod(at, at + [50.5, 0], 7.25, "battery", cell)
    parts += _wire(rng, det_end, battery_at, cell)
    if rng.random() < 0.5:
        board = battery_at + [0, -55]
        parts.append(plate(rectangle(50, 35, board), 1.6, "fr4", cell))
        for _ in range(6):
            parts.append(plate(rectangle(6, 4, board + rng.uniform(-20, 20, 2)), 2, "copper",
                               cell))
        parts += _wire(rng, board, battery_at, cell)
    return _finish("ied", "explosive", parts, rng)


THREAT_BUILDERS = {
    "gun": [(gun_pistol, 3.0), (gun_revolver, 1.5), (gun_pistol_unloaded, 1.0)],
    "gun_part": [(part_barrel, 1.0), (part_slide, 1.0), (part_magazine, 1.5),
                 (part_cylinder, 0.7)],
    "ammunition": [(ammo_single, 1.0), (ammo_loose, 1.5), (ammo_carton, 1.0),
                   (ammo_shotshell, 0.7)],
    "knife": [(knife_kitchen, 2.0), (knife_folding, 2.0), (knife_combat, 1.0),
              (knife_cleaver, 0.5)],
    "blade": [(blade_razor, 1.0), (blade_utility, 1.5), (blade_scalpel, 0.5)],
    "shuriken": [(shuriken, 1.0)],
    "baton": [(baton_telescopic, 2.0), (baton_straight, 1.0)],
    "explosive": [(explosive, 1.0)],
}
