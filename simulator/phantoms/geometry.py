"""Solid-modelling helpers for the object families, in millimetres.

Everything returns slabs (see ``simulator.solids``) in an object's own frame: u, v in the plane
it lies in, w its thickness. Canvases are snapped to multiples of the cell size, so the parts of
one object share a column grid; ``finish`` then merges them into a few slabs per material, since
projection time grows with the number of slabs as well as of columns.
"""

from __future__ import annotations

import cv2
import numpy as np

from simulator.solids import Item, Slab, ellipse

Parts = list[Slab]
F32 = np.float32


def coarse(cell: float) -> float:
    """Grid for bulky, low-contrast parts (polymer frames, panels, books, clothes): twice the
    cell. Their edges are soft anyway, and the scanner's blur hides the coarser sampling."""
    return 2 * cell


# --- canvases ------------------------------------------------------------------------------------

def grid(lo, hi, cell: float):
    """Cell-aligned origin (mm) and (rows, cols) of a canvas covering lo..hi with a margin."""
    lo = np.floor(np.asarray(lo, np.float64) / cell) * cell - 2 * cell
    size = np.ceil((np.asarray(hi, np.float64) - lo) / cell).astype(int) + 3
    return lo, (int(size[1]), int(size[0]))


def px(points, lo, cell: float) -> np.ndarray:
    """mm -> OpenCV fixed-point coordinates (shift 4); pixel i is centred at lo + i * cell."""
    return np.round((np.asarray(points, np.float64) - lo) / cell * 16).astype(np.int32)


def draw(mask: np.ndarray, polygons, lo, cell: float, value: int = 1) -> np.ndarray:
    for poly in polygons:  # one at a time: fillPoly fills several polygons even-odd
        cv2.fillPoly(mask, [px(poly, lo, cell)], value, cv2.LINE_8, shift=4)
    return mask


def fill(outlines, cell: float, holes=()):
    """Mask (uint8) of the outlines minus the holes (polygons, mm), and its origin (mm)."""
    pts = np.concatenate([np.asarray(o, np.float64).reshape(-1, 2) for o in outlines])
    lo, shape = grid(pts.min(0), pts.max(0), cell)
    mask = draw(np.zeros(shape, np.uint8), outlines, lo, cell)
    return draw(mask, holes, lo, cell, 0), lo


def centres(rows, cols, lo, cell: float) -> np.ndarray:
    """Cell centres [K, 2] (mm, float32) of canvas pixels (rows, cols)."""
    uv = np.empty((len(rows), 2), F32)
    uv[:, 0] = cols * F32(cell) + F32(lo[0])
    uv[:, 1] = rows * F32(cell) + F32(lo[1])
    return uv


def pick(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``a[mask]`` along the first axis (np.compress: ten times faster on [K, 2] arrays)."""
    return np.compress(mask, a, axis=0)


def slab(uv, thickness, material: str, cell: float, w_center=0.0) -> Slab:
    """Material over columns ``uv`` [K, 2], ``thickness`` mm (number, array or f(uv)), centred
    at depth ``w_center`` (number or f(uv))."""
    uv = np.asarray(uv, F32)
    t = np.asarray(thickness(uv) if callable(thickness) else thickness, F32)
    t = np.broadcast_to(t, (len(uv),))
    wc = np.asarray(w_center(uv) if callable(w_center) else w_center, F32)
    keep = t > 0
    if not keep.all():
        uv, t = pick(uv, keep), t[keep]
        wc = wc[keep] if wc.ndim else wc
    return Slab(material, uv, wc - t / 2, wc + t / 2, cell)


def _runs(occ: np.ndarray):
    """Runs of True along axis 1: row, first, end (exclusive) and index of the run in its row."""
    pad = np.zeros((occ.shape[0], 1), bool)
    edges = np.diff(np.hstack([pad, occ, pad]).astype(np.int8), axis=1)
    rows, first = np.nonzero(edges == 1)
    _, end = np.nonzero(edges == -1)
    return rows, first, end, np.arange(len(rows)) - np.searchsorted(rows, rows)


# --- plates --------------------------------------------------------------------------------------

def plate(outline, thickness, material: str, cell: float, holes=(), w_center=0.0) -> Slab:
    """A plate of polygon ``outline`` minus ``holes`` (polygons), ``thickness`` mm."""
    mask, lo = fill([outline], cell, holes)
    return slab(centres(*np.nonzero(mask), lo, cell), thickness, material, cell, w_center)


def circle(r: float, center=(0.0, 0.0), n: int = 40) -> np.ndarray:
    return ellipse(r, r, center, n=n)


def ground(outline, spine_t, grind_mm: float, material: str, cell: float, edges=None,
           edge_t: float = 0.2, holes=(), w_center=0.0, power: float = 1.0) -> Slab:
    """A plate ground thin towards its cutting edges: ``edge_t`` at an edge, rising over
    ``grind_mm`` to ``spine_t`` (number or f(uv)); power > 1 is a hollow grind, < 1 convex.
    ``edges``: polylines of the sharpened edges; None sharpens the whole outline (daggers,
    razor blades, stars), but not the holes."""
    full, lo = fill([outline], cell)
    if edges is None:
        dist = cv2.distanceTransform(full, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) - 0.5
    else:
        line = np.full(full.shape, 255, np.uint8)
        cv2.polylines(line, [px(e, lo, cell) for e in edges], False, 0, 1, cv2.LINE_8, shift=4)
        dist = cv2.distanceTransform(line, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    rows, cols = np.nonzero(draw(full, holes, lo, cell, 0))
    uv = centres(rows, cols, lo, cell)
    f = np.clip(dist[rows, cols] * cell / grind_mm, 0, 1) ** power
    spine = spine_t(uv) if callable(spine_t) else spine_t
    return slab(uv, edge_t + (spine - edge_t) * f, material, cell, w_center)


def shell(outline, height: float, wall: float, material: str, cell: float, w_center=0.0,
          lid: bool = True, holes=()) -> Parts:
    """A hollow body of ``outline`` and ``height`` (along w), walls ``wall`` mm thick: bottom,
    side walls and (with ``lid``) top. Seen flat, the side walls are a dark rim."""
    mask, lo = fill([outline], cell, holes)
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    rows, cols = np.nonzero(mask)
    uv = centres(rows, cols, lo, cell)
    rim = dist[rows, cols] * cell <= wall + cell / 2
    base = w_center - height / 2
    parts = [slab(uv, wall, material, cell, base + wall / 2),
             slab(pick(uv, rim), height - 2 * wall, material, cell, w_center)]
    if lid:
        parts.append(slab(uv, wall, material, cell, base + height - wall / 2))
    return parts


# --- paths ---------------------------------------------------------------------------------------

def _path_distance(points, reach: float, cell: float, closed: bool):
    """Cells within ``reach`` of a polyline and their distance to it (mm)."""
    pts = np.asarray(points, np.float64)
    lo, shape = grid(pts.min(0) - reach, pts.max(0) + reach, cell)
    line = np.full(shape, 255, np.uint8)
    cv2.polylines(line, [px(pts, lo, cell)], closed, 0, 1, cv2.LINE_8, shift=4)
    dist = cv2.distanceTransform(line, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) * cell
    rows, cols = np.nonzero(dist < reach)
    return centres(rows, cols, lo, cell), dist[rows, cols]


def tube(points, radius: float, material: str, cell: float, closed: bool = False,
         inner: float = 0.0, w_center=0.0) -> Parts:
    """A round wire or tube of ``radius`` along a polyline [P, 2] (cables, rings, frames)."""
    uv, d = _path_distance(points, radius, cell, closed)
    h = np.sqrt(np.clip(radius ** 2 - d ** 2, 0, None))
    if inner <= 0:
        return [slab(uv, 2 * h, material, cell, w_center)]
    hi = np.sqrt(np.clip(inner ** 2 - d ** 2, 0, None))
    return [slab(uv, h - hi, material, cell, w_center - (h + hi) / 2),
            slab(uv, h - hi, material, cell, w_center + (h + hi) / 2)]


def strip(points, width: float, thickness, material: str, cell: float, closed: bool = False,
          w_center=0.0) -> Slab:
    """A flat strip ``width`` mm wide along a polyline (straps, tapes, leaf springs, teeth)."""
    uv, _ = _path_distance(points, width / 2, cell, closed)
    return slab(uv, thickness, material, cell, w_center)


def spline(points, n: int = 60, closed: bool = False) -> np.ndarray:
    """A smooth curve [n, 2] through control points (Catmull-Rom)."""
    p = np.asarray(points, np.float64)
    p = np.vstack([p[-1], p, p[:2]]) if closed else np.vstack([2 * p[0] - p[1], p,
                                                                2 * p[-1] - p[-2]])
    segs = len(p) - 3
    t = np.linspace(0, segs, n, endpoint=not closed)
    i = np.minimum(t.astype(int), segs - 1)
    f = (t - i)[:, None]
    a, b, c, d = p[i], p[i + 1], p[i + 2], p[i + 3]
    return 0.5 * (2 * b + (c - a) * f + (2 * a - 5 * b + 4 * c - d) * f ** 2
                  + (3 * b - a - 3 * c + d) * f ** 3)


def wander(rng: np.random.Generator, start, end, bend: float, n: int = 40) -> np.ndarray:
    """A cable's random smooth course from ``start`` to ``end``, bowing up to ``bend`` mm."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    k = 4
    t = np.linspace(0, 1, k + 2)[:, None]
    normal = np.array([start[1] - end[1], end[0] - start[0]]) / (np.hypot(*(end - start)) + 1e-9)
    off = np.concatenate([[0], rng.uniform(-bend, bend, k), [0]])[:, None]
    return spline(start + (end - start) * t + normal * off, n)


# --- bodies of revolution and prisms -------------------------------------------------------------

def _axis(p0, p1):
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    length = float(np.hypot(*(p1 - p0)))
    d = (p1 - p0) / max(length, 1e-9)
    return p0, d, np.array([-d[1], d[0]]), length


def lathe(p0, p1, radius, material: str, cell: float, bore=None, w_center=0.0,
          level: float | None = None) -> Parts:
    """A solid of revolution about the axis p0 -> p1 (in the uv plane at depth ``w_center``).
    ``radius`` and ``bore`` are profiles: (s, r) knots, s mm from p0 along the axis, linear
    between knots (repeat an s for a step). The bore is hollow. ``level``: keep only what lies
    below w_center + level (liquid lying in a bottle on its side)."""
    p0, d, n, _ = _axis(p0, p1)
    s_k, r_k = np.asarray(radius, np.float64).T
    top = p0 + np.outer(s_k, d) + np.outer(r_k, n)
    bottom = p0 + np.outer(s_k, d) - np.outer(r_k, n)
    mask, lo = fill([np.vstack([top, bottom[::-1]])], cell)
    uv = centres(*np.nonzero(mask), lo, cell)
    s, q = (uv - p0) @ d, (uv - p0) @ n
    h = np.sqrt(np.clip(np.interp(s, s_k, r_k, 0, 0) ** 2 - q ** 2, 0, None))
    keep = h > 0
    uv, s, q, h = pick(uv, keep), s[keep], q[keep], h[keep]
    if level is not None:
        top = np.minimum(h, level)
        return [slab(uv, top + h, material, cell, w_center + (top - h) / 2)]
    if bore is None:
        return [slab(uv, 2 * h, material, cell, w_center)]
    b_s, b_r = np.asarray(bore, np.float64).T
    hb = np.sqrt(np.clip(np.interp(s, b_s, b_r, 0, 0) ** 2 - q ** 2, 0, None))
    solid, hollow = hb <= 0, hb > 0
    t = (h - hb)[hollow]
    mid = ((h + hb) / 2)[hollow]
    return [slab(pick(uv, solid), 2 * h[solid], material, cell, w_center),
            slab(pick(uv, hollow), t, material, cell, w_center - mid),
            slab(pick(uv, hollow), t, material, cell, w_center + mid)]


def cylinder(p0, p1, r: float, material: str, cell: float, inner: float = 0.0,
             w_center=0.0) -> Parts:
    """A rod (a tube when ``inner`` > 0) from p0 to p1 in the uv plane."""
    length = float(np.hypot(*(np.asarray(p1, np.float64) - p0)))
    bore = [(0, inner), (length, inner)] if inner > 0 else None
    return lathe(p0, p1, [(0, r), (length, r)], material, cell, bore, w_center)


def upright(center, w0: float, radius, material: str, cell: float, bore=None) -> Parts:
    """A solid of revolution standing on the uv plane: its axis along w, from depth ``w0``
    (s = 0) up. Profiles as in ``lathe``."""
    s_k, r_k = np.asarray(radius, np.float64).T
    mask, lo = fill([circle(r_k.max() + cell, center, 48)], cell)
    uv = centres(*np.nonzero(mask), lo, cell)
    d = np.hypot(*(uv - center).T)
    ds = max(min(cell / 2, 0.25), (s_k[-1] - s_k[0]) / 160)  # at most 160 depth samples
    s = np.arange(s_k[0], s_k[-1], ds) + ds / 2
    occ = d[:, None] < np.interp(s, s_k, r_k, 0, 0)[None]
    if bore is not None:
        b_s, b_r = np.asarray(bore, np.float64).T
        occ &= d[:, None] >= np.interp(s, b_s, b_r, 0, 0)[None]
    rows, first, end, j = _runs(occ)
    lo_w, hi_w = w0 + s[first] - ds / 2, w0 + s[end - 1] + ds / 2
    return [Slab(material, np.take(uv, rows[j == k], axis=0), lo_w[j == k].astype(F32),
                 hi_w[j == k].astype(F32), cell) for k in range(int(j.max(initial=-1)) + 1)]


def prism(p0, p1, section, material: str, cell: float, holes=(), clip=None,
          w_center=0.0) -> Parts:
    """A bar along p0 -> p1 of constant cross-section: ``section`` and ``holes`` are polygons in
    (t, w), t across the axis (positive to its left), w in depth. ``clip``: an outline (uv) the
    bar is trimmed to (a slide's profile, say)."""
    p0, d, n, length = _axis(p0, p1)
    sec = np.concatenate([np.asarray(s, np.float64) for s in section])
    dt, dw = cell / 2, min(cell / 4, 0.1)
    # Section canvas: x = w (step dw), y = t (step dt); anisotropic, so scale before drawing.
    scale = np.array([dt / dw, 1.0])
    swapped = [np.asarray(s, np.float64)[:, ::-1] * scale for s in section]
    hole_pts = [np.asarray(h, np.float64)[:, ::-1] * scale for h in holes]
    smask, slo = fill(swapped, dt, hole_pts)
    rows, first, end, j = _runs(smask.astype(bool))
    n_runs = int(j.max(initial=-1)) + 1
    w_lo = np.full((smask.shape[0], max(n_runs, 1)), np.nan)
    w_hi = w_lo.copy()
    w_lo[rows, j] = slo[0] / scale[0] + (first - 0.5) * dw
    w_hi[rows, j] = slo[0] / scale[0] + (end - 0.5) * dw
    t0, t1 = sec[:, 0].min(), sec[:, 0].max()
    corners = [p0 + n * t0, p0 + d * length + n * t0, p0 + d * length + n * t1, p0 + n * t1]
    mask, lo = fill([corners], cell)
    if clip is not None:
        mask &= draw(np.zeros_like(mask), [clip], lo, cell)
    uv = centres(*np.nonzero(mask), lo, cell)
    r = np.clip(np.round(((uv - p0) @ n - slo[1]) / dt).astype(int), 0, len(w_lo) - 1)
    parts = []
    for k in range(n_runs):
        a, b = w_lo[r, k], w_hi[r, k]
        ok = np.isfinite(a)
        parts.append(Slab(material, pick(uv, ok), (w_center + a[ok]).astype(F32),
                          (w_center + b[ok]).astype(F32), cell))
    return parts


def spring(p0, p1, coil_r: float, wire_r: float, pitch: float, material: str, cell: float,
           w_center=0.0, aspect: float = 1.0) -> Parts:
    """A helical coil spring along p0 -> p1: mean coil radius (in depth), wire radius and pitch
    in mm; ``aspect`` stretches the coils across the axis (a magazine's flat spring). Each turn
    is modelled as the torus it sweeps, shifted along the axis by the helix phase."""
    p0, d, n, length = _axis(p0, p1)
    reach = (coil_r + wire_r) * aspect
    mask, lo = fill([[p0 - n * reach, p0 + d * length - n * reach, p0 + d * length + n * reach,
                      p0 + n * reach]], cell)
    uv = centres(*np.nonzero(mask), lo, cell)
    s, t = (uv - p0) @ d, (uv - p0) @ n / aspect
    turn = np.arccos(np.clip(t / coil_r, -1, 1)) / (2 * np.pi)
    parts = []
    for side in (1, -1):  # the front and back half of every turn
        phase = s / pitch - side * turn
        ds = (phase - np.round(phase)) * pitch
        rho = np.sqrt(np.clip(wire_r ** 2 - ds ** 2, 0, None))
        outer = np.sqrt(np.clip((coil_r + rho) ** 2 - t ** 2, 0, None))
        inner = np.sqrt(np.clip((coil_r - rho) ** 2 - t ** 2, 0, None))
        ok = (rho > 0) & (outer > inner)
        mid = side * (outer + inner)[ok] / 2
        parts.append(slab(pick(uv, ok), (outer - inner)[ok], material, cell, w_center + mid))
    return parts


def _lookup(mask: np.ndarray, lo, cell: float, uv: np.ndarray) -> np.ndarray:
    ij = np.round((np.asarray(uv, np.float64) - lo) / cell).astype(int)
    ok = (ij >= 0).all(1) & (ij[:, 0] < mask.shape[1]) & (ij[:, 1] < mask.shape[0])
    hit = np.zeros(len(ij), bool)
    hit[ok] = mask[ij[ok, 1], ij[ok, 0]] > 0
    return hit


def inside(uv: np.ndarray, outlines, cell: float) -> np.ndarray:
    """Which columns [K, 2] lie inside any of the outlines (polygons, mm)."""
    mask, lo = fill(outlines, cell)
    return _lookup(mask, lo, cell, uv)


def carve(parts: Parts, outlines, w_lo: float, w_hi: float, cell: float) -> Parts:
    """Parts with the prisms outlines x [w_lo, w_hi] cut away (ports, slots, serrations)."""
    mask, lo = fill(outlines, cell)
    out = []
    for p in parts:
        hit = _lookup(mask, lo, cell, p.uv) if len(p.uv) else np.zeros(0, bool)
        if not hit.any():
            out.append(p)
            continue
        a, b = p.w_lo, p.w_hi
        gone = hit & (w_lo <= a) & (b <= w_hi)
        split = hit & (a < w_lo) & (w_hi < b)
        a2 = np.where(hit & (w_lo <= a) & (a < w_hi) & ~gone, F32(w_hi), a)
        b2 = np.where(hit & (w_lo < b) & (b <= w_hi) & ~gone, F32(w_lo), b)
        b2 = np.where(split, F32(w_lo), b2)
        keep = ~gone
        out.append(Slab(p.material, pick(p.uv, keep), a2[keep], b2[keep], p.cell_mm))
        if split.any():
            out.append(Slab(p.material, pick(p.uv, split), np.full(split.sum(), w_hi, F32),
                            b[split], p.cell_mm))
    return out


# --- assembling ----------------------------------------------------------------------------------

def _rotated(uv: np.ndarray, angle_deg, pivot=(0.0, 0.0)):
    """uv [K, 2] rotated about ``pivot`` by one angle, or by N angles -> [N, K, 2]."""
    a = np.radians(np.asarray(angle_deg, np.float64))[..., None].astype(F32)
    c, s = np.cos(a), np.sin(a)
    u, v = uv[:, 0] - F32(pivot[0]), uv[:, 1] - F32(pivot[1])
    return np.stack([u * c - v * s + F32(pivot[0]), u * s + v * c + F32(pivot[1])], -1)


def moved(parts: Parts, offset=(0.0, 0.0), angle_deg: float = 0.0, w_offset: float = 0.0,
          pivot=(0.0, 0.0)) -> Parts:
    """Parts rotated by ``angle_deg`` about ``pivot`` in the uv plane, then shifted."""
    off = np.asarray(offset, F32)
    out = []
    for p in _coarse_first(parts) if angle_deg else parts:
        uv = _rotated(p.uv, angle_deg, pivot) if angle_deg else p.uv
        out.append(Slab(p.material, uv + off, p.w_lo + F32(w_offset), p.w_hi + F32(w_offset),
                        p.cell_mm))
    return out


def copies(parts: Parts, offsets, w_offsets=None, angles=None) -> Parts:
    """Each part repeated at N poses (rotated by ``angles`` deg about the origin, moved by
    ``offsets`` [N, 2] and ``w_offsets`` [N]); one slab per part."""
    offsets = np.asarray(offsets, F32).reshape(-1, 2)
    count = len(offsets)
    w_off = np.zeros(count, F32) if w_offsets is None else np.asarray(w_offsets, F32)
    out = []
    for p in _coarse_first(parts) if angles is not None else parts:
        uv = (_rotated(p.uv, angles) if angles is not None else p.uv[None]) + offsets[:, None]
        out.append(Slab(p.material, uv.reshape(-1, 2), (p.w_lo[None] + w_off[:, None]).ravel(),
                        (p.w_hi[None] + w_off[:, None]).ravel(), p.cell_mm))
    return out


def merge(parts: Parts, shift=(0.0, 0.0, 0.0)) -> Parts:
    """Columns of one material and grid joined into one slab per thickness class (powers of
    two), then shifted by (u, v, w). Projection samples every column of a slab as often as its
    thickest one needs, so classes keep thin columns from being over-sampled."""
    by_material: dict[tuple, list[Slab]] = {}
    for p in parts:
        if len(p.uv):
            by_material.setdefault((p.material, p.cell_mm), []).append(p)
    shift = np.asarray(shift, F32)
    out = []
    for (material, cell), group in by_material.items():
        uv = np.concatenate([p.uv for p in group]) + shift[:2]
        w_lo = np.concatenate([p.w_lo for p in group]) + shift[2]
        w_hi = np.concatenate([p.w_hi for p in group]) + shift[2]
        cls = np.frexp(np.maximum(w_hi - w_lo, F32(0.5)))[1]  # exponent: powers of two
        order = np.argsort(cls, kind="stable")
        cls, w_lo, w_hi = cls[order], w_lo[order], w_hi[order]
        uv = np.take(uv, order, axis=0)
        cuts = np.flatnonzero(np.diff(cls)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(cls)], strict=True):
            out.append(Slab(material, uv[a:b], w_lo[a:b], w_hi[a:b], cell))
    return out


def coarsened(p: Slab) -> Parts:
    """The slab with every complete 2 x 2 block of columns whose depth intervals agree (within
    0.1 mm + 5 %) replaced by one column on a grid twice as coarse: flat interiors cost a
    quarter, while edges, bevels and curved surfaces keep the full grid."""
    n = len(p.uv)
    if n < 1024:
        return [p]
    g = p.uv / F32(p.cell_mm)
    ij = np.round(g).astype(np.int64)
    if np.abs(g[:16] - ij[:16]).max() > 0.05:  # rotated copies are off the grid
        return [p]
    lo = ij.min(0) // 2 * 2
    ij -= lo
    w, h = ij.max(0) // 2 * 2 + 2
    if w * h > 8 * n:
        return [p]
    flat = ij[:, 1] * w + ij[:, 0]
    a = np.full((h, w), np.nan, F32)
    b = a.copy()
    a.ravel()[flat], b.ravel()[flat] = p.w_lo, p.w_hi
    if np.count_nonzero(~np.isnan(a)) != n:  # two columns in one cell: leave it alone
        return [p]
    corners = [(slice(r, None, 2), slice(c, None, 2)) for r in (0, 1) for c in (0, 1)]
    qa, qb = [a[k] for k in corners], [b[k] for k in corners]
    spread = np.fmax(_spread(qa), _spread(qb))  # NaN where a column is missing
    mean_a, mean_b = sum(qa) / 4, sum(qb) / 4
    ok = spread <= 0.1 + 0.05 * (mean_b - mean_a)
    if not ok.any():
        return [p]
    by, bx = np.nonzero(ok)
    uv = (np.stack([bx, by], 1) * 2 + lo + 0.5) * p.cell_mm
    rest = ~ok[ij[:, 1] // 2, ij[:, 0] // 2]
    return [Slab(p.material, uv.astype(F32), mean_a[ok], mean_b[ok], 2 * p.cell_mm),
            Slab(p.material, pick(p.uv, rest), p.w_lo[rest], p.w_hi[rest], p.cell_mm)]


def _spread(q: list[np.ndarray]) -> np.ndarray:
    hi = np.maximum(np.maximum(q[0], q[1]), np.maximum(q[2], q[3]))
    return hi - np.minimum(np.minimum(q[0], q[1]), np.minimum(q[2], q[3]))


def _coarse_first(parts: Parts) -> Parts:
    """Coarsen while still on the grid (before a rotation takes parts off it)."""
    if not parts:
        return parts
    base = min(p.cell_mm for p in parts)
    return [c for p in parts for c in (coarsened(p) if p.cell_mm == base else [p])]


def finish(name: str, label: str | None, parts: Parts, **meta) -> Item:
    """The item ``name`` centred on the origin (bounding box, along u, v and w), its slabs
    coarsened where flat and merged; ``meta`` records the variant drawn."""
    parts = _coarse_first([p for p in parts if len(p.uv)])
    bounds = np.array([p.bounds for p in parts])
    centre = (bounds[:, :3].min(0) + bounds[:, 3:].max(0)) / 2
    cell = min(p.cell_mm for p in parts)
    centre[:2] = np.round(centre[:2] / cell) * cell  # stay on the column grid
    return Item(name, merge(parts, -centre), label, dict(meta))


def smooth_noise(rng: np.random.Generator, shape, scale_px: float) -> np.ndarray:
    """Smooth random field in [0, 1] with features about ``scale_px`` across."""
    h, w = shape
    gh, gw = max(2, int(h / scale_px) + 2), max(2, int(w / scale_px) + 2)
    coarse = rng.random((gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
