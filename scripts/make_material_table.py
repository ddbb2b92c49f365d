"""Build `edge/imaging/data/materials.json`: attenuation coefficients of the simulated materials.

Offline only (needs `pip install xraylib`). The values are the NIST tables of Hubbell & Seltzer
(NIST Standard Reference Database 126, NISTIR 5632) as interpolated by xraylib's `CS_Total`
(coherent + incoherent + photoelectric); compounds follow the mixture rule
mu/rho = sum_i w_i (mu/rho)_i. The runtime reads the JSON and never imports xraylib.

    python scripts/make_material_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

import xraylib

ENERGIES_KEV = list(range(20, 161, 5))

# name: (group, density g/cm3, composition as a chemical formula or {element: mass fraction}, note)
MATERIALS: dict[str, tuple[str, float, str | dict[str, float], str]] = {
    "paper": ("organic", 0.80, "C6H10O5", "cellulose"),
    "cardboard": ("organic", 0.70, "C6H10O5", "cellulose, solid-wall equivalent"),
    "cloth": ("organic", 1.40, {"C": 0.50, "H": 0.05, "O": 0.45},
              "cotton / polyester mix; bulk folds handled by thickness"),
    "wood": ("organic", 0.60, "C6H10O5", "cellulose"),
    "polyethylene": ("organic", 0.94, "C2H4", "bottles, bags"),
    "abs": ("organic", 1.05, "C15H17N", "ABS, electronics housings, toys"),
    "pvc": ("organic", 1.38, "C2H3Cl", "cable insulation"),
    "rubber": ("organic", 1.10, "C5H8", "shoe soles, grips"),
    "leather": ("organic", 0.86, {"C": 0.50, "H": 0.07, "N": 0.17, "O": 0.26}, "collagen"),
    "food": ("organic", 1.10, {"H": 0.10, "C": 0.15, "O": 0.74, "N": 0.01}, "water + sugars"),
    "water": ("organic", 1.00, "H2O", "scanners show water as organic"),
    "tnt": ("organic", 1.65, "C7H5N3O6", "trinitrotoluene"),
    "rdx": ("organic", 1.82, "C3H6N6O6", "cyclotrimethylenetrinitramine (C-4 base)"),
    "petn": ("organic", 1.77, "C5H8N4O12", "pentaerythritol tetranitrate"),
    "ammonium_nitrate": ("organic", 1.72, "NH4NO3", "ANFO oxidiser"),
    "smokeless_powder": ("organic", 1.60, "C6H7N3O11", "nitrocellulose propellant"),
    "fr4": ("inorganic", 1.85, {"Si": 0.25, "O": 0.35, "C": 0.28, "H": 0.03, "Ca": 0.05,
                                "Br": 0.04}, "PCB laminate: glass fibre + brominated epoxy"),
    "glass": ("inorganic", 2.50, {"Si": 0.34, "O": 0.46, "Na": 0.10, "Ca": 0.07, "Mg": 0.02,
                                  "Al": 0.01}, "soda-lime"),
    "aluminium": ("inorganic", 2.70, "Al", ""),
    "battery": ("inorganic", 2.60, {"Co": 0.20, "Li": 0.02, "O": 0.18, "C": 0.18, "Cu": 0.12,
                                    "Al": 0.08, "Fe": 0.14, "P": 0.01, "F": 0.04, "H": 0.03},
                "Li-ion cell averaged over can, foils and electrodes"),
    "steel": ("metal", 7.85, {"Fe": 0.99, "C": 0.01}, "carbon steel"),
    "stainless": ("metal", 8.00, {"Fe": 0.70, "Cr": 0.18, "Ni": 0.10, "Mn": 0.02}, "304"),
    "copper": ("metal", 8.96, "Cu", ""),
    "brass": ("metal", 8.50, {"Cu": 0.65, "Zn": 0.35}, "cartridge brass"),
    "zinc": ("metal", 7.14, "Zn", "die-cast parts"),
    "lead": ("metal", 11.35, "Pb", "bullets"),
}


def mass_attenuation(composition: str | dict[str, float], energy_kev: float) -> float:
    if isinstance(composition, str):
        return xraylib.CS_Total_CP(composition, energy_kev)
    total = sum(composition.values())
    return sum(w / total * xraylib.CS_Total(xraylib.SymbolToAtomicNumber(el), energy_kev)
               for el, w in composition.items())


def main() -> None:
    table = {
        "source": "NIST SRD 126 (Hubbell & Seltzer, NISTIR 5632) via xraylib "
                  f"{xraylib.__version__} CS_Total; mixture rule for compounds",
        "units": {"energy": "keV", "mass_attenuation": "cm^2/g", "density": "g/cm^3"},
        "energies_kev": ENERGIES_KEV,
        "materials": {
            name: {
                "group": group,
                "density": density,
                "note": note,
                "mass_attenuation": [round(mass_attenuation(comp, e), 5) for e in ENERGIES_KEV],
            }
            for name, (group, density, comp, note) in MATERIALS.items()
        },
    }
    out = Path(__file__).resolve().parents[1] / "edge" / "scanner" / "data" / "materials.json"
    out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {out} ({len(MATERIALS)} materials x {len(ENERGIES_KEV)} energies)")


if __name__ == "__main__":
    main()
