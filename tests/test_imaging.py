"""Correction tables, material classes and rendering on slabs of known materials."""

import numpy as np
import pytest

from edge.imaging.attenuation import ratio_boundaries
from edge.imaging.correct import FlatField, correct
from edge.imaging.material import INORGANIC, METAL, ORGANIC, classify
from edge.imaging.render import render_colour, render_grey

# NIST SRD 126 mass attenuation (cm^2/g) at 50 / 80 keV and density (g/cm^3)
SLABS = {
    "water": (0.2269, 0.1837, 1.00),
    "polyethylene": (0.2085, 0.1798, 0.94),
    "aluminium": (0.3681, 0.2018, 2.70),
    "iron": (1.958, 0.5952, 7.87),
    "copper": (2.613, 0.7630, 8.96),
}
BOUNDS = ratio_boundaries(50, 80)


def slab(name: str, mm: float, shape=(40, 40), noise: float = 0.0, seed: int = 0):
    """(att_hi, att_lo) of a uniform slab, optionally with photon-like noise."""
    mu_lo, mu_hi, rho = SLABS[name]
    rng = np.random.default_rng(seed)
    hi = np.full(shape, mu_hi * rho * mm / 10, np.float32)
    lo = np.full(shape, mu_lo * rho * mm / 10, np.float32)
    if noise:  # noise of log-attenuation grows as 1/sqrt(photons left)
        hi += rng.normal(0, noise * np.exp(hi / 2), shape).astype(np.float32)
        lo += rng.normal(0, noise * np.exp(lo / 2), shape).astype(np.float32)
    return hi, lo


@pytest.mark.parametrize(
    ("name", "thicknesses", "expected"),
    [
        ("water", (20, 50, 150, 300), ORGANIC),
        ("polyethylene", (10, 40, 120), ORGANIC),
        ("aluminium", (3, 8, 20), INORGANIC),
        ("iron", (0.5, 2, 5), METAL),
        ("copper", (0.5, 1.5, 4), METAL),
    ],
)
@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_classify_recovers_material_group(name, thicknesses, expected, noise):
    for mm in thicknesses:
        classes = classify(*slab(name, mm, noise=noise), boundaries=BOUNDS)
        share = np.mean(classes == expected)
        assert share > 0.95, f"{mm} mm {name}: only {share:.0%} classed {expected}"


def test_classify_calls_thin_air_background_and_checks_shapes():
    hi, lo = slab("water", 0.5)  # 0.5 mm of water: nothing to judge
    assert np.all(classify(hi, lo, BOUNDS) == 0)
    with pytest.raises(ValueError, match="shape"):
        classify(hi, lo[:10], BOUNDS)


def test_colour_convention():
    air = render_colour(*[np.zeros((20, 20), np.float32)] * 2, BOUNDS)
    assert air.min() >= 250  # white background
    organic = render_colour(*slab("water", 60), BOUNDS)[20, 20].astype(int)
    inorganic = render_colour(*slab("aluminium", 10), BOUNDS)[20, 20].astype(int)
    metal = render_colour(*slab("iron", 3), BOUNDS)[20, 20].astype(int)
    b, g, r = organic
    assert r > g > b, f"organic should be orange, got BGR {organic}"
    assert inorganic[1] > max(inorganic[0], inorganic[2]), f"inorganic green, got {inorganic}"
    assert metal[0] > max(metal[1], metal[2]), f"metal blue, got {metal}"
    thick = render_colour(*slab("iron", 8), BOUNDS)[20, 20].astype(int)
    assert thick.sum() < metal.sum(), "denser must be darker"


def test_grey_is_white_in_air_and_darker_with_attenuation():
    att = np.linspace(0, 6, 100, dtype=np.float32)[None, :].repeat(3, 0)
    grey8, grey16 = render_grey(att), render_grey(att, bits=16)
    assert grey8.dtype == np.uint8 and grey16.dtype == np.uint16
    assert grey8[0, 0] == 255 and grey16[0, 0] == 65535
    assert np.all(np.diff(grey16[0].astype(int)) < 0)
    with pytest.raises(ValueError, match="bits"):
        render_grey(att, bits=12)


def calibration(n=64, seed=0):
    rng = np.random.default_rng(seed)
    gain = rng.normal(1, 0.1, n)
    dark = rng.normal(500, 50, n)
    dark_lines = rng.normal(dark, 5, (200, n))
    air_lines = rng.normal(dark + 40000 * gain, 200, (200, n))
    air_lines[:, 7] = dark[7]  # a dead pixel
    stacks = [np.clip(a, 0, 65535).astype(np.uint16) for a in (dark_lines, dark_lines,
                                                                air_lines, air_lines)]
    return FlatField.from_lines(*stacks), gain, dark


def test_flatfield_finds_dead_pixel_and_round_trips(tmp_path):
    flat, gain, dark = calibration()
    assert np.nonzero(flat.dead)[0].tolist() == [7]
    path = tmp_path / "flat.npz"
    flat.save(path)
    again = FlatField.load(path)
    np.testing.assert_array_equal(again.air_hi, flat.air_hi)
    np.testing.assert_array_equal(again.dead, flat.dead)
    # a slab behind a known gain / offset pattern comes back flat, dead pixel filled
    raw = (dark + 40000 * gain * np.exp(-1.3))[None, :].repeat(10, 0)
    raw[:, 7] = dark[7]
    att_hi, _ = correct(raw.astype(np.uint16), raw.astype(np.uint16), flat)
    np.testing.assert_allclose(att_hi, 1.3, atol=0.01)


def test_flatfield_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="bad.npz"):
        FlatField.load(bad)
    flat, _, _ = calibration()
    lines = np.zeros((4, 32), np.uint16)
    with pytest.raises(ValueError, match="32"):
        correct(lines, lines, flat)
    with pytest.raises(ValueError, match="shape"):
        correct(np.zeros((4, 64), np.uint16), np.zeros((5, 64), np.uint16), flat)
