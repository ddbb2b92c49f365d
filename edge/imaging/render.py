"""The images operators and the model see: dual-energy pseudo-colour and single-energy grey.

Pseudo-colour follows the industry convention: white background, organic orange, inorganic
green, metal blue, darker = denser. Hue moves smoothly with R = att_lo / att_hi across the class
borders (as scanners blend), and fades to white towards air so noise makes no coloured speckle.
Both renderings are a lookup per pixel: fast enough for every parcel in real time.
"""

from __future__ import annotations

import numpy as np

from edge.imaging.material import DEFAULT_BOUNDARIES, smoothed

# Anchor colours (BGR) of the three material groups.
ORANGE = np.array([20, 140, 255], np.float32)
GREEN = np.array([40, 190, 40], np.float32)
BLUE = np.array([235, 110, 20], np.float32)
WHITE = np.array([255, 255, 255], np.float32)
R_BINS, A_BINS = 128, 256
R_RANGE = (1.0, 4.5)
A_MAX = 8.0
DARKNESS = 0.45  # brightness = exp(-DARKNESS * att_hi): 100 mm water ~ 45 %, 10 mm steel ~ 12 %
SATURATION_ATT = 0.35  # colour reaches full strength at this attenuation


def _hue_table(boundaries: tuple[float, float]) -> np.ndarray:
    """BGR [R_BINS, 3]: orange below r1, green between, blue above r2, blended near borders."""
    r1, r2 = boundaries
    r = np.linspace(*R_RANGE, R_BINS)
    to_green = np.clip((r - (r1 - 0.15)) / 0.3, 0, 1)[:, None]
    to_blue = np.clip((r - (r2 - 0.3)) / 0.6, 0, 1)[:, None]
    return (ORANGE * (1 - to_green) + GREEN * to_green) * (1 - to_blue) + BLUE * to_blue


def colour_table(boundaries: tuple[float, float] = DEFAULT_BOUNDARIES) -> np.ndarray:
    """uint8 [R_BINS, A_BINS, 3] lookup indexed by (R bin, att_hi bin)."""
    att = np.linspace(0, A_MAX, A_BINS)
    saturation = np.clip(att / SATURATION_ATT, 0, 1)[None, :, None]
    hue = _hue_table(boundaries)[:, None, :]
    tint = WHITE * (1 - saturation) + hue * saturation
    brightness = np.exp(-DARKNESS * att)[None, :, None]
    return np.clip(tint * brightness, 0, 255).astype(np.uint8)


_TABLES: dict[tuple[float, float], np.ndarray] = {}


def _bins(values: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    scaled = (values - lo) * ((n - 1) / (hi - lo))
    return np.clip(scaled, 0, n - 1).astype(np.intp)


def render_colour(att_hi: np.ndarray, att_lo: np.ndarray,
                  boundaries: tuple[float, float] = DEFAULT_BOUNDARIES) -> np.ndarray:
    """BGR uint8 [H, W, 3] pseudo-colour of a parcel's log-attenuation maps [H, W]."""
    if np.shape(att_hi) != np.shape(att_lo) or np.ndim(att_hi) != 2:
        raise ValueError(f"att_hi and att_lo must be 2D of one shape, got {np.shape(att_hi)} "
                         f"and {np.shape(att_lo)}")
    key = (round(boundaries[0], 4), round(boundaries[1], 4))
    if key not in _TABLES:
        _TABLES[key] = colour_table(key)
    hi, lo = smoothed(att_hi), smoothed(att_lo)
    r = lo / np.maximum(hi, 0.02)
    # Near air R is noise; the table fades colour out there anyway.
    return _TABLES[key][_bins(r, *R_RANGE, R_BINS), _bins(att_hi, 0, A_MAX, A_BINS)]


def render_grey(att_hi: np.ndarray, bits: int = 8) -> np.ndarray:
    """Single-energy grey [H, W]: white air, darker = denser (uint8, or uint16 with bits=16)."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    full = 255 if bits == 8 else 65535
    grey = np.exp(-DARKNESS * np.clip(np.asarray(att_hi, np.float32), 0, None)) * full
    return np.rint(grey).astype(np.uint8 if bits == 8 else np.uint16)
