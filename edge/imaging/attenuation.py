"""Materials the simulator knows, and their X-ray attenuation at any effective energy.

The table (``data/materials.json``) holds mass attenuation coefficients mu/rho (cm^2/g) from the
NIST tables of Hubbell & Seltzer (SRD 126), built by ``scripts/make_material_table.py``.
Between tabulated energies we interpolate log-log, the usual practice for these tables away from
absorption edges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

GROUPS = ("organic", "inorganic", "metal")


@dataclass(frozen=True)
class Material:
    name: str
    group: str
    density: float  # g/cm^3
    energies_kev: np.ndarray
    mass_attenuation: np.ndarray  # cm^2/g at energies_kev

    def mu_per_mm(self, kev: float) -> float:
        """Linear attenuation coefficient at ``kev``, 1/mm."""
        log_mu = np.interp(np.log(kev), np.log(self.energies_kev), np.log(self.mass_attenuation))
        return float(np.exp(log_mu) * self.density / 10.0)


@cache
def table() -> dict[str, Material]:
    raw = json.loads(resources.files("edge.imaging").joinpath("data/materials.json").read_text())
    energies = np.asarray(raw["energies_kev"], dtype=np.float64)
    return {
        name: Material(name, m["group"], m["density"], energies,
                       np.asarray(m["mass_attenuation"], dtype=np.float64))
        for name, m in raw["materials"].items()
    }


def material(name: str) -> Material:
    materials = table()
    if name not in materials:
        raise KeyError(f"unknown material {name!r}; known: {', '.join(sorted(materials))}")
    return materials[name]


@cache
def mu_pair(name: str, low_kev: float, high_kev: float) -> tuple[float, float]:
    """(mu_low, mu_high) in 1/mm for one material at a scanner's two effective energies."""
    m = material(name)
    return m.mu_per_mm(low_kev), m.mu_per_mm(high_kev)


def ratio(name: str, low_kev: float, high_kev: float) -> float:
    """R = mu_low / mu_high, the quantity dual-energy scanners classify materials by."""
    lo, hi = mu_pair(name, low_kev, high_kev)
    return lo / hi


def ratio_boundaries(low_kev: float, high_kev: float) -> tuple[float, float]:
    """Boundaries of R between organic | inorganic | metal at these energies.

    Geometric means between the heaviest organic (water), aluminium and the lightest common
    metal (steel): the same reference materials scanner vendors calibrate with.
    """
    water, alu, steel = (ratio(n, low_kev, high_kev) for n in ("water", "aluminium", "steel"))
    return float(np.sqrt(water * alu)), float(np.sqrt(alu * steel))
