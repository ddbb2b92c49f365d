"""Dark / flat-field correction and dead pixels: raw detector counts -> log-attenuation.

Per detector pixel and channel::

    att = -ln((raw - dark) / (air - dark))

with ``dark`` the mean counts with the source off and ``air`` the mean counts through the empty
belt. Shapes: calibration tables float32 ``[n_pixels]``; raw lines uint16 ``[rows, n_pixels]``
(ADC counts); attenuation float32 ``[rows, n_pixels]`` (dimensionless, 0 = air).

Dead pixels (no response, gain far from the median, a saturated ADC in air, abnormal noise) are
filled by linear interpolation between their nearest live neighbours along the pixel axis.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT_VERSION = 2
# Attenuation is clipped to [ATT_MIN, ATT_MAX]. The floor is slightly negative, not 0: clipping
# air noise at 0 would rectify it and bias every mean over empty belt upwards (segmentation
# thresholds and calibration checks average air). -0.25 is over 20 sigma of air noise at 8,000
# photons per pixel, so only faulty readings reach it. Above 12 (a transmission of 6e-6) no
# channel has photons left to measure: readings there are read noise.
ATT_MIN, ATT_MAX = -0.25, 12.0
ADC_FULL_SCALE = 65535
# Dead-pixel rules, relative to the median pixel: gain (air - dark) outside [GAIN_LOW, GAIN_HIGH]
# times the median; relative noise in air (std / gain, which photon statistics make the same for
# every healthy pixel) outside [1 / NOISE_FACTOR, NOISE_FACTOR] times the median; dark noise
# above NOISE_FACTOR times the median. Noise rules need NOISE_MIN_ROWS lines to estimate a std.
GAIN_LOW, GAIN_HIGH, NOISE_FACTOR = 0.3, 3.0, 4.0
NOISE_MIN_ROWS = 16
TABLES = ("dark_hi", "dark_lo", "air_hi", "air_lo")


@dataclass(frozen=True)
class FlatField:
    """Per-pixel correction tables of one detector, float32 ``[n_pixels]`` each, the dead-pixel
    mask bool ``[n_pixels]``, and optionally the material ratio boundaries ``(r1, r2)`` measured
    on this scanner (None: use ``edge.imaging.material.DEFAULT_BOUNDARIES``)."""

    dark_hi: np.ndarray
    dark_lo: np.ndarray
    air_hi: np.ndarray
    air_lo: np.ndarray
    dead: np.ndarray
    ratio_boundaries: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in TABLES:
            object.__setattr__(self, name, np.asarray(getattr(self, name), np.float32))
        object.__setattr__(self, "dead", np.asarray(self.dead, bool))
        shapes = {name: getattr(self, name).shape for name in (*TABLES, "dead")}
        if len(set(shapes.values())) != 1 or self.dark_hi.ndim != 1:
            raise ValueError(f"flat-field tables must be 1D [n_pixels] of one length, got {shapes}")
        if self.ratio_boundaries is not None:
            r1, r2 = (float(r) for r in self.ratio_boundaries)
            if not 0 < r1 < r2:
                raise ValueError(f"ratio_boundaries must be (r1, r2) with 0 < r1 < r2, got "
                                 f"{self.ratio_boundaries}")
            object.__setattr__(self, "ratio_boundaries", (r1, r2))

    @property
    def n_pixels(self) -> int:
        return self.dark_hi.shape[0]

    @classmethod
    def from_lines(cls, dark_hi, dark_lo, air_hi, air_lo,
                   ratio_boundaries: tuple[float, float] | None = None) -> FlatField:
        """Tables from raw line stacks ``[rows, n_pixels]`` (uint16 counts): dark with the source
        off, air through the empty belt. Row counts may differ between stacks."""
        stacks = [np.asarray(a, np.float64) for a in (dark_hi, dark_lo, air_hi, air_lo)]
        shapes = [a.shape for a in stacks]
        if any(a.ndim != 2 or a.shape[0] == 0 for a in stacks) or len({s[1] for s in shapes}) != 1:
            raise ValueError(f"calibration stacks must be 2D [rows, n_pixels] with rows > 0 and "
                             f"one pixel count, got shapes {shapes}")
        means = [a.mean(axis=0) for a in stacks]
        dead = (dead_pixels(stacks[0], stacks[2]) | dead_pixels(stacks[1], stacks[3]))
        return cls(*means, dead=dead, ratio_boundaries=ratio_boundaries)

    def save(self, path: Path | str) -> None:
        """Write the tables to ``path`` (an .npz archive, whatever the name)."""
        bounds = np.asarray(self.ratio_boundaries or (), np.float64)
        tables = {name: getattr(self, name) for name in TABLES}
        with open(path, "wb") as f:  # a file object: numpy would append .npz to the name
            np.savez_compressed(f, version=FORMAT_VERSION, n_pixels=self.n_pixels,
                                dead=self.dead, ratio_boundaries=bounds, **tables)

    @classmethod
    def load(cls, path: Path | str) -> FlatField:
        """Tables written by ``save``; a wrong or corrupt file raises ValueError naming it."""
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive of flat-field tables")
            with data:
                fields = _read_fields(data)
        except FileNotFoundError:
            raise FileNotFoundError(f"flat-field file {path} does not exist") from None
        except (OSError, EOFError, KeyError, ValueError, TypeError, AttributeError,
                zipfile.BadZipFile) as exc:
            raise ValueError(f"flat-field file {path} is unusable: {exc}") from None
        return fields


def _read_fields(data: np.lib.npyio.NpzFile) -> FlatField:
    version = int(data["version"])
    if version != FORMAT_VERSION:
        raise ValueError(f"format version {version}, expected {FORMAT_VERSION} "
                         f"(recalibrate with `edge calibrate flatfield`)")
    n_pixels = int(data["n_pixels"])
    tables = [data[name] for name in TABLES]
    if any(t.shape != (n_pixels,) for t in [*tables, data["dead"]]):
        raise ValueError(f"tables do not all hold n_pixels = {n_pixels} values")
    bounds = data["ratio_boundaries"]
    return FlatField(*tables, dead=data["dead"],
                     ratio_boundaries=tuple(bounds.tolist()) if bounds.size == 2 else None)


def dead_pixels(dark: np.ndarray, air: np.ndarray) -> np.ndarray:
    """bool ``[n_pixels]``: pixels of one channel that cannot be corrected, judged from raw
    dark and air stacks ``[rows, n_pixels]`` against the median pixel."""
    gain = air.mean(axis=0) - dark.mean(axis=0)
    median_gain = np.median(gain)
    bad = (gain < GAIN_LOW * median_gain) | (gain > GAIN_HIGH * median_gain)
    # A saturated ADC reads "air" for small attenuations too.
    bad |= air.max(axis=0) >= ADC_FULL_SCALE
    if min(len(dark), len(air)) >= NOISE_MIN_ROWS:
        relative = air.std(axis=0) / np.maximum(gain, 1e-6)
        typical = np.median(relative)
        bad |= (relative > NOISE_FACTOR * typical) | (relative < typical / NOISE_FACTOR)
        dark_noise = dark.std(axis=0)
        # Floor at half a count: a quantised, almost noiseless dark reading has a median of 0.
        bad |= dark_noise > NOISE_FACTOR * max(np.median(dark_noise), 0.5)
    return bad


def fill_plan(dead: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each dead pixel: (index, left live neighbour, right live neighbour, weight of the
    right one). Dead pixels beyond the first / last live one copy it."""
    idx = np.arange(dead.shape[0])
    alive, holes = idx[~dead], idx[dead]
    if len(alive) == 0:
        raise ValueError(f"all {dead.shape[0]} detector pixels are dead: recalibrate the scanner")
    right = np.searchsorted(alive, holes).clip(0, len(alive) - 1)
    left = (right - 1).clip(0, len(alive) - 1)
    lo, hi = alive[left], alive[right]
    span = np.where(hi != lo, hi - lo, 1)
    weight = np.clip((holes - lo) / span, 0, 1).astype(np.float32)
    return holes, lo, hi, weight


def _log_attenuation(raw: np.ndarray, dark: np.ndarray, air: np.ndarray) -> np.ndarray:
    gain = np.maximum(air - dark, np.float32(1.0))  # dead pixels may have none; filled later
    trans = (raw.astype(np.float32) - dark) * (np.float32(1.0) / gain)
    # Counts at or below dark (noise, photon starvation) read as the largest attenuation.
    np.maximum(trans, np.float32(np.exp(-ATT_MAX)), out=trans)
    att = np.log(trans)
    np.negative(att, out=att)
    return np.clip(att, ATT_MIN, ATT_MAX, out=att)


def correct(hi_raw: np.ndarray, lo_raw: np.ndarray, flat: FlatField
            ) -> tuple[np.ndarray, np.ndarray]:
    """Raw counts ``[rows, n_pixels]`` (high, low channel) -> float32 log-attenuation (high, low)
    of the same shape, dead pixels filled from their neighbours."""
    hi_raw, lo_raw = np.asarray(hi_raw), np.asarray(lo_raw)
    if hi_raw.shape != lo_raw.shape:
        raise ValueError(f"high and low channels differ in shape: hi {hi_raw.shape} vs "
                         f"lo {lo_raw.shape}")
    if hi_raw.ndim != 2 or hi_raw.shape[1] != flat.n_pixels:
        raise ValueError(f"raw lines of shape {hi_raw.shape} do not fit a flat field of shape "
                         f"({flat.n_pixels},): expected [rows, {flat.n_pixels}]")
    holes, left, right, weight = fill_plan(flat.dead)
    out = []
    for raw, dark, air in ((hi_raw, flat.dark_hi, flat.air_hi),
                           (lo_raw, flat.dark_lo, flat.air_lo)):
        att = _log_attenuation(raw, dark, air)
        if len(holes):
            att[:, holes] = att[:, left] * (1 - weight) + att[:, right] * weight
        out.append(att)
    return out[0], out[1]
