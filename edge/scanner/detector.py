"""The detector column of a dual-energy line scanner: from ideal attenuation to raw ADC counts.

Per pixel and channel: counts = gain * (air_counts / photons) * Poisson(photons * exp(-att))
+ dark + read noise, quantised to uint16. Gains vary pixel to pixel and in steps between the
detector boards (64 pixels each, as on common line-scan arrays); a few pixels are dead (stuck
at their dark level). Flat-field correction (``edge.imaging.correct``) must undo all of that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.config import SimScannerConfig

BOARD_PIXELS = 64


@dataclass(frozen=True)
class DetectorModel:
    """Fixed response of one detector column (drawn once per scanner from its seed)."""

    gain: np.ndarray  # float32 [2, n_pixels], low channel first
    dark: np.ndarray  # float32 [2, n_pixels], ADC counts
    dead: np.ndarray  # int64 [k] pixel indices
    photons: np.ndarray  # float32 [2]: photons per pixel per line through air
    air_counts: float
    read_noise: float

    @classmethod
    def draw(cls, config: SimScannerConfig, rng: np.random.Generator) -> DetectorModel:
        n = config.n_pixels
        boards = -(-n // BOARD_PIXELS)
        board_gain = rng.normal(1.0, config.gain_spread / 2, (2, boards))
        gain = np.repeat(board_gain, BOARD_PIXELS, axis=1)[:, :n]
        gain *= rng.normal(1.0, config.gain_spread, (2, n))
        dark = rng.normal(config.dark_counts, config.dark_spread, (2, n))
        dead = rng.choice(n, size=min(config.dead_pixels, n), replace=False)
        return cls(np.clip(gain, 0.3, 2.0).astype(np.float32),
                   np.clip(dark, 0, None).astype(np.float32), np.sort(dead),
                   np.array([config.photons_low, config.photons_high], np.float32),
                   config.air_counts, config.electronic_noise)

    def expose(self, att_lo: np.ndarray, att_hi: np.ndarray, rng: np.random.Generator,
               source_on: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Raw counts (hi, lo) uint16 [rows, n_pixels] for log-attenuation maps of that shape."""
        out = []
        for ch, att in ((1, att_hi), (0, att_lo)):
            if source_on:
                mean_photons = self.photons[ch] * np.exp(-att, dtype=np.float32)
                # Gaussian limit of Poisson statistics: exact enough above a few photons, and
                # below that read noise dominates anyway.
                photons = mean_photons + np.sqrt(mean_photons) * rng.standard_normal(
                    att.shape, dtype=np.float32)
                signal = np.clip(photons, 0, None) * (self.air_counts / self.photons[ch])
                signal *= self.gain[ch]
            else:
                signal = np.zeros(att.shape, np.float32)
            signal += self.dark[ch] + self.read_noise * rng.standard_normal(att.shape,
                                                                             dtype=np.float32)
            signal[:, self.dead] = self.dark[ch, self.dead]
            out.append(np.clip(np.rint(signal), 0, 65535).astype(np.uint16))
        return out[0], out[1]
