"""Dual-energy material classes from the ratio of low- to high-energy log-attenuation.

R = att_lo / att_hi depends on the effective atomic number, not on thickness: about 1.2-1.3 for
organics and water, 1.8 for aluminium and glass, 3.3 and up for steel and copper at 50 / 80 keV.
"""

from __future__ import annotations

import cv2
import numpy as np

BACKGROUND, ORGANIC, INORGANIC, METAL = 0, 1, 2, 3
NAMES = ("background", "organic", "inorganic", "metal")
# Geometric means of R between water | aluminium | steel at 50 / 80 keV effective energies,
# from the NIST tables (edge.scanner.materials.ratio_boundaries(50, 80)).
DEFAULT_BOUNDARIES = (1.50, 2.45)
# Below this high-energy attenuation (about 5 mm of water) R is mostly noise.
MIN_ATT = 0.1
# Above this low-energy attenuation the low channel has only a handful of photons left, so the
# measured R is a lower bound.
LOW_STARVED = 7.0


def smoothed(att: np.ndarray, size: int = 3) -> np.ndarray:
    """Box-filtered attenuation: R of single noisy pixels would speckle."""
    return cv2.blur(np.asarray(att, np.float32), (size, size))


def ratio(att_hi: np.ndarray, att_lo: np.ndarray, min_att: float = MIN_ATT) -> np.ndarray:
    """R per pixel (float32), NaN where there is too little attenuation to tell."""
    hi = np.asarray(att_hi, np.float32)
    safe = np.where(hi >= min_att, hi, np.float32(1.0))
    r = np.asarray(att_lo, np.float32) / safe
    r[hi < min_att] = np.nan
    return r


def classify(att_hi: np.ndarray, att_lo: np.ndarray,
             boundaries: tuple[float, float] = DEFAULT_BOUNDARIES,
             min_att: float = MIN_ATT, smooth: bool = True) -> np.ndarray:
    """Material class per pixel, uint8 [H, W]: 0 background, 1 organic, 2 inorganic, 3 metal.

    Photon-starved pixels keep the class of their measured R unless even the lower bound
    ``LOW_STARVED / att_hi`` already says metal."""
    if np.shape(att_hi) != np.shape(att_lo):
        raise ValueError(f"att_hi and att_lo differ in shape: {np.shape(att_hi)} vs "
                         f"{np.shape(att_lo)}")
    hi, lo = (smoothed(att_hi), smoothed(att_lo)) if smooth else (att_hi, att_lo)
    r1, r2 = boundaries
    r = ratio(hi, lo, min_att)
    starved = lo >= LOW_STARVED
    r = np.where(starved, np.fmax(r, LOW_STARVED / np.maximum(hi, 1e-3)), r)
    classes = np.full(r.shape, INORGANIC, np.uint8)
    classes[r < r1] = ORGANIC
    classes[r >= r2] = METAL
    classes[np.isnan(r)] = BACKGROUND
    return classes
