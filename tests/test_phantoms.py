"""The object library: every family builds real-sized, real-weight solids, deterministically."""

import numpy as np
import pytest

from edge.imaging.attenuation import material
from simulator import phantoms
from simulator.solids import project, random_rotation

# Largest dimension (mm) and mass (g) each threat class spans in real life.
# Blades include box cutters and scalpels on their handles; a closed folding knife is short.
SIZE_MM = {"gun": (130, 420), "gun_part": (40, 520), "ammunition": (20, 250),
           "knife": (80, 420), "blade": (30, 200), "shuriken": (50, 130),
           "baton": (150, 800), "explosive": (100, 500)}
# gun_part reaches a gun's mass: a field-stripped pistol is every part of one, laid apart.
MASS_G = {"gun": (300, 2200), "gun_part": (50, 2200), "ammunition": (5, 1500),
          "knife": (30, 900), "blade": (0.2, 200), "shuriken": (10, 200),
          "baton": (150, 900), "explosive": (100, 3000)}


def size_and_mass(item):
    lo = np.min([s.uv.min(0) for s in item.slabs], axis=0)
    hi = np.max([s.uv.max(0) for s in item.slabs], axis=0)
    mass = sum(float(((s.w_hi - s.w_lo) * s.cell_mm ** 2).sum()) * material(s.material).density
               / 1000 for s in item.slabs)
    return float(np.max(hi - lo)), mass


@pytest.mark.parametrize("family", phantoms.FAMILIES, ids=lambda f: f.name)
def test_family_builds_real_objects(family):
    for seed in range(3):
        item = family.build(np.random.default_rng(seed), 0.7)
        assert item.label == family.label
        for s in item.slabs:
            assert np.all(np.isfinite(s.uv)) and np.all(s.w_hi >= s.w_lo)
        size, mass = size_and_mass(item)
        if family.label:
            lo, hi = SIZE_MM[family.label]
            assert lo <= size <= hi, f"{family.name}: {size:.0f} mm"
            lo, hi = MASS_G[family.label]
            assert lo <= mass <= hi, f"{family.name}: {mass:.1f} g"
        else:
            assert 20 <= size <= 1000 and 0.5 <= mass <= 6000, f"{family.name}: {size}, {mass}"
        fp = project(item, random_rotation(np.random.default_rng(seed)), (0, 0), 1.0, (50, 80))
        assert fp.att_hi.max() > 0.01


@pytest.mark.parametrize("family", phantoms.FAMILIES[:6], ids=lambda f: f.name)
def test_family_is_deterministic(family):
    a = family.build(np.random.default_rng(4), 0.7)
    b = family.build(np.random.default_rng(4), 0.7)
    assert len(a.slabs) == len(b.slabs)
    for sa, sb in zip(a.slabs, b.slabs, strict=True):
        np.testing.assert_array_equal(sa.uv, sb.uv)
        np.testing.assert_array_equal(sa.w_hi, sb.w_hi)


def test_registry():
    names = [f.name for f in phantoms.FAMILIES]
    assert len(names) == len(set(names))
    for label in phantoms.THREAT_CLASSES:  # several hands draw every class
        assert len(phantoms.families(label)) >= 3, label
    assert len(phantoms.families(None)) >= 20
    assert {"clothes", "book"} <= {f.name for f in phantoms.families(None, size="large")}
    knives = [f.name for f in phantoms.families("knife")]
    held_out = phantoms.families("knife", exclude=[knives[0]])
    assert knives[0] not in [f.name for f in held_out]
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert phantoms.make_threat("knife", rng, 1.0, exclude=[knives[0]]).meta["family"] \
            != knives[0]
    with pytest.raises(KeyError, match="unknown threat class"):
        phantoms.families("rocket")
    with pytest.raises(ValueError, match="excluded"):
        phantoms.make_threat("shuriken", rng, 1.0,
                             exclude=[f.name for f in phantoms.families("shuriken")])


# Benign objects with threat-like parts: without them the model learns "dense metal = threat".
HARD_NEGATIVES = ("pliers", "scissors", "spanner", "hair_dryer", "stapler", "belt", "keys",
                  "phone_charger", "umbrella", "laptop", "toy_gun", "bit_set")


def test_the_hard_negatives_stay_in_the_library():
    names = {f.name for f in phantoms.families(None)}
    assert set(HARD_NEGATIVES) <= names, sorted(set(HARD_NEGATIVES) - names)
