"""Solid objects for the simulator, and their X-ray projection at any 3D orientation.

Every object is built from *slabs*: over a grid of columns in the object's own (u, v) plane,
material fills ``w_lo <= w <= w_hi``. That covers plates with bevels (blades), extrusions
(frames, shuriken), rods and tubes (barrels, cartridges, batons) and ellipsoids, and lets parts
sit at different depths. Coordinates are millimetres, object frame centred near the origin.

Projection samples each column at a few depths, rotates the points with a 3x3 matrix (rows: image
x, image y, beam), and splats them bilinearly onto the detector grid, so the path length through
the solid at every pixel comes out right for any orientation: a pistol seen edge-on is a dark
strip, seen flat a light silhouette. Log-attenuations of overlapping objects then simply add.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from edge.imaging.attenuation import mu_pair

Thickness = float | Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Slab:
    """Material filling ``w_lo..w_hi`` (mm) over columns centred at ``uv`` [K, 2] (mm)."""

    material: str
    uv: np.ndarray
    w_lo: np.ndarray
    w_hi: np.ndarray
    cell_mm: float

    @cached_property
    def bounds(self) -> np.ndarray:
        """[u0, v0, w0, u1, v1, w1] (mm): the slab's bounding box, computed once."""
        if not len(self.uv):
            return np.zeros(6)
        u, v = self.uv[:, 0], self.uv[:, 1]
        return np.array([u.min(), v.min(), self.w_lo.min(), u.max(), v.max(), self.w_hi.max()],
                        np.float64)


@dataclass
class Item:
    """One rigid object: a threat (``label`` = its class) or benign clutter (``label`` None)."""

    name: str
    slabs: list[Slab]
    label: str | None = None
    meta: dict = field(default_factory=dict)

    def extent_mm(self) -> float:
        """Largest distance of any column from the origin, mm (for placement)."""
        return max(float(np.hypot(*np.abs(s.bounds.reshape(2, 3)[:, :2]).max(0)))
                   for s in self.slabs if len(s.uv))


# --- building -----------------------------------------------------------------------------------

def raster(polygon_mm: np.ndarray, cell_mm: float) -> np.ndarray:
    """Centres [K, 2] (mm) of the grid cells inside a polygon [P, 2] (mm)."""
    poly = np.asarray(polygon_mm, dtype=np.float64)
    lo = poly.min(0) - cell_mm
    size = np.ceil((poly.max(0) - lo) / cell_mm).astype(int) + 2
    canvas = np.zeros((size[1], size[0]), np.uint8)
    shift = 4  # sub-cell vertex precision
    pts = np.round((poly - lo) / cell_mm * (1 << shift) - 0.5 * (1 << shift)).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 1, lineType=cv2.LINE_8, shift=shift)
    rows, cols = np.nonzero(canvas)
    return np.stack([cols, rows], axis=1) * cell_mm + lo


def _thickness_at(thickness: Thickness, uv: np.ndarray) -> np.ndarray:
    if callable(thickness):
        return np.clip(np.asarray(thickness(uv), dtype=np.float64), 0, None)
    return np.full(len(uv), float(thickness))


def extrude(polygon_mm, thickness: Thickness, material: str, cell_mm: float,
            w_center: float = 0.0) -> Slab:
    """A plate of ``polygon`` outline, ``thickness`` mm (a number or a function of uv [K, 2])."""
    uv = raster(polygon_mm, cell_mm)
    t = _thickness_at(thickness, uv)
    keep = t > 0
    uv, t = uv[keep], t[keep]
    return Slab(material, uv.astype(np.float32), (w_center - t / 2).astype(np.float32),
                (w_center + t / 2).astype(np.float32), cell_mm)


def rectangle(length: float, width: float, center=(0.0, 0.0), angle_deg: float = 0.0):
    """Outline [4, 2] of a rectangle, mm."""
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [length / 2, width / 2]
    return rotate_2d(half, angle_deg) + np.asarray(center)


def ellipse(a: float, b: float, center=(0.0, 0.0), angle_deg: float = 0.0, n: int = 48):
    """Outline [n, 2] of an ellipse with semi-axes a, b (mm)."""
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.stack([a * np.cos(phi), b * np.sin(phi)], axis=1)
    return rotate_2d(pts, angle_deg) + np.asarray(center)


def rod(p0, p1, radius: float, material: str, cell_mm: float, w_center: float = 0.0,
        inner_radius: float = 0.0) -> list[Slab]:
    """A cylinder (a tube when ``inner_radius`` > 0) whose axis runs p0 -> p1 in the uv plane."""
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    axis = p1 - p0
    length = float(np.hypot(*axis))
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    outline = rectangle(length, 2 * radius, (p0 + p1) / 2, angle)
    uv = raster(outline, cell_mm)
    normal = np.array([-axis[1], axis[0]]) / max(length, 1e-9)
    d = np.abs((uv - p0) @ normal)
    h_out = np.sqrt(np.clip(radius ** 2 - d ** 2, 0, None))
    keep = h_out > 0
    uv, d, h_out = uv[keep], d[keep], h_out[keep]
    h_in = np.sqrt(np.clip(inner_radius ** 2 - d ** 2, 0, None))
    uv32 = uv.astype(np.float32)
    if inner_radius <= 0:
        return [Slab(material, uv32, (w_center - h_out).astype(np.float32),
                     (w_center + h_out).astype(np.float32), cell_mm)]
    return [Slab(material, uv32, (w_center - h_out).astype(np.float32),
                 (w_center - h_in).astype(np.float32), cell_mm),
            Slab(material, uv32, (w_center + h_in).astype(np.float32),
                 (w_center + h_out).astype(np.float32), cell_mm)]


def ellipsoid(center, radii, material: str, cell_mm: float) -> Slab:
    """An ellipsoid with semi-axes (a, b, c) mm along (u, v, w), centred at (u, v, w)."""
    cu, cv, cw = center
    a, b, c = radii
    uv = raster(ellipse(a, b, (cu, cv)), cell_mm)
    r2 = ((uv[:, 0] - cu) / a) ** 2 + ((uv[:, 1] - cv) / b) ** 2
    h = c * np.sqrt(np.clip(1 - r2, 0, None))
    keep = h > 0
    return Slab(material, uv[keep].astype(np.float32), (cw - h[keep]).astype(np.float32),
                (cw + h[keep]).astype(np.float32), cell_mm)


def rotate_2d(points: np.ndarray, angle_deg: float) -> np.ndarray:
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.asarray(points, np.float64) @ rot.T


# --- orientation --------------------------------------------------------------------------------

def rotation(yaw_deg: float, tilt_deg: float = 0.0, tilt_axis_deg: float = 0.0) -> np.ndarray:
    """3x3 rotation: tilt the object's w axis by ``tilt_deg`` about an in-plane axis at
    ``tilt_axis_deg``, then spin it by ``yaw_deg`` about the beam. Rows: image x, y, beam."""
    ax = np.radians(tilt_axis_deg)
    k = np.array([np.cos(ax), np.sin(ax), 0.0])
    tilt, _ = cv2.Rodrigues(k * np.radians(tilt_deg))
    yaw, _ = cv2.Rodrigues(np.array([0.0, 0.0, np.radians(yaw_deg)]))
    return yaw @ tilt


def random_rotation(rng: np.random.Generator, flat_share: float = 0.6) -> np.ndarray:
    """Random orientation of an object dropped into a parcel: most lie roughly flat, the rest
    point anywhere (uniform on the sphere), so edge-on views are common enough to learn."""
    yaw = rng.uniform(0, 360)
    if rng.random() < flat_share:
        tilt = min(abs(rng.normal(0, 15)), 60)
    else:
        tilt = np.degrees(np.arccos(rng.uniform(-1, 1)))
    return rotation(yaw, tilt, rng.uniform(0, 360))


# --- projection ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Footprint:
    """Log-attenuation an item adds on its own canvas: maps [h, w] whose top-left pixel is at
    (x0, y0) in the target image. ``box`` is the tight xyxy extent (image px) of the item."""

    att_lo: np.ndarray
    att_hi: np.ndarray
    x0: int
    y0: int

    @property
    def box(self) -> np.ndarray:
        ys, xs = np.nonzero(self.att_hi > 0.01)
        if len(xs) == 0:
            return np.zeros(4, np.float32)
        return np.array([xs.min() + self.x0, ys.min() + self.y0,
                         xs.max() + 1 + self.x0, ys.max() + 1 + self.y0], np.float32)


def slab_corners(item: Item) -> np.ndarray:
    """[N, 3] corners (u, v, w in mm) of every non-empty slab's bounding box."""
    corners = [np.array(np.meshgrid([u0, u1], [v0, v1], [w0, w1])).reshape(3, -1).T
               for u0, v0, w0, u1, v1, w1 in (s.bounds for s in item.slabs if len(s.uv))]
    return np.concatenate(corners) if corners else np.zeros((0, 3))


def projected_box(item: Item, rot: np.ndarray, center_px, pitch_mm: float,
                  stretch: float = 1.0) -> np.ndarray:
    """xyxy (px) enclosing what ``project`` would cover: the rotated corners of each slab's
    bounding box (cheap, and never smaller than the footprint)."""
    pts = slab_corners(item) @ rot[:2].T
    scale = np.array([stretch, 1.0]) / pitch_mm
    return np.concatenate([pts.min(0) * scale + center_px, pts.max(0) * scale + center_px])


def beam_depth_mm(item: Item, rot: np.ndarray) -> float:
    """How far ``item`` rotated by ``rot`` reaches along the beam (mm): it must fit the
    parcel's depth, so a 400 mm baton cannot stand on end in a 150 mm box."""
    corners = slab_corners(item)
    if not len(corners):
        return 0.0
    depth = corners @ rot[2]
    return float(depth.max() - depth.min())


def project(item: Item, rot: np.ndarray, center_px, pitch_mm: float, kev: tuple[float, float],
            stretch: float = 1.0) -> Footprint:
    """Project ``item`` rotated by ``rot`` with its origin at ``center_px`` (x, y) of an image of
    ``pitch_mm`` pixels. ``stretch`` scales x (belt speed off nominal). Returns a Footprint."""
    sin_tilt = float(np.hypot(rot[0, 2], rot[1, 2]))
    clouds = []  # (material, x, y, path) per slab, x/y in pixels
    for slab in item.slabs:
        if not len(slab.uv):
            continue
        t = slab.w_hi - slab.w_lo
        # Depth samples a pixel apart along the projected column: bilinear splats of points a
        # pixel apart sum to a flat line, so there are no gaps.
        k = int(np.clip(np.ceil(float(t.max()) * sin_tilt / pitch_mm), 1, 512))
        uv, t, w_lo, area = _thinned(slab, k, pitch_mm)
        frac = (np.arange(k, dtype=np.float32) + 0.5) / k
        w = w_lo[None, :] + frac[:, None] * t[None, :]
        u, v = uv[:, 0], uv[:, 1]
        x = ((u * rot[0, 0] + v * rot[0, 1])[None, :] + w * rot[0, 2]) * (stretch / pitch_mm)
        y = ((u * rot[1, 0] + v * rot[1, 1])[None, :] + w * rot[1, 2]) / pitch_mm
        # Path length (mm) each point adds, averaged over a whole detector pixel.
        path = np.broadcast_to(t * (area / pitch_mm ** 2 / k), x.shape)
        clouds.append((slab.material, x.ravel() + center_px[0], y.ravel() + center_px[1],
                       path.ravel()))
    if not clouds:
        return Footprint(np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32), 0, 0)
    # The canvas from the slabs' rotated bounding boxes: no pass over the points needed.
    bx0, by0, bx1, by1 = projected_box(item, rot, center_px, pitch_mm, stretch)
    x0, y0 = int(np.floor(bx0 - 0.5)) - 1, int(np.floor(by0 - 0.5)) - 1
    w_px, h_px = int(np.floor(bx1 + 0.5)) - x0 + 2, int(np.floor(by1 + 0.5)) - y0 + 2
    att_lo = np.zeros(h_px * w_px)
    att_hi = np.zeros_like(att_lo)
    for name, x, y, path in clouds:
        mu_lo, mu_hi = mu_pair(name, *kev)
        spread = splat(x - x0, y - y0, path, (h_px, w_px))
        att_lo += mu_lo * spread
        att_hi += mu_hi * spread
    return Footprint(att_lo.reshape(h_px, w_px).astype(np.float32),
                     att_hi.reshape(h_px, w_px).astype(np.float32), x0, y0)


POINT_BUDGET = 200_000  # points per slab above which columns are thinned


def _thinned(slab: Slab, k: int, pitch_mm: float):
    """Columns of a thick, tilted slab thinned to every m-th grid cell (m <= pitch / cell, so
    they stay at most a pixel apart), each then carrying m^2 cells' volume."""
    m = int(min(max(pitch_mm / slab.cell_mm, 1), np.ceil(np.sqrt(len(slab.uv) * k /
                                                                   POINT_BUDGET))))
    if m <= 1:
        return slab.uv, slab.w_hi - slab.w_lo, slab.w_lo, slab.cell_mm ** 2
    grid = np.round(slab.uv / slab.cell_mm).astype(np.int64)
    keep = (grid[:, 0] % m == 0) & (grid[:, 1] % m == 0)
    return (slab.uv[keep], (slab.w_hi - slab.w_lo)[keep], slab.w_lo[keep],
            (slab.cell_mm * m) ** 2)


def splat(x: np.ndarray, y: np.ndarray, weight: np.ndarray, shape) -> np.ndarray:
    """Bilinear splat of weighted points onto a flat grid of ``shape`` (pixel centres at
    integer + 0.5): the antialiasing that keeps regular column grids free of moire. Points must
    lie at least half a pixel inside the grid (``project`` sizes it so)."""
    h, w = shape
    fx, fy = x - 0.5, y - 0.5
    ix, iy = fx.astype(np.int64), fy.astype(np.int64)  # floor: coordinates are positive
    ax, ay = fx - ix, fy - iy
    base = iy * w + ix
    wx0, wx1 = weight * (1 - ax), weight * ax
    out = np.bincount(base, wx0 * (1 - ay), minlength=h * w)
    out += np.bincount(base + 1, wx1 * (1 - ay), minlength=h * w)
    out += np.bincount(base + w, wx0 * ay, minlength=h * w)
    out += np.bincount(base + w + 1, wx1 * ay, minlength=h * w)
    return out
