"""The top camera: one photo of each parcel's top, carrying its printed label.

A ``Photo`` holds a BGR uint8 ``[height, width, 3]`` image, the time it was taken (s, monotonic)
and the belt encoder count then.

``SimCamera`` draws a plausible photo: a dark belt, a cardboard box (tape along the flaps' seam,
darker edges) or a fabric bag (wrinkles) of the parcel's size at a small random pose, and a white
label with the parcel ID as a QR code or Code 128 barcode and in print, at a random place and
rotation on the parcel; then uneven light, defocus, sensor noise and JPEG compression. The label
is drawn at ``SUPERSAMPLE`` times the photo's resolution and averaged down, as a sensor
integrates light over each pixel. Photos depend only on the seed and the parcel ID.

``SimCamera.photograph`` takes the simulator's own knowledge of the parcel (its ID, size and
kind); ``SimTopCamera`` (``simulator.harness``) puts it behind the live loop's ``Camera``.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from edge.config import SimCameraConfig
from edge.imaging.barcode import draw_qr, encode_code128
from edge.imaging.code128 import QUIET_MODULES
from edge.types import Photo

KINDS = ("box", "bag")
SUPERSAMPLE = 3
OPTICS_BAND = 128  # rows of a photo processed at once in the optics stage
MARGIN_MM = 5.0  # white paper around the code and the print
TEXT_MM = 6.0  # height of the printed ID
TAPE_MM = 48.0  # packing tape along the box flaps' seam
PAPER_BGR = np.array([238, 244, 247], np.float32)  # slightly warm white


def label_image(parcel_id: str, code: str, px_per_mm: float, module_mm: float) -> np.ndarray:
    """uint8 grey ``[h, w]`` label: the code (``module_mm`` per module) above the ID in print."""
    if code == "qr":
        qr = draw_qr(parcel_id, module_px=1)
        side = int(round(qr.shape[0] * module_mm * px_per_mm))
        art = cv2.resize(qr, (side, side), interpolation=cv2.INTER_NEAREST)
    elif code == "code128":
        modules = np.pad(encode_code128(parcel_id), QUIET_MODULES)
        length = int(round(modules.size * module_mm * px_per_mm))
        index = (np.arange(length) / (module_mm * px_per_mm)).astype(np.int64)
        row = np.where(modules[np.minimum(index, modules.size - 1)] == 1, 0, 255)
        art = np.tile(row.astype(np.uint8), (int(max(12.0, 0.15 * length / px_per_mm)
                                                 * px_per_mm), 1))
    else:
        raise ValueError(f"unknown label code {code!r}; valid: 'qr', 'code128'")
    margin, text_h = int(MARGIN_MM * px_per_mm), int(TEXT_MM * px_per_mm)
    h, w = art.shape[0] + text_h + 3 * margin, art.shape[1] + 2 * margin
    label = np.full((h, w), 255, np.uint8)
    label[margin:margin + art.shape[0], margin:margin + art.shape[1]] = art
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = text_h / cv2.getTextSize("0", font, 1.0, 2)[0][1]
    text_w = cv2.getTextSize(parcel_id, font, scale, 2)[0][0]
    scale *= min(1.0, (w - 2 * margin) / text_w)  # long IDs shrink to fit the paper
    cv2.putText(label, parcel_id, (margin, h - margin), font, scale, 20,
                max(1, int(scale * 2)), cv2.LINE_AA)
    return label


def _rotation(angle_deg: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _corners(centre: np.ndarray, size: tuple[float, float], angle_deg: float) -> np.ndarray:
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.asarray(size) / 2
    return half @ _rotation(angle_deg).T + centre


class SimCamera:
    """Simulated top camera (see the module docstring)."""

    def __init__(self, config: SimCameraConfig, seed: int = 0):
        self.config = config
        self.seed = seed
        self.px_per_mm = config.width / config.field_mm
        rng = np.random.default_rng([seed, 0x70B])
        h, w = config.height, config.width
        # Belt rubber: faint streaks along the running direction plus grain, drawn once.
        streaks = rng.normal(0, 3, (h, 1)).astype(np.float32) + rng.normal(0, 4, (h, w // 8 + 1))
        grain = cv2.resize(streaks.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        self._belt = np.clip(48 + grain, 0, 255).astype(np.uint8)
        # A bank of sensor noise, cut at a random offset per photo: cheaper than fresh draws.
        # Held as int8 sixteenths of a sigma: a quarter of the memory of float32.
        self._noise = np.clip(rng.standard_normal((h + 64, w + 64, 3), np.float32) * 16,
                              -127, 127).astype(np.int8)

    def photograph(self, parcel_id: str, size_mm: tuple[float, float], kind: str, t: float,
                   encoder: int) -> Photo:
        """A photo of the parcel's top; ``size_mm`` is (length along the belt, width across)."""
        if kind not in KINDS:
            raise ValueError(f"unknown parcel kind {kind!r}; valid: {', '.join(KINDS)}")
        length, across = (float(v) for v in size_mm[:2])
        if not (length > 0 and across > 0):
            raise ValueError(f"size_mm must be positive, got {tuple(size_mm)}")
        rng = np.random.default_rng([self.seed, zlib.crc32(parcel_id.encode())])
        photo = self._belt_view(rng)
        h, w = photo.shape[:2]
        centre = np.array([w / 2, h / 2]) + rng.normal(0, 0.03, 2) * (w, h)
        angle = float(rng.normal(0, 6))
        body = (length * self.px_per_mm, across * self.px_per_mm)
        draw = self._draw_box if kind == "box" else self._draw_bag
        draw(photo, centre, body, angle, rng)
        self._stick_label(photo, parcel_id, centre, body, angle, kind, rng)
        return Photo(self._optics(photo, rng), float(t), int(encoder))

    def close(self) -> None:
        """Nothing to release."""

    def _belt_view(self, rng) -> np.ndarray:
        shift = int(rng.integers(0, self._belt.shape[1]))  # the belt has moved on
        return cv2.cvtColor(np.roll(self._belt, shift, axis=1), cv2.COLOR_GRAY2BGR)

    def _draw_box(self, photo, centre, body, angle: float, rng) -> None:
        colour = np.array([100, 145, 185]) * rng.uniform(0.85, 1.1) + rng.normal(0, 4, 3)  # kraft
        corners = np.round(_corners(centre, body, angle)).astype(np.int32)
        cv2.fillPoly(photo, [corners], colour.tolist(), cv2.LINE_AA)
        tape = (body[0], min(TAPE_MM * self.px_per_mm, body[1] * 0.4))
        cv2.fillPoly(photo, [np.round(_corners(centre, tape, angle)).astype(np.int32)],
                     (colour * rng.uniform(1.05, 1.2)).clip(0, 255).tolist(), cv2.LINE_AA)
        seam = np.round(_corners(centre, (body[0], 1.0), angle)[:2]).astype(int)
        cv2.line(photo, tuple(seam[0]), tuple(seam[1]), (colour * 0.8).tolist(), 2, cv2.LINE_AA)
        su, sv = rng.normal(0, 0.07, 2)  # the top is a plane, tilted a little against the light
        self._shade(photo, centre, body, angle, lambda u, v: 1 + su * u + sv * v,
                    lambda u, v: (abs(u) <= 1) & (abs(v) <= 1))
        cv2.polylines(photo, [corners], True, (colour * 0.6).tolist(), 4, cv2.LINE_AA)

    def _draw_bag(self, photo, centre, body, angle: float, rng) -> None:
        colour = rng.uniform(30, 100) + rng.normal(0, 8, 3)  # dark fabric or plastic
        half, rot = np.asarray(body) / 2, _rotation(angle)
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        # A soft pouch: the superellipse u^4 + v^4 = 1, between an ellipse and a rectangle.
        outline = np.column_stack([np.cos(t), np.sin(t)])
        outline = np.sign(outline) * np.sqrt(np.abs(outline)) * half
        cv2.fillPoly(photo, [np.round(outline @ rot.T + centre).astype(np.int32)],
                     colour.tolist(), cv2.LINE_AA)
        for _ in range(int(rng.integers(3, 8))):  # creases: a dark fold with a lit ridge beside
            heading = rng.uniform(0, np.pi)
            along = np.linspace(0, rng.uniform(0.3, 0.7), 6)[:, None]
            bend = rng.normal(0, 0.15) * np.sin(np.pi * along / along[-1]) * along[-1]
            q = rng.uniform(-0.7, 0.7, 2) + along * (np.cos(heading), np.sin(heading)) \
                + bend * (-np.sin(heading), np.cos(heading))
            q *= np.minimum(1, 0.85 / (q ** 4).sum(axis=1, keepdims=True) ** 0.25)  # stay on it
            line = np.round((q * half) @ rot.T + centre).astype(np.int32)
            thick = int(rng.integers(2, 5))
            cv2.polylines(photo, [line + (0, thick)], False, (colour * 1.2).clip(0, 255).tolist(),
                          thick, cv2.LINE_AA)
            cv2.polylines(photo, [line], False, (colour * 0.7).tolist(), thick, cv2.LINE_AA)
        tilt = rng.normal(0, 0.08)  # filled and rounded: lit on top, darker towards the rim
        self._shade(photo, centre, body, angle, lambda u, v: 1.1 - 0.3 * (u * u + v * v)
                    + tilt * u, lambda u, v: u ** 4 + v ** 4 <= 1)

    @staticmethod
    def _shade(photo, centre, body, angle: float, gain, inside, step: int = 4) -> None:
        """Scale the parcel's pixels by ``gain(u, v)`` where ``inside(u, v)``; u, v are the
        parcel's own coordinates, -1 to 1 along its length and across it. The gain is smooth,
        so it is worked out on every ``step``-th pixel and interpolated."""
        h, w = photo.shape[:2]
        corners = _corners(centre, body, angle)
        x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 1, (w, h))
        if x1 - x0 < step or y1 - y0 < step:
            return
        dx = np.arange(x0, x1, step, dtype=np.float32)[None, :] - np.float32(centre[0])
        dy = np.arange(y0, y1, step, dtype=np.float32)[:, None] - np.float32(centre[1])
        c, s = np.float32(np.cos(np.radians(angle))), np.float32(np.sin(np.radians(angle)))
        u, v = (dx * c + dy * s) * (2 / body[0]), (dy * c - dx * s) * (2 / body[1])
        factor = np.where(inside(u, v), gain(u, v), 1).astype(np.float32)
        factor = cv2.resize(factor, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        region = photo[y0:y1, x0:x1]
        region[:] = cv2.multiply(region, cv2.merge([factor] * 3), dtype=cv2.CV_8U)

    def _stick_label(self, photo, parcel_id, centre, body, angle, kind, rng) -> None:
        """Stick the label somewhere on the parcel's top, at a random quarter turn + tilt."""
        cfg = self.config
        module = cfg.qr_module_mm if cfg.code == "qr" else cfg.bar_module_mm
        fine = self.px_per_mm * SUPERSAMPLE
        label = label_image(parcel_id, cfg.code, fine, module)
        size = np.array(label.shape[::-1]) / SUPERSAMPLE  # (w, h) photo px
        usable = np.asarray(body) * (0.6 if kind == "bag" else 0.92)
        jitter = float(rng.normal(0, 6))

        def footprint(turn: int) -> np.ndarray:  # label extent in the parcel's own axes, px
            return np.abs(_corners(np.zeros(2), tuple(size), 90 * turn + jitter)).max(axis=0) * 2

        turns = [k for k in range(4) if np.all(footprint(k) <= usable)]
        turn = int(rng.choice(turns)) if turns else int(body[1] > body[0])
        local = rng.uniform(-0.5, 0.5, 2) * np.maximum(usable - footprint(turn), 0)
        spot = centre + _rotation(angle) @ local
        tilt = angle + 90 * turn + jitter
        # Keep the whole label in view: the pipeline cannot read what the frame cuts off.
        half = np.abs(_corners(np.zeros(2), tuple(size), tilt)).max(axis=0) + 2
        limit = np.array(photo.shape[1::-1]) - half
        spot = np.clip(spot, half, np.maximum(limit, half))
        self._paste(photo, label, spot, tilt)

    @staticmethod
    def _paste(photo: np.ndarray, label: np.ndarray, spot: np.ndarray, tilt: float) -> None:
        """Paste the supersampled grey ``label`` centred at ``spot`` (photo px), turned by
        ``tilt`` degrees, averaging it down to photo pixels."""
        lh, lw = label.shape
        half = np.abs(_corners(np.zeros(2), (lw, lh), tilt)).max(axis=0) / SUPERSAMPLE + 2
        x0, y0 = np.maximum(np.floor(spot - half).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(spot + half).astype(int), photo.shape[1::-1])
        if x1 <= x0 or y1 <= y0:
            return
        rot = _rotation(tilt)
        target = (spot - (x0, y0)) * SUPERSAMPLE
        matrix = np.column_stack([rot, target - rot @ (lw / 2, lh / 2)]).astype(np.float32)
        fine = ((x1 - x0) * SUPERSAMPLE, (y1 - y0) * SUPERSAMPLE)
        ink = cv2.warpAffine(label, matrix, fine, flags=cv2.INTER_LINEAR)
        cover = cv2.warpAffine(np.full_like(label, 255), matrix, fine, flags=cv2.INTER_LINEAR)
        ink, cover = (cv2.resize(a, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
                      .astype(np.float32)[:, :, None] / 255 for a in (ink, cover))
        patch = photo[y0:y1, x0:x1].astype(np.float32)
        photo[y0:y1, x0:x1] = (patch * (1 - cover) + PAPER_BGR * ink).astype(np.uint8)

    def _optics(self, photo: np.ndarray, rng) -> np.ndarray:
        """Uneven light, slight defocus, sensor noise and JPEG compression."""
        cfg = self.config
        h, w = photo.shape[:2]
        coarse = rng.uniform(0.8, 1.1) + rng.normal(0, 0.06, (3, 4)).astype(np.float32)
        light = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        sigma = rng.uniform(cfg.blur_px / 3, cfg.blur_px)
        if sigma > 0.05:
            photo = cv2.GaussianBlur(photo, (0, 0), sigma)
        dy, dx = rng.integers(0, 64, 2)
        out = np.empty_like(photo)
        for y in range(0, h, OPTICS_BAND):   # in bands: full-HD float32 copies weigh 25 MB each
            band = slice(y, min(y + OPTICS_BAND, h))
            img = photo[band].astype(np.float32)
            img *= light[band, :, None]
            noise = self._noise[dy + band.start:dy + band.stop, dx:dx + w].astype(np.float32)
            img += noise * np.float32(cfg.noise / 16)
            np.clip(img, 0, 255, out=img)
            out[band] = img
        quality = int(rng.integers(min(cfg.jpeg_quality, 95), 96))
        ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
