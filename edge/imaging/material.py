"""Dual-energy material classes from the ratio of low- to high-energy log-attenuation.

For one material, ``att = mu(E) * rho * thickness`` in both channels, so the ratio
``R = att_lo / att_hi = mu(E_lo) / mu(E_hi)`` cancels thickness and density and depends on the
effective atomic number only: photoelectric absorption (~Z^4 / E^3) dominates the low channel.
At 50 / 80 keV effective energies: polyethylene 1.14, water 1.24, aluminium 1.82, steel 3.28,
copper 3.42. Shapes: attenuation maps float32 ``[H, W]`` (any 2D layout), classes uint8 ``[H, W]``.
"""

from __future__ import annotations

import cv2
import numpy as np

BACKGROUND, ORGANIC, INORGANIC, METAL = 0, 1, 2, 3
NAMES = ("background", "organic", "inorganic", "metal")
# Boundaries of R between organic | inorganic | metal for the simulator's default energies
# (50 / 80 keV effective): geometric means of R of water and aluminium (1.24, 1.82 -> 1.50) and
# of aluminium and steel (1.82, 3.28 -> 2.45), from the NIST SRD 126 tables in
# edge/imaging/data/materials.json; edge.imaging.attenuation.ratio_boundaries(50, 80) computes them
# for any pair of energies. Another scanner stores its own in FlatField.ratio_boundaries.
DEFAULT_BOUNDARIES = (1.50, 2.45)
# Below this high-energy attenuation (about 2.7 mm of water) R is mostly noise: background.
MIN_ATT = 0.05
# Photon starvation: once att_lo exceeds LOW_STARVED (about 3 of 8,000 low-energy photons left),
# read noise and the clip at correct.ATT_MAX decide the measured att_lo, so R is not computable
# (the reading saturates near 9-12, which would make 10 mm of steel look like aluminium). Such
# pixels are METAL: in a parcel only metal starves the low channel while the high one still sees
# through (steel from ~5 mm; aluminium would need ~8 cm solid, water ~35 cm, by which depth the
# pixel renders near black anyway), and calling an unreadable dense pixel metal is the safe
# side for inspection. Pixels below that keep the class of their measured R.
LOW_STARVED = 8.0
SMOOTH = 3  # box filter (pixels) before the ratio: R of single noisy pixels would speckle


def smoothed(att: np.ndarray, size: int = SMOOTH) -> np.ndarray:
    """Box-filtered float32 copy of a 2D attenuation map (``size`` <= 1: unfiltered copy)."""
    att = np.asarray(att, np.float32)
    return cv2.blur(att, (size, size)) if size > 1 else att.copy()


def ratio(att_hi: np.ndarray, att_lo: np.ndarray, min_att: float = MIN_ATT) -> np.ndarray:
    """R = att_lo / att_hi per pixel (float32), NaN where att_hi < ``min_att``."""
    hi = np.asarray(att_hi, np.float32)
    r = np.asarray(att_lo, np.float32) / np.maximum(hi, np.float32(max(min_att, 1e-6)))
    r[hi < min_att] = np.nan
    return r


def effective_ratio(att_hi: np.ndarray, att_lo: np.ndarray, min_att: float = MIN_ATT,
                    starved: float = LOW_STARVED) -> np.ndarray:
    """R per pixel (float32): NaN on background, +inf where the low channel is starved."""
    r = ratio(att_hi, att_lo, min_att)
    r[np.asarray(att_lo) >= starved] = np.inf
    return r


def check_pair(att_hi: np.ndarray, att_lo: np.ndarray) -> None:
    if np.shape(att_hi) != np.shape(att_lo) or np.ndim(att_hi) != 2:
        raise ValueError(f"att_hi and att_lo must be 2D of one shape, got shapes "
                         f"{np.shape(att_hi)} and {np.shape(att_lo)}")


def check_boundaries(boundaries: tuple[float, float]) -> tuple[float, float]:
    r1, r2 = (float(b) for b in boundaries)
    if not 0 < r1 < r2:
        raise ValueError(f"boundaries must be (r1, r2) with 0 < r1 < r2, got {boundaries}")
    return r1, r2


def classify(att_hi: np.ndarray, att_lo: np.ndarray,
             boundaries: tuple[float, float] = DEFAULT_BOUNDARIES,
             min_att: float = MIN_ATT, smooth: int = SMOOTH,
             starved: float = LOW_STARVED) -> np.ndarray:
    """Material class per pixel, uint8 ``[H, W]``: 0 background (att_hi < ``min_att``, too
    little attenuation to judge), 1 organic (R < r1), 2 inorganic (r1 <= R < r2), 3 metal
    (R >= r2, or att_lo >= ``starved``: see LOW_STARVED). Both maps are box-filtered over
    ``smooth`` pixels first."""
    check_pair(att_hi, att_lo)
    r1, r2 = check_boundaries(boundaries)
    r = effective_ratio(smoothed(att_hi, smooth), smoothed(att_lo, smooth), min_att, starved)
    classes = np.full(r.shape, INORGANIC, np.uint8)
    classes[r < r1] = ORGANIC
    classes[r >= r2] = METAL
    classes[np.isnan(r)] = BACKGROUND
    return classes
