"""Dark / flat-field correction on a detector built here with known gain and offset maps."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.imaging.correct import ATT_MAX, ATT_MIN, FlatField, correct

N = 256  # detector pixels
PHOTONS = {"hi": 20_000, "lo": 8_000}  # per pixel per line through air
AIR_COUNTS = 45_000.0  # ADC counts through air at unit gain
READ_NOISE = 6.0  # ADC counts rms
WATER_40MM = {"hi": 0.1837 * 1.0 * 4.0, "lo": 0.2269 * 1.0 * 4.0}  # NIST, 80 / 50 keV


class Detector:
    """One channel of a line detector: per-pixel gain (with board steps) and dark offset;
    counts = gain * AIR_COUNTS / photons * Poisson(photons * exp(-att)) + dark + read noise."""

    def __init__(self, channel: str, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.photons = PHOTONS[channel]
        boards = np.repeat(rng.normal(1, 0.05, N // 64), 64)
        self.gain = boards * rng.normal(1, 0.08, N)
        self.dark = rng.normal(600, 80, N)
        self.stuck: list[int] = []  # pixels that read dark whatever the light
        self.rng = rng

    def expose(self, att: np.ndarray, source_on: bool = True) -> np.ndarray:
        photons = self.rng.poisson(self.photons * np.exp(-att)) if source_on else 0
        counts = self.gain * AIR_COUNTS / self.photons * photons + self.dark
        counts = counts + self.rng.normal(0, READ_NOISE, np.shape(att))
        counts[:, self.stuck] = self.dark[self.stuck]
        return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)

    def calibration(self, rows: int = 256) -> tuple[np.ndarray, np.ndarray]:
        zeros = np.zeros((rows, N))
        return self.expose(zeros, source_on=False), self.expose(zeros)


def flat_of(hi: Detector, lo: Detector, rows: int = 256) -> FlatField:
    (dark_hi, air_hi), (dark_lo, air_lo) = hi.calibration(rows), lo.calibration(rows)
    return FlatField.from_lines(dark_hi, dark_lo, air_hi, air_lo)


def slab_scene(rows: int = 400) -> dict[str, np.ndarray]:
    """Known attenuation [rows, N]: air on the outer pixels, 40 mm of water in the middle."""
    scene = {}
    for ch, att in WATER_40MM.items():
        scene[ch] = np.zeros((rows, N))
        scene[ch][:, 64:192] = att
    return scene


def test_flatfield_removes_gain_and_offset_non_uniformity():
    hi, lo = Detector("hi", 1), Detector("lo", 2)
    flat = flat_of(hi, lo)
    scene = slab_scene()
    raw_hi, raw_lo = hi.expose(scene["hi"]), lo.expose(scene["lo"])
    att_hi, att_lo = correct(raw_hi, raw_lo, flat)
    rows = len(raw_hi)
    for ch, raw, att in (("hi", raw_hi, att_hi), ("lo", raw_lo, att_lo)):
        # Without correction the slab's columns differ by the injected gain spread (~10 %).
        naive = -np.log(raw[:, 64:192].mean(0) / raw[:, :64].mean())
        assert naive.std() > 0.05
        profile = att[:, 64:192].mean(0)  # mean over lines, per column
        # Photon noise of one pixel is 1 / sqrt(photons left); averaging rows lines and the
        # calibration's 256 air lines leaves this much column-to-column scatter.
        left = PHOTONS[ch] * np.exp(-WATER_40MM[ch])
        expected = np.sqrt(1 / (left * rows) + 1 / (PHOTONS[ch] * 256))
        assert profile.std() < 1.3 * expected, f"{ch}: residual {profile.std():.2e}"
        assert profile.mean() == pytest.approx(WATER_40MM[ch], abs=3 * expected)
        air = att[:, :64].mean(0)
        assert np.abs(air).max() < 5 * np.sqrt(2 / (PHOTONS[ch] * 256))


@settings(max_examples=40, deadline=None)
@given(gain=st.floats(0.5, 1.3), dark=st.floats(0, 3000), att=st.floats(0, 6))
def test_noise_free_counts_give_back_the_attenuation(gain, dark, att):
    """Any gain and offset (air stays inside the 16-bit ADC range): with exact tables only the
    rounding to whole counts is left."""
    counts = dark + gain * AIR_COUNTS * np.exp(-att)
    flat = FlatField(*[np.full(4, v, np.float32) for v in (dark, dark, dark + gain * AIR_COUNTS,
                                                             dark + gain * AIR_COUNTS)],
                     dead=np.zeros(4, bool))
    raw = np.full((2, 4), np.rint(counts), np.uint16)
    att_hi, att_lo = correct(raw, raw, flat)
    rounding = 0.5 / (counts - dark)  # relative error of rounding to whole counts
    np.testing.assert_allclose(att_hi, att, atol=1.01 * rounding + 1e-5)
    np.testing.assert_array_equal(att_hi, att_lo)


def dead_pixel_detector(kind: str, pixel: int) -> tuple[Detector, Detector]:
    hi, lo = Detector("hi", 3), Detector("lo", 4)
    if kind == "stuck":
        hi.stuck = lo.stuck = [pixel]
    elif kind == "weak":
        hi.gain[pixel] *= 0.1
    elif kind == "hot":
        lo.gain[pixel] *= 5.0
    return hi, lo


@pytest.mark.parametrize(
    ("kind", "pixel"),
    [
        ("stuck", 100),  # no response: reads its dark level (both channels)
        ("weak", 37),  # a tenth of the median gain (high channel only)
        ("hot", 200),  # five times the median gain (low channel only)
        ("stuck", 0),  # the first pixel: copies its neighbour
        ("stuck", N - 1),  # the last pixel
    ],
)
def test_dead_pixels_found_and_filled(kind, pixel):
    hi, lo = dead_pixel_detector(kind, pixel)
    flat = flat_of(hi, lo)
    assert np.flatnonzero(flat.dead).tolist() == [pixel]
    # A smooth ramp of attenuation across the detector: the fill must follow it.
    ramp = np.linspace(0.2, 2.0, N)[None, :].repeat(200, 0)
    att_hi, att_lo = correct(hi.expose(ramp), lo.expose(ramp), flat)
    for att in (att_hi, att_lo):
        assert att[:, pixel].mean() == pytest.approx(ramp[0, pixel], abs=0.02)


def test_noisy_pixel_is_dead():
    hi, lo = Detector("hi", 5), Detector("lo", 6)
    dark_hi, air_hi = hi.calibration()
    dark_lo, air_lo = lo.calibration()
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 3000, len(air_hi))  # a flickering pixel, right mean
    air_hi[:, 50] = np.clip(air_hi[:, 50] + noise, 0, 65535).astype(np.uint16)
    dark_lo[:, 9] = rng.integers(0, 3000, len(dark_lo))  # noisy electronics
    flat = FlatField.from_lines(dark_hi, dark_lo, air_hi, air_lo)
    assert np.flatnonzero(flat.dead).tolist() == [9, 50]


def test_clipping_keeps_air_noise_and_caps_starved_pixels():
    flat = FlatField(*[np.full(3, v, np.float32) for v in (100, 100, 10_100, 10_100)],
                     dead=np.zeros(3, bool))
    raw = np.array([[10_200, 50, 10_100]], np.uint16)  # above air, below dark, exactly air
    att, _ = correct(raw, raw, flat)
    assert att[0, 0] == pytest.approx(-np.log(1.01), abs=1e-4)  # kept slightly negative
    assert att[0, 1] == ATT_MAX and att[0, 2] == 0
    huge = np.array([[65_535, 0, 0]], np.uint16)
    assert correct(huge, huge, flat)[0][0, 0] == ATT_MIN


def test_air_noise_is_not_biased():
    """Clipping air at 0 would make its mean positive; the slightly negative floor does not."""
    hi, lo = Detector("hi", 8), Detector("lo", 9)
    flat = flat_of(hi, lo)
    air = np.zeros((500, N))
    att_hi, att_lo = correct(hi.expose(air), lo.expose(air), flat)
    assert (att_lo < 0).mean() > 0.3
    assert abs(att_lo.mean()) < 3 / np.sqrt(PHOTONS["lo"] * 256)


def test_save_load_round_trip(tmp_path):
    flat = flat_of(Detector("hi", 1), Detector("lo", 2), rows=32)
    flat = FlatField(flat.dark_hi, flat.dark_lo, flat.air_hi, flat.air_lo,
                     dead=np.arange(N) == 17, ratio_boundaries=(1.48, 2.5))
    flat.save(tmp_path / "flat.npz")
    again = FlatField.load(tmp_path / "flat.npz")
    for name in ("dark_hi", "dark_lo", "air_hi", "air_lo", "dead"):
        np.testing.assert_array_equal(getattr(again, name), getattr(flat, name))
    assert again.ratio_boundaries == (1.48, 2.5) and again.n_pixels == N
    plain = FlatField(flat.dark_hi, flat.dark_lo, flat.air_hi, flat.air_lo, flat.dead)
    plain.save(tmp_path / "plain.npz")
    assert FlatField.load(tmp_path / "plain.npz").ratio_boundaries is None


def _tables(n=8, **changes):
    tables = {"version": 2, "n_pixels": n, "dead": np.zeros(n, bool),
              "ratio_boundaries": np.zeros(0), **{k: np.ones(n, np.float32) for k in
                                                   ("dark_hi", "dark_lo", "air_hi", "air_lo")}}
    tables.update(changes)
    return {k: v for k, v in tables.items() if v is not None}


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_bytes(b"not a numpy file"), "unusable"),  # garbage
        (lambda p: p.write_bytes(b""), "unusable"),  # empty file
        (lambda p: p.write_bytes(b"PK\x03\x04 truncated zip"), "unusable"),  # broken archive
        (lambda p: np.save(p.open("wb"), np.zeros(3)), "not an .npz"),  # a bare array
        (lambda p: np.savez(p.open("wb"), **_tables(version=1)), "version 1"),
        (lambda p: np.savez(p.open("wb"), **_tables(air_lo=None)), "air_lo"),  # key missing
        (lambda p: np.savez(p.open("wb"), **_tables(n_pixels=9)), "n_pixels = 9"),
    ],
)
def test_load_refuses_wrong_files_naming_them(tmp_path, write, message):
    path = tmp_path / "calib.npz"
    write(path)
    with pytest.raises(ValueError, match=message) as info:
        FlatField.load(path)
    assert "calib.npz" in str(info.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        FlatField.load(tmp_path / "nowhere.npz")


@pytest.mark.parametrize(
    ("hi_shape", "lo_shape", "message"),
    [
        ((4, N), (5, N), rf"\(4, {N}\) vs lo \(5, {N}\)"),  # channels differ
        ((4, 32), (4, 32), rf"\(4, 32\) do not fit a flat field of shape \({N},\)"),
        ((N,), (N,), "do not fit"),  # one line must still be 2D
    ],
)
def test_shape_mismatches_name_both_shapes(hi_shape, lo_shape, message):
    flat = FlatField(*[np.ones(N, np.float32)] * 4, dead=np.zeros(N, bool))
    with pytest.raises(ValueError, match=message):
        correct(np.zeros(hi_shape, np.uint16), np.zeros(lo_shape, np.uint16), flat)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: FlatField(*[np.ones(4)] * 3, np.ones(5), dead=np.zeros(4)), "one length"),
        (lambda: FlatField(*[np.ones(4)] * 4, dead=np.zeros(4), ratio_boundaries=(2, 1)),
         r"\(2, 1\)"),
        (lambda: FlatField.from_lines(*[np.zeros((3, 4))] * 3, np.zeros((3, 5))), r"\(3, 5\)"),
        (lambda: correct(np.zeros((1, 4)), np.zeros((1, 4)),
                         FlatField(*[np.ones(4)] * 4, dead=np.ones(4, bool))), "all 4"),
    ],
)
def test_bad_tables_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()
