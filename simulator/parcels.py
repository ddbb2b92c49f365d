"""Compose one parcel: a cardboard box or a soft bag, packed with clutter and sometimes a threat.

The result is an ideal (noise-free) dual-energy log-attenuation image of the parcel on a canvas
the height of the detector column, x along the belt at the nominal pitch, with the tight boxes of
the threats in it. Items are solids projected at random 3D orientations; their log-attenuations
add (Beer-Lambert), so a knife under a laptop is as hidden as it would be in a real scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.imaging.attenuation import mu_pair
from edge.imaging.render import DARKNESS
from simulator import phantoms
from simulator.phantoms.geometry import smooth_noise
from simulator.solids import (
    Footprint,
    Item,
    beam_depth_mm,
    project,
    projected_box,
    random_rotation,
    rotate_2d,
)

TUNNEL_MARGIN_MM = 30.0
# A threat whose strongest pixel attenuates less than this (3 % of the beam) is invisible in
# the scan: it stays in the parcel, but no one could be asked to find it, so it gets no label.
VISIBLE_ATT = 0.03
AA = 4  # supersampling of container outlines
THREAT_DRAWS = 4  # threats drawn per wanted threat until one fits the parcel
# Callable in grey (``visible_in_grey``), in grey levels of ``render_grey``; chosen by looking at
# the threat gallery's least visible instances (docs/gallery/README.md).
GREY_CALL_LEVELS = 15.0
GREY_SEEN_LEVELS = 8.0
OWN_PIXEL_ATT = 0.05        # a threat's own pixels: where it alone attenuates this much
OPAQUE_ATT = float(np.log(1000))  # fewer than 1 in 1,000 photons through: drawn near black


@dataclass(frozen=True)
class ScanGeometry:
    n_pixels: int
    pitch_mm: float
    kev: tuple[float, float]  # (low, high) effective energies

    @property
    def cell_mm(self) -> float:
        """Grid spacing of item columns: under a pixel, which bilinear splats keep smooth."""
        return self.pitch_mm * 0.7


@dataclass
class ParcelScene:
    """Ideal scan of one parcel. att_lo, att_hi: float32 [n_pixels, width] (x = along belt)."""

    kind: str
    size_mm: tuple[float, float, float]  # length along belt, width across, depth along beam
    att_lo: np.ndarray | None  # None once released (``release``)
    att_hi: np.ndarray | None
    boxes: np.ndarray  # float32 [N, 4] xyxy px, threats only
    labels: list[str]
    families: list[str] = field(default_factory=list)   # every placed item, benign or not
    item_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    # Per label: callable in the single-energy grey view (``visible_in_grey``); empty = all.
    grey_visible: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._width = int(self.att_hi.shape[1])

    @property
    def width(self) -> int:
        return self._width

    def release(self) -> None:
        """Drop the attenuation maps once the parcel is past the scan plane (the boxes and
        labels stay for ground truth): a long run must not hold every parcel's image."""
        self.att_lo = self.att_hi = None


class Canvas:
    """Accumulates log-attenuation, clipping footprints at the edges."""

    def __init__(self, height: int, width: int):
        self.att_lo = np.zeros((height, width), np.float32)
        self.att_hi = np.zeros((height, width), np.float32)

    def add(self, fp: Footprint) -> None:
        h, w = self.att_hi.shape
        fh, fw = fp.att_hi.shape
        x0, y0 = max(fp.x0, 0), max(fp.y0, 0)
        x1, y1 = min(fp.x0 + fw, w), min(fp.y0 + fh, h)
        if x1 <= x0 or y1 <= y0:
            return
        src = np.s_[y0 - fp.y0:y1 - fp.y0, x0 - fp.x0:x1 - fp.x0]
        self.att_lo[y0:y1, x0:x1] += fp.att_lo[src]
        self.att_hi[y0:y1, x0:x1] += fp.att_hi[src]

    def add_material(self, path_mm: np.ndarray, material: str, kev) -> None:
        mu_lo, mu_hi = mu_pair(material, *kev)
        self.att_lo += mu_lo * path_mm
        self.att_hi += mu_hi * path_mm


def polygon_coverage(shape, polygon_px: np.ndarray) -> np.ndarray:
    """Fraction [0, 1] of each pixel inside a polygon (px), float32 ``shape``."""
    h, w = shape
    big = np.zeros((h * AA, w * AA), np.uint8)
    pts = np.round(np.asarray(polygon_px) * AA * 16).astype(np.int32)
    cv2.fillPoly(big, [pts], 255, lineType=cv2.LINE_8, shift=4)
    return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


@dataclass(frozen=True)
class Container:
    kind: str
    center_px: tuple[float, float]
    length_mm: float
    width_mm: float
    depth_mm: float
    yaw_deg: float

    def outline_px(self, pitch: float, shrink_mm: float = 0.0) -> np.ndarray:
        half = np.array([self.length_mm - 2 * shrink_mm, self.width_mm - 2 * shrink_mm]) / 2
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
        return rotate_2d(corners, self.yaw_deg) / pitch + np.asarray(self.center_px)

    def random_point_px(self, rng, pitch: float, margin_mm: float) -> np.ndarray:
        half = np.maximum(np.array([self.length_mm, self.width_mm]) / 2 - margin_mm, 5.0)
        local = rng.uniform(-half, half)
        return rotate_2d(local[None], self.yaw_deg)[0] / pitch + np.asarray(self.center_px)


def draw_container(rng, geo: ScanGeometry) -> Container:
    max_width = geo.n_pixels * geo.pitch_mm - 2 * TUNNEL_MARGIN_MM
    kind = "box" if rng.random() < 0.6 else "bag"
    length = float(rng.uniform(220, 800))
    width = float(min(rng.uniform(160, 600), max_width, length * 1.2))
    depth = float(rng.uniform(80, 400) if kind == "box" else rng.uniform(80, 250))
    yaw = float(rng.normal(0, 6))
    # Canvas width follows the rotated footprint; y anywhere the parcel fits in the tunnel.
    extent_x = abs(length * np.cos(np.radians(yaw))) + abs(width * np.sin(np.radians(yaw)))
    extent_y = abs(length * np.sin(np.radians(yaw))) + abs(width * np.cos(np.radians(yaw)))
    cx = extent_x / 2 / geo.pitch_mm + 2
    tunnel = geo.n_pixels * geo.pitch_mm
    cy_mm = rng.uniform(extent_y / 2 + TUNNEL_MARGIN_MM / 2,
                        max(extent_y / 2 + TUNNEL_MARGIN_MM / 2,
                            tunnel - extent_y / 2 - TUNNEL_MARGIN_MM / 2))
    return Container(kind, (cx, cy_mm / geo.pitch_mm), length, width, depth, yaw)


def container_walls(canvas: Canvas, box: Container, rng, geo: ScanGeometry) -> np.ndarray:
    """Adds the box or bag shell; returns the inner coverage mask (where contents may lie)."""
    shape = canvas.att_hi.shape
    if box.kind == "box":
        wall_mm = rng.uniform(3.0, 7.0)  # corrugated board, geometric thickness
        solid_mm = wall_mm * rng.uniform(0.15, 0.3)  # cellulose actually in it
        outer = polygon_coverage(shape, box.outline_px(geo.pitch_mm))
        inner = polygon_coverage(shape, box.outline_px(geo.pitch_mm, wall_mm))
        # Top and bottom face the beam; the side walls are seen edge-on, through their length.
        path = inner * 2 * solid_mm + (outer - inner) * box.depth_mm * solid_mm / wall_mm
        seam = polygon_coverage(shape, Container(
            "box", box.center_px, box.length_mm, rng.uniform(8, 40), 0, box.yaw_deg,
        ).outline_px(geo.pitch_mm))
        path += seam * inner * solid_mm  # flaps overlap along the middle
        canvas.add_material(path, "cardboard", geo.kev)
        return inner
    # Soft bag: a pillow-shaped fabric shell; the path through the shell grows near the rim.
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32) + 0.5
    local = rotate_2d(np.stack([xs.ravel() - box.center_px[0], ys.ravel() - box.center_px[1]],
                               1), -box.yaw_deg) * geo.pitch_mm
    a, b = box.length_mm / 2, box.width_mm / 2
    r2 = ((local[:, 0] / a) ** 4 + (local[:, 1] / b) ** 4).reshape(shape) ** 0.5
    inside = (r2 < 1).astype(np.float32)
    fabric_mm = rng.uniform(0.6, 2.0)
    path = inside * 2 * fabric_mm / np.sqrt(np.clip(1 - r2, 0.04, 1))
    canvas.add_material(path, "cloth", geo.kev)
    return (r2 < 0.9).astype(np.float32)


def place(item: Item, box: Container, rng, geo: ScanGeometry, stretch: float = 1.0,
          tries: int = 8) -> Footprint | None:
    """Project ``item`` at a random pose that fits inside the container: its footprint within
    the outline, its reach along the beam within the depth."""
    lo = np.asarray(box.outline_px(geo.pitch_mm, 4.0)).min(0)
    hi = np.asarray(box.outline_px(geo.pitch_mm, 4.0)).max(0)
    margin = min(item.extent_mm() * 0.5, min(box.length_mm, box.width_mm) * 0.3)
    for _ in range(tries):
        rot = random_rotation(rng)
        if beam_depth_mm(item, rot) > box.depth_mm:
            continue
        at = box.random_point_px(rng, geo.pitch_mm, margin)
        b = projected_box(item, rot, at, geo.pitch_mm, stretch)
        if b[0] >= lo[0] and b[1] >= lo[1] and b[2] <= hi[0] and b[3] <= hi[1]:
            return project(item, rot, at, geo.pitch_mm, geo.kev, stretch)
    return None


def compose_parcel(rng: np.random.Generator, geo: ScanGeometry, threat: bool,
                   exclude: tuple[str, ...] = ()) -> ParcelScene:
    """One parcel scene; with ``threat``, one or two threat items hidden among the clutter."""
    box = draw_container(rng, geo)
    width = int(np.ceil(box.center_px[0] * 2))
    canvas = Canvas(geo.n_pixels, width)
    inner = container_walls(canvas, box, rng, geo)
    area_m2 = box.length_mm * box.width_mm / 1e6
    # Crumpled paper / bubble wrap: faint, smooth, everywhere inside.
    filler = smooth_noise(rng, inner.shape, 40 / geo.pitch_mm) * inner * rng.uniform(0, 4)
    canvas.add_material(filler, "paper", geo.kev)
    families: list[str] = []
    item_boxes: list[np.ndarray] = []   # each item's footprint box: what an alarm sits on
    for size, count in (("large", rng.poisson(1 + 6 * area_m2)),
                        ("small", rng.poisson(4 + 45 * area_m2))):
        for _ in range(int(count)):
            item = phantoms.make_benign(rng, geo.cell_mm, size=size, exclude=exclude)
            fp = place(item, box, rng, geo, tries=3)
            if fp is not None:
                canvas.add(fp)
                families.append(item.name)
                item_boxes.append(fp.box)
    boxes, labels, placed = [], [], []
    if threat:
        for _ in range(1 if rng.random() < 0.85 else 2):
            # A threat too big for this parcel gives way to another draw, so a threat parcel
            # almost always carries one (a narrow tunnel's small boxes refuse many).
            for _ in range(THREAT_DRAWS):
                label = str(rng.choice(phantoms.THREAT_CLASSES))
                item = phantoms.make_threat(label, rng, geo.cell_mm, exclude=exclude)
                fp = place(item, box, rng, geo, tries=30)
                if fp is not None:
                    break
            if fp is None:
                continue
            canvas.add(fp)
            own = fp.box          # a property that scans the footprint: taken once
            families.append(item.name)
            item_boxes.append(own)
            if fp.att_hi.max() >= VISIBLE_ATT:
                boxes.append(np.clip(own, 0, [width, geo.n_pixels, width, geo.n_pixels]))
                labels.append(label)
                placed.append(fp)
    return ParcelScene(box.kind, (box.length_mm, box.width_mm, box.depth_mm),
                       canvas.att_lo, canvas.att_hi,
                       np.asarray(boxes, np.float32).reshape(-1, 4), labels, families,
                       np.asarray(item_boxes, np.float32).reshape(-1, 4),
                       [visible_in_grey(fp, canvas.att_hi) for fp in placed])


def visible_in_grey(fp: Footprint, total_hi: np.ndarray) -> bool:
    """Whether a screener could call the threat of footprint ``fp`` in the single-energy grey
    view: it must darken its own pixels by ``GREY_CALL_LEVELS`` on average, at least half of
    them by ``GREY_SEEN_LEVELS``, and not lie mostly behind clutter that already stops the
    beam. Thin blades over organic clutter often show only as a change of hue, which the
    pseudo-colour view keeps and the grey one loses (docs/gallery)."""
    h, w = total_hi.shape
    fh, fw = fp.att_hi.shape
    x0, y0 = max(fp.x0, 0), max(fp.y0, 0)
    x1, y1 = min(fp.x0 + fw, w), min(fp.y0 + fh, h)
    if x1 <= x0 or y1 <= y0:
        return False
    own = fp.att_hi[y0 - fp.y0:y1 - fp.y0, x0 - fp.x0:x1 - fp.x0]
    mask = own > OWN_PIXEL_ATT
    if not mask.any():
        return False
    total = total_hi[y0:y1, x0:x1][mask]
    behind = total - own[mask]
    darkened = 255 * (np.exp(-DARKNESS * behind) - np.exp(-DARKNESS * total))
    hidden = np.mean(behind > OPAQUE_ATT)
    return bool(hidden <= 0.5 and darkened.mean() >= GREY_CALL_LEVELS
                and np.mean(darkened >= GREY_SEEN_LEVELS) >= 0.5)
