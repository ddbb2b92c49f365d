"""Parcel labels: draw a parcel ID as a QR code, and read it back from a photo (pure, no I/O)."""

from __future__ import annotations

import cv2
import numpy as np

_DETECTOR = cv2.QRCodeDetector()


def draw_qr(text: str, module_px: int = 4) -> np.ndarray:
    """uint8 [S, S] QR code of ``text`` (black on white) with its quiet zone, ``module_px`` per
    module."""
    if not text:
        raise ValueError("a label needs a non-empty text")
    code = cv2.QRCodeEncoder.create().encode(text)  # one pixel per module, quiet zone included
    return cv2.resize(code, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)


def read_label(image: np.ndarray) -> str | None:
    """The text of the QR code in a BGR or grey photo, or None when none decodes."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    for candidate in (grey, cv2.equalizeHist(grey)):
        try:
            text, points, _ = _DETECTOR.detectAndDecode(candidate)
        except cv2.error:
            continue
        if text:
            return text
    return None
