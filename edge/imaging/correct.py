"""Dark / flat-field correction and dead pixels: raw detector counts -> log-attenuation.

    att = -ln((raw - dark) / (air - dark))

per pixel and channel, with ``dark`` measured with the source off and ``air`` on the empty belt.
Dead pixels (no response, far too little or too much gain, or abnormal noise) are filled from
their nearest live neighbours along the detector column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
# Allowed range of log-attenuation: slightly negative keeps air noise unbiased (clipping at 0
# would rectify it); above ~12 a channel has no photons left to measure.
ATT_MIN, ATT_MAX = -1.0, 12.0


@dataclass(frozen=True)
class FlatField:
    """Per-pixel correction tables, float32 [n_pixels] each, and the dead-pixel mask."""

    dark_hi: np.ndarray
    dark_lo: np.ndarray
    air_hi: np.ndarray
    air_lo: np.ndarray
    dead: np.ndarray

    @property
    def n_pixels(self) -> int:
        return self.dark_hi.shape[0]

    @classmethod
    def from_lines(cls, dark_hi, dark_lo, air_hi, air_lo) -> FlatField:
        """Tables from raw uint16 line stacks [rows, n_pixels]: dark (source off) and air."""
        stacks = [np.asarray(a, dtype=np.float64) for a in (dark_hi, dark_lo, air_hi, air_lo)]
        shapes = {a.shape[1] if a.ndim == 2 else None for a in stacks}
        if len(shapes) != 1 or None in shapes:
            raise ValueError(f"calibration stacks must be 2D with one pixel count, got shapes "
                             f"{[a.shape for a in stacks]}")
        means = [a.mean(axis=0) for a in stacks]
        dead = np.zeros(stacks[0].shape[1], bool)
        for dark, air in ((stacks[0], stacks[2]), (stacks[1], stacks[3])):
            dead |= dead_pixels(dark.mean(0), air.mean(0), air.std(0))
        return cls(*(m.astype(np.float32) for m in means), dead)

    def save(self, path: Path | str) -> None:
        np.savez_compressed(path, version=FORMAT_VERSION, dark_hi=self.dark_hi,
                            dark_lo=self.dark_lo, air_hi=self.air_hi, air_lo=self.air_lo,
                            dead=self.dead)

    @classmethod
    def load(cls, path: Path | str) -> FlatField:
        try:
            with np.load(path) as data:
                version = int(data["version"])
                if version != FORMAT_VERSION:
                    raise ValueError(f"format version {version}, expected {FORMAT_VERSION}")
                tables = [data[k].astype(np.float32) for k in
                          ("dark_hi", "dark_lo", "air_hi", "air_lo")]
                dead = data["dead"].astype(bool)
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"flat-field file {path} is unusable: {exc}") from None
        if len({t.shape for t in [*tables, dead]}) != 1:
            raise ValueError(f"flat-field file {path} has tables of different lengths")
        return cls(*tables, dead)


def dead_pixels(dark: np.ndarray, air: np.ndarray, air_noise: np.ndarray) -> np.ndarray:
    """Pixels whose gain is far from the median or whose noise is abnormal (bool [n])."""
    gain = air - dark
    median_gain = np.median(gain)
    median_noise = np.median(air_noise)
    return ((gain < 0.3 * median_gain) | (gain > 3 * median_gain)
            | (air_noise > 5 * median_noise) | (air_noise < 0.05 * median_noise))


def _fill_plan(dead: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each dead pixel: its nearest live neighbours on each side and the blend weight."""
    idx = np.arange(dead.shape[0])
    alive = idx[~dead]
    holes = idx[dead]
    if len(alive) == 0:
        raise ValueError("every detector pixel is dead: recalibrate the scanner")
    right = np.searchsorted(alive, holes).clip(0, len(alive) - 1)
    left = (right - 1).clip(0, len(alive) - 1)
    lo, hi = alive[left], alive[right]
    # Holes beyond the first / last live pixel copy it.
    span = np.where(hi != lo, hi - lo, 1)
    weight = np.clip((holes - lo) / span, 0, 1).astype(np.float32)
    return holes, lo, hi, weight


def correct(hi_raw: np.ndarray, lo_raw: np.ndarray, flat: FlatField
            ) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint16 [rows, n_pixels] (high, low) -> float32 log-attenuation (high, low)."""
    if hi_raw.shape != lo_raw.shape:
        raise ValueError(f"high and low channels differ in shape: {hi_raw.shape} vs "
                         f"{lo_raw.shape}")
    if hi_raw.ndim != 2 or hi_raw.shape[1] != flat.n_pixels:
        raise ValueError(f"raw lines of shape {hi_raw.shape} do not fit a flat field of "
                         f"{flat.n_pixels} pixels")
    holes, left, right, weight = _fill_plan(flat.dead)
    out = []
    for raw, dark, air in ((hi_raw, flat.dark_hi, flat.air_hi),
                           (lo_raw, flat.dark_lo, flat.air_lo)):
        gain = np.maximum(air - dark, 1.0)
        trans = (raw.astype(np.float32) - dark) / gain
        att = -np.log(np.maximum(trans, np.exp(-ATT_MAX, dtype=np.float32)))
        np.clip(att, ATT_MIN, ATT_MAX, out=att)
        if len(holes):
            att[:, holes] = att[:, left] * (1 - weight) + att[:, right] * weight
        out.append(att)
    return out[0], out[1]
