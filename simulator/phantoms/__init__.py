"""The object library: parametric families of threats and benign clutter, in millimetres.

A family builds an ``Item`` from a random generator and the column grid spacing the simulator
asks for. Families can be held out by name (``exclude``) to measure how well a model
generalises to shapes it never saw.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np

from simulator.phantoms import (
    ammo,
    batons,
    blades,
    electronics,
    explosives,
    gun_parts,
    guns,
    household,
    knives,
    personal,
    tools,
)
from simulator.solids import Item

THREAT_CLASSES = ("gun", "gun_part", "ammunition", "knife", "blade", "shuriken", "baton",
                  "explosive")


@dataclass(frozen=True)
class Family:
    name: str
    label: str | None
    build: Callable[[np.random.Generator, float], Item]
    weight: float = 1.0
    size: str = "small"


THREAT_BUILDERS: dict[str, list[tuple[Callable, float]]] = {
    "gun": guns.GUN_FAMILIES,
    "gun_part": gun_parts.GUN_PART_FAMILIES,
    "ammunition": ammo.AMMO_FAMILIES,
    "knife": knives.KNIFE_FAMILIES,
    "blade": blades.BLADE_FAMILIES,
    "shuriken": blades.SHURIKEN_FAMILIES,
    "baton": batons.BATON_FAMILIES,
    "explosive": explosives.EXPLOSIVE_FAMILIES,
}
BENIGN_BUILDERS = (household.HOUSEHOLD_FAMILIES + electronics.ELECTRONICS_FAMILIES
                   + personal.PERSONAL_FAMILIES + tools.TOOL_FAMILIES)

FAMILIES: tuple[Family, ...] = (
    *(Family(b.__name__, label, b, w) for label, builders in THREAT_BUILDERS.items()
      for b, w in builders),
    *(Family(b.__name__, None, b, w, size) for b, w, size in BENIGN_BUILDERS),
)


def families(label: str | None = None, exclude: Collection[str] = (),
             size: str | None = None) -> list[Family]:
    """Threat families of ``label``, or benign ones (``label`` None, optionally of a size)."""
    if label is not None and label not in THREAT_CLASSES:
        raise KeyError(f"unknown threat class {label!r}; known: {', '.join(THREAT_CLASSES)}")
    return [f for f in FAMILIES if f.label == label and f.name not in exclude
            and (size is None or f.size == size)]


def _draw(pool: list[Family], rng: np.random.Generator, cell_mm: float, what: str) -> Item:
    if not pool:
        raise ValueError(f"no {what} family left to draw from (all excluded)")
    weights = np.array([f.weight for f in pool])
    family = pool[int(rng.choice(len(pool), p=weights / weights.sum()))]
    item = family.build(rng, cell_mm)
    item.meta["family"] = family.name
    return item


def make_threat(label: str, rng: np.random.Generator, cell_mm: float,
                exclude: Collection[str] = ()) -> Item:
    return _draw(families(label, exclude), rng, cell_mm, f"{label!r}")


def make_benign(rng: np.random.Generator, cell_mm: float, size: str | None = None,
                exclude: Collection[str] = ()) -> Item:
    return _draw(families(None, exclude, size), rng, cell_mm, "benign")
