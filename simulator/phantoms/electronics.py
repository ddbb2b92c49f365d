"""Consumer electronics (benign; batteries, boards, coils and wires, like an IED's parts),
lying flat (mm).

Phones 146-165 x 68-78 x 7.5-9 mm (glass, LiPo pouch cell, board under steel shield cans,
aluminium frame); USB chargers (small transformer on a board, brass pins); power banks with
18650 cells; laptops 300-360 x 200-250 x 15-20 mm and tablets; coiled cables; headphones;
hair dryers (motor, nichrome heater); remote controls and clocks with AA cells; LED torches
(aluminium tube round 1-3 cells, a baton look-alike); electric shavers; game controllers.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.components import cell_along, cell_pack, motor, pcb, wire
from simulator.phantoms.geometry import (
    Parts,
    circle,
    coarse,
    cylinder,
    finish,
    lathe,
    moved,
    plate,
    shell,
    spline,
    spring,
    strip,
    upright,
    wander,
)
from simulator.solids import Item, rectangle


def _rounded(w: float, h: float, r: float, center=(0.0, 0.0)) -> np.ndarray:
    """Outline of a rounded rectangle."""
    pts = []
    for cx, cy, a0 in ((w / 2 - r, h / 2 - r, 0), (-w / 2 + r, h / 2 - r, 90),
                       (-w / 2 + r, -h / 2 + r, 180), (w / 2 - r, -h / 2 + r, 270)):
        a = np.radians(np.linspace(a0, a0 + 90, 6))
        pts += list(zip(cx + r * np.cos(a), cy + r * np.sin(a), strict=True))
    return np.asarray(pts) + center


def phone(rng, cell) -> Item:
    """Smartphone: cover glass and back glass, LiPo pouch cell, logic board with steel shield
    cans, aluminium (or steel) frame, camera module, speaker magnet, USB-C port."""
    w, h, t = rng.uniform(68, 78), rng.uniform(146, 165), rng.uniform(7.5, 9.0)
    outline = _rounded(w, h, 9)
    frame_mat = "steel" if rng.random() < 0.2 else "aluminium"
    parts = shell(outline, t, 1.6, frame_mat, cell, lid=False)[1:]  # the side rim only
    parts.append(plate(outline, 0.7, "glass", cell, w_center=t / 2 - 0.35))
    parts.append(plate(outline, 0.6, "glass" if rng.random() < 0.7 else "aluminium", cell,
                       w_center=-t / 2 + 0.3))
    parts.append(plate(rectangle(w - 10, h * 0.5, (0, -h * 0.12)), 4.2, "battery", cell,
                       w_center=-0.6))
    board = pcb(rng, w - 12, h * 0.28, cell, 1.5, w_center=-1)
    board.append(plate(rectangle(w - 16, h * 0.2), 0.2, "steel", cell, w_center=1.8))
    parts += moved(board, (0, h * 0.3))
    parts.append(plate(rectangle(12, 12, (w * 0.25, h * 0.38)), 5, "aluminium", cell))
    parts += upright((w * 0.25, h * 0.38), -2, [(0, 3), (4, 3)], "steel", cell)
    parts.append(plate(rectangle(12, 6, (-w * 0.2, -h * 0.44)), 3, "steel", cell))  # speaker
    parts.append(plate(rectangle(9, 3.5, (0, -h / 2 + 3)), 3.2, "steel", cell))  # USB-C
    return finish("phone", None, parts)


def phone_charger(rng, cell) -> Item:
    """USB wall charger: ABS shell 30-50 mm, small board with a ferrite transformer (drawn as
    steel at 60 % of its size: ferrite's attenuation), copper winding, capacitors, brass
    pins; often with its cable coiled beside it."""
    size = rng.uniform(30, 50)
    parts = shell(_rounded(size, size * 1.1, 4), size * 0.75, 1.6, "abs", coarse(cell))
    parts += pcb(rng, size * 0.8, size * 0.9, cell, 1.2)
    parts += upright((0, size * 0.1), 1, [(0, 6), (6, 6)], "copper", cell, [(0, 3), (6, 3)])
    parts += upright((0, size * 0.1), 1, [(0, 3), (8, 3)], "steel", cell)
    for side in (-1, 1):
        parts += cylinder((size * 0.55, side * 9), (size * 0.55 + 18, side * 9), 2.4, "brass",
                          cell)
    if rng.random() < 0.6:
        parts += _cable_coil(rng, cell, (-size * 1.6, 0))
    return finish("phone_charger", None, parts)


def _cable_coil(rng, cell, centre, turns: float | None = None) -> Parts:
    """A charging cable coiled in loose loops, with its plug ends."""
    turns = turns or rng.uniform(2, 5)
    r = rng.uniform(25, 55)
    phi = np.linspace(0, 2 * np.pi * turns, int(50 * turns))
    wobble = rng.normal(0, 0.08, len(phi)).cumsum() * 0.2
    path = np.stack([r * (1 + wobble) * np.cos(phi), r * 0.8 * (1 + wobble) * np.sin(phi)], 1)
    path += centre + np.outer(np.linspace(0, 1, len(phi)), rng.uniform(-20, 20, 2))
    parts = wire(path, cell, 0.45, 1.6)
    for end in (path[0], path[-1]):
        parts.append(plate(rectangle(20, 10, end), 6, "abs", coarse(cell)))
        parts.append(plate(rectangle(8, 7, end + (12, 0)), 2.5, "steel", cell))
    return parts


def cable(rng, cell) -> Item:
    """A loose cable: USB or mains lead (two or three copper cores in PVC), coiled or tangled,
    with moulded plugs (brass pins on mains plugs)."""
    parts = _cable_coil(rng, cell, (0.0, 0.0), rng.uniform(1, 6))
    if rng.random() < 0.3:  # mains lead: a second core and a plug with pins
        parts += wire(wander(rng, (0, 0), rng.uniform(-150, 150, 2), 60), cell, 0.6, 2.8)
        parts.append(plate(rectangle(40, 30, (0, 0)), 18, "abs", coarse(cell)))
        parts += [s for v in (-9.5, 9.5) for s in cylinder((20, v), (39, v), 2.0, "brass",
                                                           cell)]
    return finish("cable", None, parts)


def power_bank(rng, cell) -> Item:
    """Power bank: 1-4 18650 cells side by side (or a flat LiPo pack), a board with USB
    ports, plastic or aluminium case."""
    n = int(rng.integers(1, 5))
    parts: Parts = []
    if rng.random() < 0.6:
        for k in range(n):
            parts += cell_along("18650", (-32.5, (k - (n - 1) / 2) * 18.6), 0, cell)
        w, h, t = 80.0, n * 18.6 + 6, 22.0
    else:
        w, h, t = rng.uniform(90, 140), rng.uniform(60, 75), rng.uniform(12, 16)
        parts.append(plate(rectangle(w - 20, h - 6, (-8, 0)), t - 4, "battery", cell))
    parts += moved(pcb(rng, 14, h - 8, cell, 1.0), (w / 2 - 5, 0))
    parts.append(plate(rectangle(6, 12, (w / 2 + 1, h * 0.2)), 6, "steel", cell))
    case = str(rng.choice(["abs", "aluminium"]))
    parts += shell(_rounded(w + 8, h + 4, 4), t + 2, 1.4, case,
                   coarse(cell) if case == "abs" else cell)
    return finish("power_bank", None, parts, cells=n)


def laptop(rng, cell) -> Item:
    """Closed laptop: aluminium or plastic base and lid, battery cells or pack along the
    front, main board with chips, copper heat pipe and fan, keyboard backplate, screen glass,
    steel hinges."""
    w, h = rng.uniform(300, 360), rng.uniform(205, 250)
    case = "aluminium" if rng.random() < 0.6 else "abs"
    grid = coarse(cell)
    parts = [plate(_rounded(w, h, 8), 1.2 if case == "aluminium" else 2.2, case, grid,
                   w_center=wc) for wc in (-8.5, 8.5)]
    parts.append(strip(np.vstack([_rounded(w, h, 8), _rounded(w, h, 8)[:1]]), 2.5, 15, case,
                       grid, closed=True))
    parts.append(plate(rectangle(w - 12, h - 12), 1.2, "glass", grid, w_center=6))
    parts.append(plate(rectangle(w - 30, h - 60, (0, 15)), 0.5, "steel", grid, w_center=1))
    if rng.random() < 0.5:
        parts.append(plate(rectangle(w * 0.7, 55, (0, -h / 2 + 40)), 6, "battery", cell,
                           w_center=-4))
    else:
        for k in range(6):
            parts += cell_along("18650", (-w * 0.33 + k * (w * 0.11), -h / 2 + 12), 90, cell,
                                w_center=-4)
    board_at = (w * 0.15, h * 0.15)
    parts += moved(pcb(rng, w * 0.4, h * 0.35, cell, 1.2, w_center=-3), board_at)
    parts += cylinder((w * 0.0, h * 0.2), (w * 0.32, h * 0.3), 3, "copper", cell, inner=2.4,
                      w_center=-1)  # heat pipe
    parts += upright((w * 0.35, h * 0.3), -6, [(0, 28), (6, 28)], "abs", grid,
                     [(0, 10), (6, 10)])
    parts += upright((w * 0.35, h * 0.3), -6, [(0, 10), (6, 10)], "copper", cell)
    for side in (-1, 1):
        parts += cylinder((side * w * 0.3 - 15, h / 2 - 6), (side * w * 0.3 + 15, h / 2 - 6),
                          4, "steel", cell)
    return finish("laptop", None, parts, case=case)


def tablet(rng, cell) -> Item:
    """Tablet: cover glass, LCD / OLED stack, two flat LiPo cells, a small board, aluminium
    back; an e-reader is the same in plastic."""
    w, h, t = rng.uniform(160, 250), rng.uniform(110, 180), rng.uniform(6, 8)
    grid = coarse(cell)
    outline = _rounded(w, h, 10)
    parts = [plate(outline, 0.8, "glass", grid, w_center=t / 2 - 0.4),
             plate(outline, 0.8, "aluminium" if rng.random() < 0.7 else "abs", grid,
                   w_center=-t / 2 + 0.4)]
    for side in (-1, 1):
        parts.append(plate(rectangle(w * 0.35, h * 0.7, (side * w * 0.2, -h * 0.05)), 3.2,
                           "battery", cell))
    parts += moved(pcb(rng, w * 0.15, h * 0.6, cell, 1.3), (0, 0))
    return finish("tablet", None, parts)


def headphones(rng, cell) -> Item:
    """Over-ear headphones folded: two ear cups (driver with its magnet and voice coil,
    plastic shell, foam), a steel-band headband in plastic, the cable."""
    r = rng.uniform(35, 48)
    parts: Parts = []
    for side in (-1, 1):
        c = (side * (r + 5), 0)
        parts += moved(upright((0, 0), -15, [(0, r), (30, r * 0.95)], "abs", coarse(cell),
                               [(2, r - 2), (30, r - 2)]), c)
        parts += moved(upright((0, 0), -2, [(0, r * 0.35), (5, r * 0.35)], "steel", cell), c)
        parts += moved(upright((0, 0), 3, [(0, r * 0.3), (1.5, r * 0.3)], "copper", cell), c)
    band = spline([(-r - 5, r * 0.8), (0, r * 1.9), (r + 5, r * 0.8)], 30)
    parts.append(strip(band, 18, 8, "abs", coarse(cell)))
    parts.append(strip(band, 10, 0.8, "steel", cell))
    return finish("headphones", None, parts)


def hair_dryer(rng, cell) -> Item:
    """Hair dryer: barrel with the fan motor (steel, copper winding) and a nichrome heater
    coiled on a mica frame, nozzle, handle with switch and the mains cable."""
    length, r = rng.uniform(170, 240), rng.uniform(32, 45)
    grid = coarse(cell)
    parts = lathe((0, 0), (length, 0), [(0, r * 0.9), (10, r), (length * 0.8, r),
                                        (length, r * 0.7)], "abs", grid,
                  [(0, r * 0.9 - 2), (10, r - 2), (length * 0.8, r - 2), (length, r * 0.7 - 2)])
    parts += motor((length * 0.18, 0), 35, 15, cell)
    parts += spring((length * 0.45, 0), (length * 0.85, 0), r * 0.55, 0.35, 2.5, "steel", cell)
    parts.append(plate(rectangle(length * 0.4, r * 1.2, (length * 0.65, 0)), 0.3, "glass",
                       cell))  # mica card
    handle = rng.uniform(90, 120)
    parts.append(plate(_rounded(36, handle, 12, (length * 0.3, -r - handle / 2 + 6)), 30,
                       "abs", grid))
    parts += wire(wander(rng, (length * 0.3, -r - handle), (length * 0.3 + 80,
                                                            -r - handle - 150), 50), cell,
                  0.8, 3.2)
    parts.append(plate(rectangle(10, 16, (length * 0.3, -r - 20)), 8, "brass", cell))
    return finish("hair_dryer", None, parts)


def remote_control(rng, cell) -> Item:
    """TV remote: plastic shell 140-210 mm, rubber keypad, a board, two AA or AAA cells."""
    length, width = rng.uniform(140, 210), rng.uniform(40, 55)
    parts = shell(_rounded(width, length, 8), 20, 1.8, "abs", coarse(cell))
    parts += moved(pcb(rng, width - 8, length * 0.55, cell, 0.6), (0, length * 0.15))
    parts.append(plate(rectangle(width - 10, length * 0.5, (0, length * 0.15)), 3, "rubber",
                       coarse(cell), w_center=7))
    kind = "AA" if rng.random() < 0.6 else "AAA"
    pack = cell_pack(kind, 2, cell, holder=False)
    parts += moved(pack, (0, -length * 0.3), 90, w_offset=-3)
    return finish("remote_control", None, parts, cells=kind)


def flashlight(rng, cell) -> Item:
    """LED torch: anodised aluminium tube 20-40 mm round 1-3 cells (AA or 18650), head with
    reflector, lens and LED board, tail switch and spring. Looks like a baton or a pipe."""
    kind = str(rng.choice(["AA", "18650", "C"]))
    n = int(rng.integers(1, 4)) if kind != "18650" else int(rng.integers(1, 3))
    d, length = {"AA": (14.5, 50.5), "18650": (18.3, 65.0), "C": (26.2, 50.0)}[kind]
    r = d / 2 + 2.5
    body = n * length + 30
    parts = cylinder((0, 0), (body, 0), r, "aluminium", cell, inner=r - 1.6)
    head = rng.uniform(1.0, 1.6) * r
    parts += lathe((body - 4, 0), (body + 35, 0), [(0, r), (15, head), (39, head)], "aluminium",
                   cell, [(0, r - 1.6), (15, head - 1.6), (39, head - 1.6)])
    parts.append(plate(rectangle(2, head * 1.8, (body + 34, 0)), 2 * head - 3, "glass", cell))
    parts += cylinder((body + 5, 0), (body + 9, 0), r - 2, "copper", cell)  # LED heat sink
    for k in range(n):
        parts += cell_along(kind, (12 + k * length, 0), 0, cell)
    parts += spring((2, 0), (11, 0), d * 0.3, 0.5, 2.0, "steel", cell)
    return finish("flashlight", None, parts, cells=f"{n}x{kind}")


def clock(rng, cell) -> Item:
    """Bedside digital clock or clock radio: plastic case, board, LCD glass, speaker magnet,
    a cell pack or coin cell, mains cable."""
    w, h, d = rng.uniform(90, 180), rng.uniform(60, 100), rng.uniform(40, 70)
    parts = shell(_rounded(w, d, 6), h, 2.0, "abs", coarse(cell))
    parts += pcb(rng, w * 0.8, d * 0.6, cell, 1.0)
    parts.append(plate(rectangle(w * 0.6, 6, (0, d / 2 - 6)), h * 0.4, "glass", cell))
    parts += upright((w * 0.3, -d * 0.1), -h / 2 + 3, [(0, 12), (8, 12)], "steel", cell)
    if rng.random() < 0.6:
        parts += moved(cell_pack("AA", int(rng.integers(2, 5)), cell, holder=False),
                       (-w * 0.2, -d * 0.1), 0, w_offset=-h / 4)
    if rng.random() < 0.5:
        parts += wire(wander(rng, (-w / 2, 0), (-w / 2 - 150, rng.uniform(-80, 80)), 40), cell,
                      0.6, 2.6)
    return finish("clock", None, parts)


def shaver(rng, cell) -> Item:
    """Electric shaver: plastic body 120-160 mm, motor, Li-ion cell or NiMH cells, board,
    the steel foil head and cutters."""
    length, width = rng.uniform(120, 160), rng.uniform(40, 55)
    parts = shell(_rounded(width, length, 14), 35, 2.0, "abs", coarse(cell))
    parts += motor((0, length * 0.25), 24, 10, cell, 90)
    parts += cell_along("AA" if rng.random() < 0.5 else "18650", (0, -length * 0.4), 90, cell)
    parts += moved(pcb(rng, width - 14, 40, cell), (0, -length * 0.05), w_offset=10)
    parts.append(plate(rectangle(width - 4, 14, (0, length / 2 - 5)), 12, "steel", cell,
                       holes=[rectangle(width - 10, 8, (0, length / 2 - 5))]))
    return finish("shaver", None, parts)


def game_controller(rng, cell) -> Item:
    """Game controller: plastic shell with two grips, a board, two rumble motors with brass
    eccentric weights, a Li-ion cell, thumb sticks."""
    w = rng.uniform(140, 165)
    outline = spline([(-w / 2, -30), (-w / 2 + 10, 30), (0, 38), (w / 2 - 10, 30), (w / 2, -30),
                      (w / 2 - 20, -55), (w / 4, -25), (-w / 4, -25), (-w / 2 + 20, -55)],
                     48, closed=True)
    parts = shell(outline, 50, 2.2, "abs", coarse(cell))
    parts += pcb(rng, w * 0.6, 45, cell, 1.0)
    for side in (-1, 1):
        parts += motor((side * w * 0.35, -25), 20, 6, cell, 90)
        parts.append(plate(circle(6, (side * w * 0.35, -40)), 5, "brass", cell))
        parts += upright((side * w * 0.15, -5), 0, [(0, 9), (12, 6)], "abs", cell)
    parts += cell_along("18650", (-32, 15), 0, cell, w_center=-10)
    return finish("game_controller", None, parts)


# The charger's weight includes the share of the first-generation charger it replaced.
ELECTRONICS_FAMILIES = [(phone, 1.5, "small"), (phone_charger, 2.5, "small"),
                        (cable, 2.0, "small"), (power_bank, 1.0, "small"),
                        (laptop, 0.8, "large"), (tablet, 0.6, "large"),
                        (headphones, 0.6, "small"), (hair_dryer, 0.6, "small"),
                        (remote_control, 0.8, "small"), (flashlight, 0.8, "small"),
                        (clock, 0.5, "small"), (shaver, 0.5, "small"),
                        (game_controller, 0.5, "small")]
