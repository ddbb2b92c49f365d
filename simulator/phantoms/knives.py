"""Knives (class 'knife'), lying flat (mm): u along the blade from the heel to the tip, v up
(spine side), w through the blade's thickness.

Blades are ground plates: thickness rises from ~0.2 mm at the cutting edge to the spine over
the grind width (full flat grind on kitchen knives, a sabre grind on thick combat blades), with
a distal taper towards the tip, so a blade seen flat shows its bevel as a gradient and seen
edge-on is a thin dark line. Handles: a steel tang (full, through the scales, or a narrow
rat-tail) with rivets, bolsters, guards and pommels as real knives have them.
"""

from __future__ import annotations

import numpy as np

from simulator.phantoms.geometry import (
    Parts,
    circle,
    coarse,
    finish,
    ground,
    moved,
    plate,
    spline,
    strip,
    upright,
)
from simulator.solids import Item, ellipse, rectangle


def taper(spine_t: float, length: float, tip_t: float):
    """Distal taper: spine thickness falling linearly from the heel (u = 0) to the tip."""
    return lambda uv: np.interp(uv[:, 0], [0, length], [spine_t, tip_t])


def handle(rng, length: float, height: float, cell, full_tang: bool, scales: str,
           rivets: int, width: float) -> Parts:
    """Handle behind u = 0: scales (or a moulded grip) over a full or rat-tail steel tang."""
    outline = spline([(0, height * 0.45), (-length * 0.5, height * 0.5),
                      (-length, height * 0.42), (-length - 3, 0), (-length, -height * 0.45),
                      (-length * 0.5, -height * 0.5), (0, -height * 0.45)], 40)
    if full_tang:
        tang = (outline - [-length / 2, 0]) * [0.98, 0.92] + [-length / 2, 0]
        parts = [plate(tang, rng.uniform(2.0, 3.0), "steel", cell)]
        for side in (-1, 1):
            t = (width - 2.5) / 2
            parts.append(plate(outline, t, scales, coarse(cell), w_center=side * (t + 2.5) / 2))
        for k in range(rivets):
            u = -length * (0.2 + 0.6 * k / max(rivets - 1, 1))
            parts += upright((u, 0), -width / 2, [(0, 2.4), (width, 2.4)],
                             str(rng.choice(["brass", "steel", "aluminium"])), cell)
        return parts
    tang_len = length * rng.uniform(0.45, 0.8)
    return [plate(outline, width, scales, coarse(cell)),
            plate(rectangle(tang_len, height * 0.3, (-tang_len / 2, 0)), 2.2, "steel", cell)]


def kitchen_knife(rng, cell) -> Item:
    """Chef's, santoku, bread (serrated), utility, boning and paring knives: stainless blade,
    1.5-2.5 mm spine, full flat grind; riveted full-tang or moulded handle; sometimes a
    forged bolster."""
    style = str(rng.choice(["chef", "chef", "santoku", "bread", "utility", "boning", "paring"]))
    length, height = {"chef": (rng.uniform(180, 250), rng.uniform(40, 52)),
                      "santoku": (rng.uniform(160, 185), rng.uniform(42, 50)),
                      "bread": (rng.uniform(200, 250), rng.uniform(25, 32)),
                      "utility": (rng.uniform(120, 150), rng.uniform(22, 28)),
                      "boning": (rng.uniform(130, 170), rng.uniform(15, 22)),
                      "paring": (rng.uniform(75, 100), rng.uniform(18, 24))}[style]
    top = height * 0.5
    tip_v = {"santoku": -top * 0.8, "bread": 0.0}.get(style, -top * 0.3)
    spine = [(0, top), (length * 0.7, top), (length * 0.93, (top + tip_v) / 2 + top * 0.25),
             (length, tip_v)]
    belly = 0.15 if style != "bread" else 0.0
    edge = spline([(length, tip_v), (length * 0.8, -top * (1 - belly * 1.5)),
                   (length * 0.5, -top), (0, -top)], 40)
    if style == "bread":  # scalloped serrations, ~5 mm apart, 1 mm deep
        k = np.arange(len(edge))
        edge = edge + np.stack([np.zeros_like(k), 1.0 * np.abs(np.sin(k * np.pi / 3))], 1)
    outline = np.vstack([spine, edge[1:]])
    spine_t = rng.uniform(1.5, 2.5)
    parts = [ground(outline, taper(spine_t, length, 0.6), height * rng.uniform(0.6, 1.0),
                    "stainless", cell, edges=[edge], edge_t=0.2)]
    if rng.random() < 0.4:  # forged bolster
        parts.append(plate(rectangle(12, height * 0.75, (-4, top * 0.1)), rng.uniform(7, 10),
                           "stainless", cell))
    full = rng.random() < 0.6
    scales = str(rng.choice(["wood", "abs", "abs"])) if full else \
        str(rng.choice(["abs", "polyethylene", "wood"]))
    parts += handle(rng, rng.uniform(100, 135) if style != "paring" else 85,
                    rng.uniform(18, 24), cell, full, scales, int(rng.integers(2, 4)),
                    rng.uniform(14, 20))
    return finish("kitchen_knife", "knife", parts, style=style)


def folding_blade(rng, cell, length: float, height: float) -> Parts:
    """A pocket-knife blade with its pivot at the origin: drop, clip or tanto point, 2.5-4 mm
    spine, flat grind over 60 % of the height, a thumb hole or stud."""
    top, tip_v = height * 0.5, height * rng.uniform(-0.05, 0.25)
    spine = [(-8, top * 0.6), (0, top), (length * 0.65, top), (length, tip_v)]
    edge = spline([(length, tip_v), (length * 0.75, -top * 0.8), (length * 0.3, -top),
                   (6, -top)], 30)
    outline = np.vstack([spine, edge[1:], [(-4, -top * 0.8), (-10, -2)]])
    hole = [circle(2.6, (length * 0.15, top * 0.35), 16)] if rng.random() < 0.5 else []
    blade = ground(outline, rng.uniform(2.5, 4.0), height * 0.6, "steel", cell, edges=[edge],
                   holes=[circle(2.2, (0, 0), 16)] + hole)
    return [blade]


def folding_knife(rng, cell, is_open: bool) -> Parts:
    length, height = rng.uniform(60, 100), rng.uniform(18, 28)
    handle_len = length + rng.uniform(15, 28)
    hh = height + rng.uniform(4, 9)
    outline = spline([(8, hh * 0.45), (-handle_len * 0.5, hh * 0.5), (-handle_len, hh * 0.4),
                      (-handle_len - 4, 0), (-handle_len, -hh * 0.45), (-handle_len * 0.5,
                      -hh * 0.5), (8, -hh * 0.45), (12, 0)], 40)
    blade = folding_blade(rng, cell, length, height)
    if not is_open:  # folded into the handle, edge towards the open side
        blade = moved(blade, (0, 0), 180 + rng.uniform(-4, 0))
    parts = list(blade)
    liners = rng.random() < 0.7
    scales = str(rng.choice(["abs", "fr4", "aluminium", "wood"]))
    for side in (-1, 1):
        if liners:
            parts.append(plate(outline, 1.0, "steel", cell, w_center=side * 2.6))
        parts.append(plate(outline, 2.5, scales, coarse(cell) if scales in ("abs", "wood")
                           else cell, w_center=side * (4.4 if liners else 3.2)))
    parts += upright((0, 0), -6, [(0, 4.5), (12, 4.5)], "steel", cell)  # pivot
    parts += upright((-handle_len + 6, 0), -6, [(0, 2.0), (12, 2.0)], "steel", cell)
    parts.append(plate(rectangle(handle_len * 0.7, 4, (-handle_len * 0.55, hh * 0.42)), 4.5,
                       "abs", cell))  # backspacer
    if rng.random() < 0.7:  # pocket clip
        parts.append(strip([(-handle_len + 4, hh * 0.2), (-handle_len * 0.3, hh * 0.25)], 9,
                           0.9, "steel", cell, w_center=6.5))
    return parts


def folding_knife_open(rng, cell) -> Item:
    """Pocket / folding knife, open: 60-100 mm blade, steel liners, scales of polymer, G10,
    aluminium or wood, pivot, stop pin, pocket clip."""
    return finish("folding_knife_open", "knife", folding_knife(rng, cell, True))


def folding_knife_closed(rng, cell) -> Item:
    """The same folding knives closed: the blade lies between the liners."""
    return finish("folding_knife_closed", "knife", folding_knife(rng, cell, False))


def combat_knife(rng, cell) -> Item:
    """Fixed combat / survival knife: 150-200 mm clip- or drop-point blade, 4.5-6 mm spine,
    sabre grind, sometimes a fuller or saw-back; steel crossguard, stacked-leather or rubber
    grip over a rat-tail or full tang, steel pommel."""
    length, height = rng.uniform(150, 200), rng.uniform(30, 40)
    top = height / 2
    clip = rng.random() < 0.6
    spine = [(0, top), (length * 0.62, top)] + ([(length * 0.8, top * 0.5)] if clip else
                                                [(length * 0.85, top * 0.8)]) + [(length, 0)]
    edge = spline([(length, 0), (length * 0.85, -top * 0.8), (length * 0.5, -top), (4, -top)],
                  30)
    if rng.random() < 0.25:  # saw-back teeth on the spine
        teeth = [(u, top + 2.5 * (k % 2)) for k, u in enumerate(np.linspace(length * 0.1,
                                                                             length * 0.55, 16))]
        spine = [spine[0]] + teeth + spine[1:]
    outline = np.vstack([spine, edge[1:], [(0, -top)]])
    spine_t = rng.uniform(4.5, 6.0)
    thick = taper(spine_t, length, spine_t * 0.6)
    if rng.random() < 0.5:  # fuller: a groove along the blade
        base = thick
        thick = lambda uv: base(uv) - 1.5 * ((np.abs(uv[:, 1] - top * 0.45) < 2.5) &  # noqa: E731
                                             (uv[:, 0] > 10) & (uv[:, 0] < length * 0.55))
    parts = [ground(outline, thick, height * 0.45, "steel", cell, edges=[edge], edge_t=0.3)]
    parts.append(plate(rectangle(7, height + rng.uniform(22, 36), (-3.5, 0)), 9, "steel", cell))
    grip_len = rng.uniform(105, 125)
    grip = ellipse(grip_len / 2, 14, (-7 - grip_len / 2, 0))
    parts.append(plate(grip, 26, str(rng.choice(["leather", "rubber", "abs"])), coarse(cell)))
    if rng.random() < 0.5:
        parts.append(plate(rectangle(grip_len, 8, (-7 - grip_len / 2, 0)), 5, "steel", cell))
    else:
        parts.append(plate(rectangle(grip_len, 20, (-7 - grip_len / 2, 0)), spine_t, "steel",
                           cell))
    parts.append(plate(ellipse(9, 15, (-7 - grip_len - 4, 0)), 24, "steel", cell))
    return finish("combat_knife", "knife", parts, clip_point=clip)


def dagger(rng, cell) -> Item:
    """Double-edged dagger / boot knife: symmetric 100-180 mm blade ground from both edges to
    a 4-6 mm centre ridge (diamond section); crossguard, handle, pommel."""
    length, height = rng.uniform(100, 180), rng.uniform(20, 32)
    top = height / 2
    upper = spline([(6, top), (length * 0.6, top * 0.85), (length, 0)], 20)
    lower = upper * [1, -1]
    outline = np.vstack([[(0, top)], upper, lower[::-1][1:], [(0, -top)]])
    parts = [ground(outline, taper(rng.uniform(4, 6), length, 2.0), top, "steel", cell,
                    edges=[upper, lower], edge_t=0.3)]
    parts.append(plate(rectangle(6, height + rng.uniform(20, 40), (-3, 0)), 8, "steel", cell))
    grip_len = rng.uniform(90, 115)
    parts.append(plate(ellipse(grip_len / 2, 12, (-6 - grip_len / 2, 0)), 22,
                       str(rng.choice(["leather", "wood", "abs"])), coarse(cell)))
    parts.append(plate(rectangle(grip_len, 7, (-6 - grip_len / 2, 0)), 5, "steel", cell))
    parts.append(plate(circle(10, (-8 - grip_len, 0)), 16, "steel", cell))
    return finish("dagger", "knife", parts)


def cleaver(rng, cell) -> Item:
    """Meat cleaver (4-6 mm spine) or Chinese cleaver (2-3 mm): rectangular 160-220 x 70-110
    mm blade, grind only near the edge, often a hanging hole; wood or polymer handle with three
    rivets on a full tang."""
    length, height = rng.uniform(160, 220), rng.uniform(70, 110)
    heavy = rng.random() < 0.5
    edge = np.array([(length, -height + 12), (length * 0.5, -height + 10), (2, -height + 10)])
    outline = [(0, 12), (length, 12), (length, -height + 12), (2, -height + 10), (0, -4)]
    holes = [circle(rng.uniform(5, 8), (length - 18, 0))] if rng.random() < 0.6 else []
    spine_t = rng.uniform(4, 6) if heavy else rng.uniform(2, 3)
    parts = [ground(outline, spine_t, rng.uniform(12, 25), "stainless", cell, edges=[edge],
                    holes=holes)]
    parts += handle(rng, rng.uniform(105, 125), 24, cell, True,
                    str(rng.choice(["wood", "abs"])), 3, 20)
    return finish("cleaver", "knife", parts, heavy=heavy)


# Weights include the shares of the simpler first-generation designs these replaced, so
# each kind of object is drawn as often as before.
KNIFE_FAMILIES = [(kitchen_knife, 3.0), (folding_knife_open, 2.0), (folding_knife_closed, 1.5),
                  (combat_knife, 1.5), (dagger, 0.7), (cleaver, 0.75)]
