"""Hand tools (benign hard negatives: dense steel with threat-like outlines), lying flat (mm).

Dimensions from common catalogue sizes: combination pliers 160-200 mm, needle-nose to 200 mm,
scissors 130-250 mm, combination spanners 100-300 mm (8-32 mm sizes), adjustable wrenches
150-300 mm, screwdrivers 150-320 mm overall, claw hammers 280-340 mm with 450-700 g heads,
staplers 150-200 mm, 5 m tape measures (19-25 mm blade), padlocks 30-60 mm, steel rulers,
screwdriver bit sets.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.geometry import (
    Parts,
    circle,
    coarse,
    cylinder,
    finish,
    ground,
    lathe,
    moved,
    plate,
    shell,
    spline,
    spring,
    strip,
    upright,
)
from simulator.solids import Item, ellipse, rectangle


def pliers(rng, cell) -> Item:
    """Combination, needle-nose, slip-joint or locking pliers: two forged steel halves crossing
    at the joint, PVC-dipped handles, sometimes jaws a little open."""
    style = str(rng.choice(["combination", "needle", "slip", "locking"]))
    jaw = {"combination": 40, "needle": 70, "slip": 38, "locking": 45}[style] * rng.uniform(0.85,
                                                                                           1.15)
    handle = rng.uniform(110, 150)
    t = rng.uniform(7, 10)
    open_deg = rng.uniform(0, 12)
    parts: Parts = []
    for side in (-1, 1):
        tip_w = 2.5 if style == "needle" else 5.0
        half = np.array([(0, side * 10), (jaw * 0.4, side * 9), (jaw, side * tip_w * 0.5),
                         (jaw, side * 0.3), (0, side * 0.3)])
        limb = spline([(0, 0), (-handle * 0.4, side * 14), (-handle, side * 24)], 12)
        body = [plate(half, t, "steel", cell, w_center=side * t * 0.3),
                strip(limb, 10, t * 0.8, "steel", cell, w_center=side * t * 0.3),
                plate(circle(11), t, "steel", cell, w_center=side * t * 0.3)]
        grip = limb[4:] + [0, side * 1.0]
        body.append(strip(grip, 15, t * 0.8 + 4, "pvc", coarse(cell), w_center=side * t * 0.3))
        parts += moved(body, angle_deg=side * open_deg / 2)
    parts += upright((0, 0), -t, [(0, 4), (2 * t, 4)], "steel", cell)
    if style == "locking":
        parts += cylinder((-handle, 24), (-handle - 25, 26), 4, "steel", cell)  # adjusting screw
        parts.append(strip([(-20, 5), (-handle * 0.8, -10)], 6, 2, "steel", cell))
    return finish("pliers", None, parts, style=style)


def scissors(rng, cell) -> Item:
    """Household or tailor's scissors: two ground stainless blades on a screw pivot, moulded
    plastic finger loops (or forged steel loops on shears); closed or a little open."""
    blade = rng.uniform(60, 130)
    loops = rng.uniform(55, 85)
    metal_loops = rng.random() < 0.25
    open_deg = rng.uniform(0, 35) if rng.random() < 0.5 else 0.0
    parts: Parts = []
    for side in (-1, 1):
        outline = [(-8, side * 4), (0, side * 8), (blade, side * 0.6), (blade, side * 0.1),
                   (0, side * 0.1), (-8, 0)]
        edge = [np.array([(blade, side * 0.1), (0, side * 0.1)])]
        half = [ground(outline, 2.4, 5, "stainless", cell, edges=edge, w_center=side * 1.2)]
        centre = np.array([-loops * 0.6, -side * 14.0])
        ring = ellipse(loops * 0.28, 12, centre, n=40)
        if metal_loops:
            half.append(strip(ring, 5, 5, "steel", cell, closed=True, w_center=side * 1.2))
            half.append(strip([(-8, -side * 3), centre + (loops * 0.25, side * 6)], 7, 5,
                              "steel", cell, w_center=side * 1.2))
        else:
            half.append(strip(ring, 6, 8, "abs", coarse(cell), closed=True,
                              w_center=side * 1.2))
            half.append(strip([(-8, -side * 3), centre + (loops * 0.25, side * 6)], 9, 8, "abs",
                              coarse(cell), w_center=side * 1.2))
            half.append(strip([(-8, -side * 2), (-loops * 0.45, -side * 8)], 5, 2, "stainless",
                              cell, w_center=side * 1.2))  # tang inside the moulding
        parts += moved(half, angle_deg=side * open_deg / 2)
    parts += upright((0, 0), -3, [(0, 2.6), (6, 2.6)], "steel", cell)
    return finish("scissors", None, parts, open_deg=round(open_deg))


def spanner(rng, cell) -> Item:
    """Combination spanner: flat shank, open jaw at one end (opening = size, angled 15
    degrees), 12-point ring at the other, chrome-vanadium steel. Size s = 8-32 mm, length
    ~ 10 s + 60, head ~ 2 s + 8 across."""
    size = rng.uniform(8, 32)
    length = 10 * size + 60
    t = 3 + size * 0.2
    head = size + 4  # head radius
    shank = size * 0.4 + 3  # half-width at the heads, narrowing to the middle
    parts = [plate([(-length / 2 + head, -shank), (0, -shank * 0.75),
                    (length / 2 - head, -shank), (length / 2 - head, shank), (0, shank * 0.75),
                    (-length / 2 + head, shank)], t, "steel", cell)]
    jaw_c = np.array([length / 2 - head * 0.8, 0.0])
    slot = rectangle(head * 2.2, size, jaw_c + (head * 1.0, 0), 15)
    parts.append(plate(circle(head, jaw_c), t + 1, "steel", cell, holes=[slot]))
    ring_c = (-length / 2 + head * 0.8, 0)
    parts.append(plate(circle(head * 0.92, ring_c), t + 1.5, "steel", cell,
                       holes=[circle(size * 0.58, ring_c, 12)], w_center=1.0))
    return finish("spanner", None, parts, size_mm=round(size))


def adjustable_wrench(rng, cell) -> Item:
    """Adjustable wrench 150-300 mm: forged head with a fixed jaw, a sliding jaw on a rack,
    the worm screw, a handle with a hanging hole."""
    length = rng.uniform(150, 300)
    k = length / 250
    t = 12 * k
    handle = [(0, -9 * k), (-length + 30 * k, -7 * k), (-length, -4 * k), (-length, 6 * k),
              (-length + 30 * k, 9 * k), (0, 11 * k)]
    hole = circle(5 * k, (-length + 12 * k, 1 * k))
    parts = [plate(handle, t * 0.7, "steel", cell, holes=[hole])]
    head = [(-10 * k, -14 * k), (25 * k, -18 * k), (45 * k, -10 * k), (48 * k, 28 * k),
            (30 * k, 34 * k), (18 * k, 18 * k), (-5 * k, 16 * k)]
    gap = rng.uniform(0.1, 0.9) * 24 * k
    parts.append(plate(head, t, "steel", cell, holes=[rectangle(26 * k, 14 * k,
                                                                (36 * k, 20 * k))]))
    parts.append(plate(rectangle(22 * k, 12 * k, (34 * k, 8 * k - gap * 0.3)), t, "steel", cell))
    parts += cylinder((5 * k, -6 * k), (24 * k, -6 * k), 5 * k, "steel", cell)  # worm
    return finish("adjustable_wrench", None, parts)


def screwdriver(rng, cell) -> Item:
    """Screwdriver: round steel shaft 3-8 mm, 75-200 mm, flat or cross tip, running 30 mm into
    a moulded handle (acetate, 25-35 mm, sometimes with a rubber grip)."""
    shaft, r = rng.uniform(75, 200), rng.uniform(1.5, 4.0)
    handle, hr = rng.uniform(85, 120), rng.uniform(12, 17)
    parts = cylinder((-30, 0), (shaft - 6, 0), r, "steel", cell)
    tip = [(0, r), (6, r * (0.35 if rng.random() < 0.5 else 0.9))]
    parts += lathe((shaft - 6, 0), (shaft, 0), tip, "steel", cell)
    parts += lathe((0, 0), (-handle, 0), [(0, hr * 0.6), (12, hr), (handle - 8, hr),
                                           (handle, hr * 0.7)], "abs", coarse(cell))
    return finish("screwdriver", None, parts)


def hammer(rng, cell) -> Item:
    """Claw or ball-peen hammer lying on its side: forged head (450-700 g) with the eye, a
    wood, fibreglass or steel-tube handle with a rubber grip."""
    length = rng.uniform(280, 340)
    head_len = rng.uniform(110, 135)
    claw = rng.random() < 0.7
    h = head_len
    if claw:  # the claw curves down towards the handle
        outline = np.vstack([[(0, 13), (h * 0.45, 12)],
                             spline([(h * 0.6, 11), (h * 0.85, 6), (h, -14)], 10),
                             spline([(h * 0.93, -16), (h * 0.75, -6), (h * 0.55, -10)], 8),
                             [(h * 0.45, -12), (0, -13)]])
    else:
        outline = np.array([(0, 13), (h * 0.45, 12), (h * 0.75, 8), (h, 11), (h, -11),
                            (h * 0.75, -8), (h * 0.45, -12), (0, -13)])
    outline = outline - [h * 0.45, -8]  # the eye sits over the handle
    parts = [plate(outline, 26, "steel", cell)]
    material = str(rng.choice(["wood", "fr4", "steel"]))
    if material == "steel":
        parts += cylinder((0, 0), (0, -length), 11, "steel", cell, inner=9.8)
    else:
        shaft = [(-11, 0), (11, 0), (13, -length * 0.8), (15, -length + 6), (0, -length),
                 (-15, -length + 6), (-13, -length * 0.8)]
        parts.append(plate(shaft, 24, material, coarse(cell) if material == "wood" else cell))
    if material != "wood":
        parts.append(plate(ellipse(17, length * 0.2, (0, -length * 0.78)), 34, "rubber",
                           coarse(cell)))
    return finish("hammer", None, parts, handle=material)


def stapler(rng, cell) -> Item:
    """Desk stapler standing on its base: steel base with anvil, the staple channel (a steel
    U) with its spring and a strip of staples, a plastic or die-cast top, the hinge pin."""
    length = rng.uniform(140, 200)
    die_cast = rng.random() < 0.3
    parts = [plate(rectangle(length, 36), 1.5, "steel", cell, w_center=-24)]
    parts.append(plate(rectangle(length * 0.95, 12, (length * 0.02, 0)), 1.0, "steel", cell,
                       w_center=8))
    parts += shell(rectangle(length * 0.9, 12, (length * 0.02, 0)), 14, 0.8, "steel", cell)
    parts += spring((-length * 0.4, 0), (length * 0.1, 0), 2.5, 0.3, 1.2, "steel", cell)
    parts.append(plate(rectangle(length * 0.5, 12.6, (length * 0.2, 0)), 0.5, "steel", cell,
                       w_center=2))  # the staple strip
    top = "zinc" if die_cast else "abs"
    parts += shell(rectangle(length, 34), 48, 1.2 if die_cast else 2.5, top,
                   cell if die_cast else coarse(cell))
    parts += upright((-length * 0.45, 0), -25, [(0, 2), (50, 2)], "steel", cell)
    return finish("stapler", None, parts, top=top)


def tape_measure(rng, cell) -> Item:
    """Tape measure: ABS case 60-80 mm, the coiled steel tape (0.12 mm, 19-25 mm wide, 3-8 m:
    a dense ring), its return spring, the hook, a belt clip."""
    size = rng.uniform(60, 80)
    depth = rng.uniform(30, 42)
    parts = shell(np.vstack([ellipse(size / 2, size / 2, n=40)[::-1][:21],
                             [(-size / 2, -size / 2), (size / 2, -size / 2)]]), depth, 2.2,
                  "abs", coarse(cell))
    tape_w = depth - 8
    r_out, r_in = size * rng.uniform(0.3, 0.4), size * 0.12
    fill = 0.7  # steel share of the coil: 0.12 mm tape with air between turns
    parts += moved(upright((0, 0), 0, [(0, r_out), (tape_w * fill, r_out)], "steel", cell,
                           [(0, r_in), (tape_w, r_in)]), w_offset=-tape_w * fill / 2)
    parts += moved(upright((0, 0), 0, [(0, r_in), (tape_w * 0.3, r_in)], "steel", cell,
                           [(0, r_in * 0.4), (tape_w, r_in * 0.4)]), w_offset=-tape_w * 0.15)
    parts.append(plate(rectangle(6, tape_w, (size / 2 + 2, -size / 2 + 8)), 1.2, "brass", cell))
    parts.append(strip([(-size / 2 - 2, size * 0.3), (-size / 2 - 2, -size * 0.3)], 10, 1.0,
                       "steel", cell, w_center=depth / 2 - 5))
    return finish("tape_measure", None, parts)


def padlock(rng, cell) -> Item:
    """Padlock: brass or laminated-steel body 30-60 mm, hardened steel shackle, brass pin
    cylinder."""
    width = rng.uniform(30, 60)
    height, depth = width * rng.uniform(0.8, 1.05), width * rng.uniform(0.38, 0.5)
    body = "brass" if rng.random() < 0.6 else "steel"
    parts = [plate(rectangle(width, height), depth, body, cell,
                   holes=[circle(width * 0.15, (0, -height * 0.1))])]
    parts += upright((0, -height * 0.1), -depth / 2, [(0, width * 0.15), (depth * 0.8,
                                                                          width * 0.15)],
                     "brass", cell)
    r = width * 0.32
    arc = [(r * np.cos(a), height / 2 + r * 0.3 + r * np.sin(a))
           for a in np.linspace(0, np.pi, 20)]
    parts += [strip([(r, height * 0.2)] + arc + [(-r, height * 0.2)], width * 0.16,
                    width * 0.16, "steel", cell)]
    return finish("padlock", None, parts, body=body)


def hardware(rng, cell) -> Item:
    """A small bag of hardware: threaded screws and bolts, nuts, washers, nails."""
    parts: Parts = []
    n = int(rng.integers(6, 25))
    for _ in range(n):
        kind = rng.choice(["screw", "nut", "washer", "nail"])
        at, angle = rng.uniform(-35, 35, 2), rng.uniform(0, 360)
        if kind == "screw":
            r, length = rng.uniform(1.5, 4), rng.uniform(12, 60)
            s = np.arange(0, length, 0.6 + r * 0.3)
            thread = [(x, r * (1.0 if k % 2 else 0.8)) for k, x in enumerate(s)]
            one = lathe((0, 0), (1, 0), [(-2.5, r * 1.9), (0, r * 1.9)] + thread, "steel",
                        cell)
        elif kind == "nut":
            r = rng.uniform(3, 8)
            one = [plate(circle(r * 1.7, n=6), r * 0.9, "steel", cell, holes=[circle(r)])]
        elif kind == "washer":
            r = rng.uniform(3, 10)
            one = [plate(circle(r * 2), r * 0.2, "steel", cell, holes=[circle(r)])]
        else:
            length = rng.uniform(25, 90)
            one = cylinder((0, 0), (length, 0), length * 0.022, "steel", cell)
            one += upright((0, 0), -0.5, [(0, length * 0.05), (1.0, length * 0.05)], "steel",
                           cell)
        parts += moved(one, at, angle, w_offset=rng.uniform(-8, 8))
    parts.append(plate(circle(48, n=24), 0.1, "polyethylene", coarse(cell)))
    return finish("hardware", None, parts, count=n)


def steel_ruler(rng, cell) -> Item:
    """Stainless rule: 150 x 18 x 0.5 mm to 600 x 30 x 1.2 mm, with a hanging hole; a thin
    steel strip that looks like a blade edge-on."""
    length = float(rng.choice([150, 300, 300, 500, 600]))
    width, t = (18, 0.5) if length == 150 else (rng.uniform(25, 32), rng.uniform(0.8, 1.2))
    parts = [plate(rectangle(length, width), t, "stainless", cell,
                   holes=[circle(3, (length / 2 - 8, 0))])]
    return finish("steel_ruler", None, parts)


def spanner_set(rng, cell) -> Item:
    """A set of 6-12 combination spanners in a fabric roll, side by side."""
    count = int(rng.integers(6, 13))
    parts: Parts = []
    for k in range(count):
        one = spanner(rng, cell).slabs
        parts += moved(one, (0, k * 44.0), w_offset=(k % 2) * 6)
    parts.append(plate(rectangle(400, count * 44 + 30, (0, count * 22 - 22)), 1.5, "cloth",
                       coarse(cell), w_center=-8))
    return finish("spanner_set", None, parts, count=count)


def bit_set(rng, cell) -> Item:
    """A screwdriver bit set: 6-19 hex bits (6.35 mm, 25 mm long) side by side in a moulded
    case: a row of short steel rods, as in a box of cartridges."""
    n = int(rng.integers(6, 20))
    parts: Parts = [plate(rectangle(n * 9 + 20, 60), 18, "abs", coarse(cell))]
    for k in range(n):
        u = -n * 4.5 + 9 * k
        parts += cylinder((u, -12), (u, 13), 3.2, "steel", cell)
    return finish("bit_set", None, parts, count=n)


# The spanner's weight includes the share of the first-generation spanner it replaced.
TOOL_FAMILIES = [(pliers, 1.5, "small"), (scissors, 2.0, "small"), (spanner, 2.2, "small"),
                 (adjustable_wrench, 0.8, "small"), (screwdriver, 1.2, "small"),
                 (hammer, 0.7, "small"), (stapler, 0.8, "small"), (tape_measure, 0.8, "small"),
                 (padlock, 0.8, "small"), (hardware, 0.8, "small"), (steel_ruler, 0.6, "small"),
                 (spanner_set, 0.3, "small"), (bit_set, 0.6, "small")]
