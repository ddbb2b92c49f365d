"""The top camera: a photo of each parcel's top, carrying its label.

``SimCamera`` draws a plausible photo (dark belt, cardboard box or fabric bag, a white label with
the parcel ID as a QR code and in print) at a random pose and lighting, deterministic for a seed
and parcel ID. ``CaptureCamera`` reads real frames through ``cv2.VideoCapture`` (device index,
stream URL or video file).
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from edge.config import CaptureCameraConfig, SimCameraConfig
from edge.imaging.barcode import draw_qr
from edge.types import Photo

LABEL_MM = (100.0, 110.0)  # shipping label, mm
QR_MM = 50.0  # the code's modules; the quiet zone comes on top


class CameraError(RuntimeError):
    """A camera that cannot be opened or read; the message names the source."""


def _label(parcel_id: str, px_per_mm: float) -> np.ndarray:
    """BGR label image: QR code above the ID in print."""
    w, h = (int(round(v * px_per_mm)) for v in LABEL_MM)
    label = np.full((h, w, 3), 250, np.uint8)
    qr = draw_qr(parcel_id, module_px=8)
    modules = qr.shape[0] // 8 - 8  # cv2's encoder adds a 4-module quiet zone each side
    side = min(int(QR_MM * px_per_mm * qr.shape[0] / 8 / modules), w, h)
    qr = cv2.resize(qr, (side, side), interpolation=cv2.INTER_AREA)
    x0, y0 = (w - side) // 2, 0
    label[y0:y0 + side, x0:x0 + side] = qr[:, :, None]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = 0.85 * w / cv2.getTextSize(parcel_id, font, 1.0, 1)[0][0]
    cv2.putText(label, parcel_id, (int(0.07 * w), h - int(6 * px_per_mm)), font, scale,
                (20, 20, 20), max(1, int(scale * 1.5)), cv2.LINE_AA)
    return label


def _paste(photo: np.ndarray, patch: np.ndarray, center, angle_deg: float) -> None:
    """Paste ``patch`` rotated by ``angle_deg`` with its centre at ``center`` (in place)."""
    h, w = patch.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    m[:, 2] += np.asarray(center) - (w / 2, h / 2)
    cv2.warpAffine(patch, m, (photo.shape[1], photo.shape[0]), dst=photo,
                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)


def _rotated_rect(center, size, angle_deg: float) -> np.ndarray:
    return cv2.boxPoints((tuple(center), tuple(size), angle_deg)).astype(np.int32)


class SimCamera:
    """Simulated top camera (see module docstring)."""

    def __init__(self, config: SimCameraConfig, seed: int = 0):
        self.config = config
        self.seed = seed

    def photograph(self, parcel_id: str, size_mm, kind: str, t: float, encoder: int) -> Photo:
        rng = np.random.default_rng([self.seed, zlib.crc32(parcel_id.encode())])
        width, height = self.config.width, self.config.height
        length, across = float(size_mm[0]), float(size_mm[1])
        px_per_mm = width / self.config.field_mm
        photo = np.full((height, width, 3), 55, np.uint8)
        centre = np.array([width / 2 + rng.normal(0, 15), height / 2 + rng.normal(0, 10)])
        angle = float(rng.normal(0, 6))
        body = (length * px_per_mm, across * px_per_mm)
        if kind == "box":
            colour = (np.array([70, 125, 175]) + rng.normal(0, 12, 3)).clip(0, 255)
            cv2.fillPoly(photo, [_rotated_rect(centre, body, angle)], colour.tolist(),
                         cv2.LINE_AA)
            tape = (body[0], 48 * px_per_mm)  # 48 mm packing tape along the flaps' seam
            cv2.fillPoly(photo, [_rotated_rect(centre, tape, angle)],
                         (colour * 1.15).clip(0, 255).tolist(), cv2.LINE_AA)
        else:
            colour = rng.uniform(25, 110, 3)
            cv2.ellipse(photo, (tuple(centre), body, angle), colour.tolist(), -1, cv2.LINE_AA)
        label = _label(parcel_id, px_per_mm)
        spot = centre + rng.uniform(-0.25, 0.25, 2) * body
        _paste(photo, label, spot, angle + float(rng.normal(0, 12)))
        return Photo(self._optics(photo, rng), t, encoder)

    @staticmethod
    def _optics(photo: np.ndarray, rng) -> np.ndarray:
        """Uneven light, slight defocus, sensor noise and JPEG compression."""
        h, w = photo.shape[:2]
        gx = np.linspace(-1, 1, w)[None, :] * rng.uniform(-0.2, 0.2)
        gy = np.linspace(-1, 1, h)[:, None] * rng.uniform(-0.2, 0.2)
        light = (rng.uniform(0.8, 1.15) + gx + gy)[:, :, None]
        img = cv2.GaussianBlur(photo.astype(np.float32) * light.astype(np.float32), (0, 0),
                               rng.uniform(0.3, 0.9))
        img += rng.standard_normal(img.shape, dtype=np.float32) * 4  # sensor noise, belt grain
        ok, jpeg = cv2.imencode(".jpg", img.clip(0, 255).astype(np.uint8),
                                [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 95))])
        return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


class CaptureCamera:
    """A real camera through cv2.VideoCapture."""

    def __init__(self, config: CaptureCameraConfig):
        self.source = config.source
        self._cap = cv2.VideoCapture(config.source)
        if not self._cap.isOpened():
            raise CameraError(f"cannot open camera source {config.source!r}")

    def grab(self, t: float, encoder: int) -> Photo:
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraError(f"camera source {self.source!r} gave no frame")
        return Photo(frame, t, encoder)

    def photograph(self, parcel_id: str, size_mm, kind: str, t: float, encoder: int) -> Photo:
        """A real camera knows nothing of the parcel: it just takes the frame."""
        return self.grab(t, encoder)

    def close(self) -> None:
        self._cap.release()


def open_camera(config: SimCameraConfig | CaptureCameraConfig, seed: int = 0):
    if config.type == "sim":
        return SimCamera(config, seed)
    return CaptureCamera(config)
