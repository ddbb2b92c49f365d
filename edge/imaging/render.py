"""The images operators and the model see: dual-energy pseudo-colour and single-energy grey.

Input: log-attenuation maps float32 ``[H, W]`` (parcel layout). Output: BGR uint8 ``[H, W, 3]``
(colour) or uint8 / uint16 ``[H, W]`` (grey).

Pseudo-colour follows the industry convention: white background, organic orange, inorganic
green, metal blue, darker = denser. Brightness is ``exp(-DARKNESS * att_hi)``, a display gamma
of 0.45 on the high-energy transmission ``exp(-att_hi)``. Hue follows R = att_lo / att_hi
(3 x 3 smoothed) and blends across the class borders as scanners do; colour saturation fades to
zero towards air (also from the smoothed map), so noise on the empty belt or a thin cardboard
face makes no coloured speckle. A pixel whose low channel is photon-starved is blue (see
``material.LOW_STARVED``). Hue and saturation are one table lookup per pixel (cv2.remap); a
768 x 1200 parcel renders in about 7 ms (colour) and 1 ms (grey) on one desktop core.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from edge.imaging.material import DEFAULT_BOUNDARIES, LOW_STARVED, check_boundaries, check_pair

# Anchor colours, BGR.
ORANGE = (40, 150, 255)
GREEN = (50, 185, 60)
BLUE = (230, 105, 25)
WHITE = (255, 255, 255)
# Half-widths of the hue blends in R around r1 and r2 (the metal band is wider in R).
BLEND = (0.12, 0.3)
DARKNESS = 0.45  # 100 mm of water ~ 44 % bright, 3 mm of steel ~ 53 %, 10 mm of steel ~ 12 %
# Colour fades in from COLOUR_FLOOR (4 sigma of single-pixel air noise at 20,000 photons, over
# 10 after the 3 x 3 smoothing) and reaches full strength at SATURATION_ATT (14 mm of water).
COLOUR_FLOOR, SATURATION_ATT = 0.03, 0.25
# Lookup grid: R over R_RANGE in steps of 0.01, att_hi over [0, A_MAX] in A_BINS steps.
R_RANGE = (0.8, 4.8)
R_BINS, A_BINS = 401, 512
A_MAX = 12.0
STRIP = 16384  # widest image rendered in one cv2.remap call
R_FLOOR = 0.02  # att_hi floor in the ratio: near air R is noise, and colourless there anyway


def hue(r: np.ndarray, boundaries: tuple[float, float]) -> np.ndarray:
    """BGR float32 ``[..., 3]`` anchor colour for ratios ``r``: orange below r1, green between,
    blue above r2, linear blends of half-width BLEND around each border."""
    r1, r2 = boundaries
    knots = [r1 - BLEND[0], r1 + BLEND[0], r2 - BLEND[1], r2 + BLEND[1]]
    colours = np.array([ORANGE, GREEN, GREEN, BLUE], np.float32)
    return np.stack([np.interp(r, knots, colours[:, c]) for c in range(3)], -1).astype(np.float32)


def saturation(att_hi: np.ndarray) -> np.ndarray:
    """Colour strength in [0, 1]: zero up to COLOUR_FLOOR, so noise around air stays white,
    then a smoothstep up to SATURATION_ATT."""
    x = (np.asarray(att_hi, np.float32) - COLOUR_FLOOR) / (SATURATION_ATT - COLOUR_FLOOR)
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


@cache
def tint_table(boundaries: tuple[float, float] = DEFAULT_BOUNDARIES) -> np.ndarray:
    """BGR uint8 ``[R_BINS, A_BINS, 3]`` at full brightness: row = R over R_RANGE, column =
    smoothed att_hi on a square-root scale over [0, A_MAX] (fine steps near air, where the
    saturation ramps)."""
    r = np.linspace(*R_RANGE, R_BINS, dtype=np.float32)[:, None]
    att = np.linspace(0, 1, A_BINS, dtype=np.float32)[None, :] ** 2 * A_MAX
    # The low channel starves where R * att_hi >= LOW_STARVED: R is unreadable, call it metal.
    r_eff = np.where(r * att >= LOW_STARVED, np.float32(np.inf), r)
    s = saturation(att)[..., None]
    tint = np.asarray(WHITE, np.float32) * (1 - s) + hue(r_eff, boundaries) * s
    return np.clip(np.rint(tint), 0, 255).astype(np.uint8)


def _table_coords(hi_s: np.ndarray, lo_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column, row) float32 ``[H, W]`` of each pixel in the tint table, from the smoothed
    maps (overwritten: fresh large arrays cost page faults); both bounded well inside int
    range, since remap rounds them to int and then replicates the table's edge."""
    col = np.clip(hi_s, 0, A_MAX)
    col *= np.float32(1 / A_MAX)
    cv2.sqrt(col, col)
    col *= np.float32(A_BINS - 1)
    row = np.divide(lo_s, np.maximum(hi_s, np.float32(R_FLOOR), out=hi_s), out=lo_s)
    row -= np.float32(R_RANGE[0])
    row *= np.float32((R_BINS - 1) / (R_RANGE[1] - R_RANGE[0]))
    np.clip(row, -1, R_BINS, out=row)
    return col, row


def render_colour(att_hi: np.ndarray, att_lo: np.ndarray,
                  boundaries: tuple[float, float] = DEFAULT_BOUNDARIES) -> np.ndarray:
    """BGR uint8 ``[H, W, 3]`` pseudo-colour of a parcel's log-attenuation maps ``[H, W]``."""
    check_pair(att_hi, att_lo)
    table = tint_table(check_boundaries(boundaries))
    hi, lo = np.asarray(att_hi, np.float32), np.asarray(att_lo, np.float32)
    if hi.shape[1] <= STRIP:
        return _colour(table, hi, lo)
    # remap takes images under 32767 px a side: a long strip goes in pieces.
    return np.concatenate([_colour(table, hi[:, i:i + STRIP], lo[:, i:i + STRIP])
                           for i in range(0, hi.shape[1], STRIP)], axis=1)


def _colour(table: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Hue and saturation from the 3 x 3 smoothed maps (R of single pixels is noise, and a
    pale tint must not flicker with it), brightness from the sharp att_hi (fine wires)."""
    if hi.size == 0:
        return np.zeros((*hi.shape, 3), np.uint8)
    col, row = _table_coords(cv2.blur(hi, (3, 3)), cv2.blur(lo, (3, 3)))
    # Nearest-neighbour remap is a 2D table lookup.
    tint = cv2.remap(table, col, row, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return cv2.multiply(tint, cv2.cvtColor(_brightness(hi, 8), cv2.COLOR_GRAY2BGR),
                        scale=1 / 255)


def _brightness(att: np.ndarray, bits: int) -> np.ndarray:
    """``exp(-DARKNESS * att)`` at full scale of ``bits`` (8: uint8, 16: uint16); negative
    attenuation (air noise) counts as 0: air is white, never brighter."""
    grey = np.maximum(att, np.float32(0))
    grey *= np.float32(-DARKNESS)
    cv2.exp(grey, grey)
    grey *= np.float32((1 << bits) - 1)
    if bits == 8:
        return cv2.convertScaleAbs(grey)  # rounds and saturates to uint8
    return np.rint(grey, out=grey).astype(np.uint16)


def render_grey(att_hi: np.ndarray, bits: int = 8) -> np.ndarray:
    """Single-energy grey ``[H, W]``: white air, darker = denser, ``exp(-DARKNESS * att_hi)``
    scaled to full range; uint8 for ``bits=8``, uint16 for ``bits=16``."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    att = np.asarray(att_hi, np.float32)
    if att.ndim != 2:
        raise ValueError(f"att_hi must be 2D [H, W], got shape {att.shape}")
    if att.size == 0:
        return np.zeros(att.shape, np.uint8 if bits == 8 else np.uint16)
    return _brightness(att, bits)
