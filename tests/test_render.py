"""Pseudo-colour and grey rendering: the industry colour convention on known materials."""

import time

import numpy as np
import pytest

from edge.imaging.material import DEFAULT_BOUNDARIES
from edge.imaging.render import render_colour, render_grey

# NIST SRD 126: mu/rho (cm^2/g) at 50 keV, at 80 keV; density (g/cm^3).
NIST = {
    "water": (0.2269, 0.1837, 1.00),
    "aluminium": (0.3681, 0.2018, 2.70),
    "iron": (1.958, 0.5952, 7.87),
    "copper": (2.613, 0.7630, 8.96),
}


def slab(name: str, mm: float, shape=(24, 24)) -> tuple[np.ndarray, np.ndarray]:
    mu_lo, mu_hi, rho = NIST[name]
    return (np.full(shape, mu_hi * rho * mm / 10, np.float32),
            np.full(shape, mu_lo * rho * mm / 10, np.float32))


def colour_of(name: str, mm: float) -> np.ndarray:
    """BGR (int) in the middle of a rendered slab."""
    return render_colour(*slab(name, mm), DEFAULT_BOUNDARIES)[12, 12].astype(int)


def test_air_is_white_and_air_noise_makes_no_colour():
    zeros = np.zeros((40, 60), np.float32)
    assert np.all(render_colour(zeros, zeros) == 255)
    rng = np.random.default_rng(0)
    hi = rng.normal(0, 0.007, (200, 300)).astype(np.float32)  # 20,000 photons
    lo = rng.normal(0, 0.011, (200, 300)).astype(np.float32)  # 8,000 photons
    image = render_colour(hi, lo).astype(int)
    assert image.min() >= 245
    assert (image.max(-1) - image.min(-1)).max() <= 2  # grey, not speckled in colour


@pytest.mark.parametrize(
    ("name", "mm", "group"),
    [
        ("water", 20, "organic"),
        ("water", 60, "organic"),
        ("water", 150, "organic"),
        ("aluminium", 4, "inorganic"),
        ("aluminium", 15, "inorganic"),
        ("iron", 1, "metal"),
        ("iron", 3, "metal"),
        ("copper", 2, "metal"),
    ],
)
def test_material_colours(name, mm, group):
    b, g, r = colour_of(name, mm)
    if group == "organic":
        assert r > g > b, f"{mm} mm {name} should be orange, got BGR {(b, g, r)}"
    elif group == "inorganic":
        assert g > max(b, r) + 40, f"{mm} mm {name} should be green, got BGR {(b, g, r)}"
    else:
        assert b > max(g, r) + 40, f"{mm} mm {name} should be blue, got BGR {(b, g, r)}"


@pytest.mark.parametrize("name", sorted(NIST))
def test_denser_is_darker(name):
    thick = [0.5, 1, 2, 4, 8, 16, 32, 64]
    brightness = [colour_of(name, mm).sum() for mm in thick]
    assert all(a >= b for a, b in zip(brightness, brightness[1:], strict=False))
    assert brightness[0] > brightness[-1]


def test_metal_darker_than_organic_of_lower_attenuation():
    metal_hi = slab("iron", 3)[0][0, 0]  # att_hi 1.41
    organic_hi = slab("water", 60)[0][0, 0]  # att_hi 1.10
    assert organic_hi < metal_hi
    assert colour_of("iron", 3).sum() < colour_of("water", 60).sum()


def test_hue_blends_smoothly_across_class_borders():
    """R swept from 1.0 to 4.0 at a fixed att_hi: neighbouring ratios, neighbouring colours."""
    r = np.linspace(1.0, 4.0, 301, dtype=np.float32)[None, :].repeat(5, 0)
    hi = np.full_like(r, 0.8)
    row = render_colour(hi, hi * r)[2, 1:-1].astype(int)  # away from the blur's borders
    assert np.abs(np.diff(row, axis=0)).max() <= 12
    b, g, red = row[:, 0], row[:, 1], row[:, 2]
    assert red[0] > g[0] > b[0] and b[-1] > g[-1] > red[-1]


def test_colour_fades_in_from_air():
    """Saturation grows with attenuation from zero: thin organics are pale, thick ones full."""
    spread = [np.ptp(colour_of("water", mm)) for mm in (0.5, 2, 5, 10, 20)]
    assert spread[0] <= 3
    assert all(a <= b for a, b in zip(spread, spread[1:], strict=False))


def test_starved_low_channel_renders_as_metal():
    hi = np.full((10, 10), 4.0, np.float32)
    lo = np.full((10, 10), 12.0, np.float32)  # nothing left in the low channel
    b, g, r = render_colour(hi, lo)[5, 5].astype(int)
    assert b > g > r


def test_boundaries_move_the_colours():
    hi, lo = slab("aluminium", 10)  # R = 1.82
    b, g, r = render_colour(hi, lo, (2.2, 3.0))[12, 12].astype(int)
    assert r > g > b  # now below r1: orange


def test_colour_shape_dtype_and_errors():
    hi, lo = slab("water", 30, (17, 31))
    out = render_colour(hi, lo)
    assert out.shape == (17, 31, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    with pytest.raises(ValueError, match=r"\(17, 31\) and \(17, 30\)"):
        render_colour(hi, lo[:, :30])
    with pytest.raises(ValueError, match="boundaries"):
        render_colour(hi, lo, (2.0, 1.0))


def test_grey_is_white_in_air_and_darker_with_attenuation():
    att = np.linspace(0, 8, 400, dtype=np.float32)[None, :].repeat(3, 0)
    grey8, grey16 = render_grey(att), render_grey(att, bits=16)
    assert grey8.dtype == np.uint8 and grey16.dtype == np.uint16 and grey8.shape == (3, 400)
    assert grey8[0, 0] == 255 and grey16[0, 0] == 65535
    assert np.all(np.diff(grey16[0].astype(int)) < 0)  # strictly darker
    assert np.all(np.diff(grey8[0].astype(int)) <= 0) and grey8[0, -1] < 10
    noise = np.random.default_rng(0).normal(0, 0.01, (20, 20)).astype(np.float32)
    assert render_grey(noise).min() >= 250  # air noise stays near white, never above it
    with pytest.raises(ValueError, match="bits must be 8 or 16, got 12"):
        render_grey(att, bits=12)


def test_render_speed():
    """A 768 x 1200 parcel renders well inside a real-time budget (best of three)."""
    rng = np.random.default_rng(0)
    hi = np.abs(rng.normal(0.5, 0.6, (768, 1200))).astype(np.float32)
    lo = (hi * rng.uniform(1.1, 3.5, hi.shape)).astype(np.float32)
    best = {}
    for name, render in (("colour", lambda: render_colour(hi, lo)),
                         ("grey", lambda: render_grey(hi))):
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            render()
            timings.append(time.perf_counter() - start)
        best[name] = min(timings)
    assert best["colour"] < 0.040 and best["grey"] < 0.020, best
