"""Material classes on slabs of known materials, from NIST mass attenuation coefficients."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.imaging.material import (
    BACKGROUND,
    DEFAULT_BOUNDARIES,
    INORGANIC,
    METAL,
    MIN_ATT,
    ORGANIC,
    classify,
    effective_ratio,
)

# NIST SRD 126: mass attenuation mu/rho (cm^2/g) at 50 keV, at 80 keV; density (g/cm^3).
NIST = {
    "water": (0.2269, 0.1837, 1.00),
    "polyethylene": (0.2085, 0.1798, 0.94),
    "aluminium": (0.3681, 0.2018, 2.70),
    "iron": (1.958, 0.5952, 7.87),
    "copper": (2.613, 0.7630, 8.96),
}
PHOTONS_HI, PHOTONS_LO = 20_000, 8_000  # the simulator's defaults, photons per pixel per line
ATT_CLIP = 12.0  # what correction clips to


def slab(name: str, mm: float, shape=(48, 48), noise: bool = False, seed: int = 0):
    """(att_hi, att_lo) float32 of a uniform slab; with noise, as measured through Poisson
    photon counts (and clipped where no photon is left, as correction does)."""
    mu_lo, mu_hi, rho = NIST[name]
    att = {"hi": mu_hi * rho * mm / 10, "lo": mu_lo * rho * mm / 10}
    rng = np.random.default_rng(seed)
    out = []
    for ch, photons in (("hi", PHOTONS_HI), ("lo", PHOTONS_LO)):
        if noise:
            counts = rng.poisson(photons * np.exp(-att[ch]), shape)
            measured = -np.log(np.maximum(counts, photons * np.exp(-ATT_CLIP)) / photons)
        else:
            measured = np.full(shape, att[ch])
        out.append(measured.astype(np.float32))
    return out[0], out[1]


@pytest.mark.parametrize(
    ("name", "thicknesses_mm", "expected"),
    [
        ("water", (5, 10, 20, 50, 150), ORGANIC),
        ("polyethylene", (5, 12, 25, 50), ORGANIC),
        ("aluminium", (2, 5, 10, 20), INORGANIC),
        ("iron", (0.5, 1, 2, 5), METAL),
        ("copper", (0.5, 1, 2.5, 5), METAL),
    ],
)
@pytest.mark.parametrize("noise", [False, True])
def test_classify_recovers_material_group(name, thicknesses_mm, expected, noise):
    for mm in thicknesses_mm:
        classes = classify(*slab(name, mm, noise=noise), boundaries=DEFAULT_BOUNDARIES)
        share = np.mean(classes == expected)
        assert share >= (0.97 if noise else 1.0), f"{mm} mm {name}: {share:.1%} right"


@pytest.mark.parametrize(
    ("name", "mm", "expected"),
    [
        ("iron", 8, METAL),  # low channel starved: R unreadable, dense -> metal
        ("iron", 15, METAL),  # both channels near the floor
        ("copper", 12, METAL),
        ("water", 300, ORGANIC),  # a big bottle: the low channel still sees photons
    ],
)
def test_photon_starved_pixels(name, mm, expected):
    classes = classify(*slab(name, mm, noise=True, seed=3))
    assert np.mean(classes == expected) >= 0.97


def test_thin_and_empty_are_background():
    hi, lo = slab("water", 1)  # 1 mm of water: att_hi 0.018, below MIN_ATT
    assert hi.max() < MIN_ATT
    assert np.all(classify(hi, lo) == BACKGROUND)
    rng = np.random.default_rng(1)
    air_hi = rng.normal(0, 1 / np.sqrt(PHOTONS_HI), (64, 64)).astype(np.float32)
    air_lo = rng.normal(0, 1 / np.sqrt(PHOTONS_LO), (64, 64)).astype(np.float32)
    assert np.all(classify(air_hi, air_lo) == BACKGROUND)


def test_regions_of_a_mixed_image():
    """Water, aluminium and iron side by side on air: each region its class (3 px from the
    borders, where the smoothing mixes neighbours)."""
    parts = [slab("water", 40, (32, 40)), slab("aluminium", 6, (32, 40)),
             slab("iron", 2, (32, 40)), (np.zeros((32, 40), np.float32),) * 2]
    hi = np.concatenate([p[0] for p in parts], axis=1)
    lo = np.concatenate([p[1] for p in parts], axis=1)
    classes = classify(hi, lo)
    for i, expected in enumerate((ORGANIC, INORGANIC, METAL, BACKGROUND)):
        assert np.all(classes[:, 40 * i + 2:40 * i + 38] == expected)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(NIST)), mm=st.floats(0.5, 60.0))
def test_ratio_is_the_material_not_the_thickness(name, mm):
    mu_lo, mu_hi, _ = NIST[name]
    hi, lo = slab(name, mm, shape=(4, 4))
    if hi[0, 0] < MIN_ATT:
        assert np.all(np.isnan(effective_ratio(hi, lo)))
    elif lo[0, 0] < 8.0:
        np.testing.assert_allclose(effective_ratio(hi, lo), mu_lo / mu_hi, rtol=1e-5)


def test_default_boundaries_match_the_simulator():
    """DEFAULT_BOUNDARIES are the simulator's boundaries for its default 50 / 80 keV, and sit
    between the reference materials' ratios."""
    from edge.imaging.attenuation import ratio_boundaries

    np.testing.assert_allclose(DEFAULT_BOUNDARIES, ratio_boundaries(50, 80), atol=0.01)
    r = {name: mu_lo / mu_hi for name, (mu_lo, mu_hi, _) in NIST.items()}
    r1, r2 = DEFAULT_BOUNDARIES
    assert max(r["water"], r["polyethylene"]) < r1 < r["aluminium"] < r2 < r["iron"]


def test_boundaries_are_an_argument():
    hi, lo = slab("aluminium", 10)  # R = 1.82
    assert np.all(classify(hi, lo, boundaries=(1.9, 3.0)) == ORGANIC)
    assert np.all(classify(hi, lo, boundaries=(1.2, 1.7)) == METAL)


@pytest.mark.parametrize(
    ("hi_shape", "lo_shape", "boundaries", "message"),
    [
        ((8, 8), (8, 9), DEFAULT_BOUNDARIES, r"\(8, 8\) and \(8, 9\)"),
        ((64,), (64,), DEFAULT_BOUNDARIES, "2D"),
        ((8, 8), (8, 8), (2.5, 1.5), r"\(2.5, 1.5\)"),
        ((8, 8), (8, 8), (0.0, 1.5), "0 < r1 < r2"),
    ],
)
def test_bad_input_is_refused(hi_shape, lo_shape, boundaries, message):
    with pytest.raises(ValueError, match=message):
        classify(np.zeros(hi_shape, np.float32), np.zeros(lo_shape, np.float32), boundaries)
