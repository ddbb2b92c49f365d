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
            counts_per_photon = self.air_counts / self.photons[ch] * self.gain[ch]
            if source_on:
                photons = self.photons[ch] * np.exp(-att, dtype=np.float32)
                mean = photons * counts_per_photon
                # Photon (Poisson, in its Gaussian limit: exact enough above a few photons, and
                # below that read noise dominates) and read noise, drawn as one Gaussian.
                sd = np.sqrt(photons * counts_per_photon ** 2 + self.read_noise ** 2)
            else:
                mean = np.zeros(att.shape, np.float32)
                sd = np.full(att.shape, self.read_noise, np.float32)
            signal = mean + self.dark[ch] + sd * rng.standard_normal(att.shape, dtype=np.float32)
            signal[:, self.dead] = self.dark[ch, self.dead]
            out.append(np.clip(np.rint(signal), 0, 65535).astype(np.uint16))
        return out[0], out[1]
