"""Projection physics: path lengths, volume, additivity of log-attenuation."""

import numpy as np
import pytest

from edge.imaging.attenuation import mu_pair, ratio, ratio_boundaries, table
from simulator.parcels import Canvas
from simulator.solids import (
    Item,
    ellipsoid,
    extrude,
    project,
    random_rotation,
    rectangle,
    rod,
    rotation,
)

KEV = (50.0, 80.0)


@pytest.mark.parametrize(
    ("name", "kev", "expected"),
    [
        # NIST SRD 126 (Hubbell & Seltzer) mass attenuation coefficients, cm^2/g
        ("water", 50, 0.2269),
        ("water", 80, 0.1837),
        ("aluminium", 50, 0.3681),
        ("aluminium", 100, 0.1704),
        ("copper", 80, 0.7630),
        ("lead", 100, 5.549),  # above the K edge at 88 keV
    ],
)
def test_table_matches_nist(name, kev, expected):
    m = table()[name]
    assert m.mu_per_mm(kev) * 10 / m.density == pytest.approx(expected, rel=0.01)


def test_dual_energy_ratio_orders_material_groups():
    r1, r2 = ratio_boundaries(*KEV)
    for name, m in table().items():
        r = ratio(name, *KEV)
        expected = {"organic": r < r1, "inorganic": r1 <= r < r2, "metal": r >= r2}
        if name in ("pvc", "fr4", "battery", "lead"):  # chlorine, bromine, cobalt; lead's edge
            continue
        assert expected[m.group], f"{name}: R={r:.2f} not in its group {m.group} ({r1}, {r2})"


def plate(thickness=10.0, size=50.0, material="steel"):
    return Item("plate", [extrude(rectangle(size, size), thickness, material, 0.25)])


@pytest.mark.parametrize(
    ("tilt", "max_path"),
    [
        (0, 10.0),  # face-on: the plate's thickness
        (60, 20.0),  # 10 / cos 60
        (90, 50.0),  # edge-on: through its whole width
    ],
)
def test_plate_path_length_at_tilt(tilt, max_path):
    _, mu_hi = mu_pair("steel", *KEV)
    fp = project(plate(), rotation(0, tilt, 0), (100.0, 100.0), 1.0, KEV)
    # Central pixels (away from the soft edges) carry the full chord.
    assert np.percentile(fp.att_hi, 99) / mu_hi == pytest.approx(max_path, rel=0.06)


@pytest.mark.parametrize("seed", range(6))
def test_projection_conserves_volume_at_any_orientation(seed):
    rng = np.random.default_rng(seed)
    item = Item("mix", [*rod((-30, 0), (30, 0), 6, "aluminium", 0.25),
                        ellipsoid((10, 20, 0), (15, 10, 5), "aluminium", 0.25)])
    volume = sum(float(((s.w_hi - s.w_lo) * s.cell_mm ** 2).sum()) for s in item.slabs)
    _, mu_hi = mu_pair("aluminium", *KEV)
    pitch = 0.8
    fp = project(item, random_rotation(rng), (200.3, 200.6), pitch, KEV)
    assert fp.att_hi.sum() / mu_hi * pitch ** 2 == pytest.approx(volume, rel=1e-4)


def test_rod_and_tube_chords():
    _, mu_hi = mu_pair("steel", *KEV)
    solid = project(Item("rod", rod((-40, 0), (40, 0), 5, "steel", 0.2)), rotation(0), (60, 60),
                    0.5, KEV)
    tube = project(Item("tube", rod((-40, 0), (40, 0), 5, "steel", 0.2, inner_radius=4)),
                   rotation(0), (60, 60), 0.5, KEV)
    assert solid.att_hi.max() / mu_hi == pytest.approx(10.0, rel=0.05)  # the diameter
    # Through the tube's axis only the two walls remain: 2 * (5 - 4) mm.
    centre_row = tube.att_hi[tube.att_hi.shape[0] // 2]
    assert np.median(centre_row[centre_row > 0]) / mu_hi == pytest.approx(2.0, rel=0.15)


def test_overlapping_objects_add_log_attenuation():
    a = project(plate(8, 60, "steel"), rotation(10, 30, 40), (80.0, 80.0), 1.0, KEV)
    b = project(plate(20, 40, "water"), rotation(-20, 50, 10), (95.0, 90.0), 1.0, KEV)
    both, first, second = Canvas(200, 200), Canvas(200, 200), Canvas(200, 200)
    both.add(a)
    both.add(b)
    first.add(a)
    second.add(b)
    np.testing.assert_allclose(both.att_hi, first.att_hi + second.att_hi, rtol=1e-6)
    np.testing.assert_allclose(both.att_lo, first.att_lo + second.att_lo, rtol=1e-6)
    # and in intensity they multiply: the transmission of the stack is the product.
    np.testing.assert_allclose(np.exp(-both.att_hi),
                               np.exp(-first.att_hi) * np.exp(-second.att_hi), rtol=1e-5)


def test_footprint_box_is_tight():
    fp = project(plate(5, 40), rotation(0), (100.0, 50.0), 1.0, KEV)
    np.testing.assert_allclose(fp.box, [80, 30, 120, 70], atol=1.0)
