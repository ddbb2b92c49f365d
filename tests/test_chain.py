"""The whole acquisition chain: simulated detector -> flat-field correction -> attenuation."""

import numpy as np
import pytest

from edge.capture import capture_flatfield
from edge.config import SimScannerConfig
from edge.imaging.correct import correct
from simulator.parcels import Canvas
from simulator.scanner import SimScanner
from simulator.solids import Item, extrude, project, rectangle, rotation

KEV = (50.0, 80.0)
N_PIXELS = 256


@pytest.fixture(scope="module")
def scanner():
    return SimScanner(SimScannerConfig(realtime=False, n_pixels=N_PIXELS, seed=11))


@pytest.fixture(scope="module")
def flat(scanner):
    return capture_flatfield(scanner, lines=1024)


def measure(scanner, flat, att_lo, att_hi, repeats=1):
    """Expose ideal attenuation maps [rows, pixels] and correct them back."""
    hi, lo = scanner.detector.expose(att_lo, att_hi, np.random.default_rng(repeats))
    return correct(hi, lo, flat)


def test_flatfield_removes_gain_and_offset_non_uniformity(scanner, flat):
    zeros = np.zeros((400, N_PIXELS), np.float32)
    raw_hi, _ = scanner.detector.expose(zeros, zeros, np.random.default_rng(0))
    alive = np.setdiff1d(np.arange(N_PIXELS), scanner.detector.dead)
    raw_profile = raw_hi.mean(0)[alive]
    assert raw_profile.std() / raw_profile.mean() > 0.04  # the injected non-uniformity
    att_hi, _ = correct(*scanner.detector.expose(zeros, zeros, np.random.default_rng(0)), flat)
    profile = att_hi.mean(0)
    # Left: the noise of averaging 400 lines of ~20,000 photons, plus the calibration's own.
    assert np.abs(profile).max() < 0.005


def test_log_attenuation_adds_through_the_whole_chain(scanner, flat):
    plate_a = Item("a", [extrude(rectangle(120, 60), 6.0, "aluminium", 0.5)])
    plate_b = Item("b", [extrude(rectangle(60, 120), 30.0, "polyethylene", 0.5)])
    maps = {}
    for name, items in (("a", [plate_a]), ("b", [plate_b]), ("ab", [plate_a, plate_b])):
        canvas = Canvas(N_PIXELS, 200)
        for item in items:
            canvas.add(project(item, rotation(0), (100.0, 128.0), 1.0, KEV))
        # lines x pixels, as the detector sees them
        maps[name] = measure(scanner, flat, canvas.att_lo.T.copy(), canvas.att_hi.T.copy())
    core = np.s_[85:115, 113:143]  # where the plates overlap, away from their edges
    for channel in (0, 1):
        a, b, ab = (maps[k][channel][core].mean() for k in ("a", "b", "ab"))
        assert ab == pytest.approx(a + b, rel=0.02)


def test_recovers_known_slab_attenuation(scanner, flat):
    mu = 7.85 / 10 * np.array([1.958, 0.5952])  # steel at 50 / 80 keV (NIST), 1/mm
    thickness = 3.0
    att = np.full((300, N_PIXELS), 1.0, np.float32)
    att_hi, att_lo = measure(scanner, flat, att * mu[0] * thickness, att * mu[1] * thickness)
    assert att_hi.mean() == pytest.approx(mu[1] * thickness, rel=0.02)
    assert att_lo.mean() == pytest.approx(mu[0] * thickness, rel=0.03)


def test_dense_regions_are_noisier(scanner, flat):
    light = np.full((500, N_PIXELS), 0.2, np.float32)
    dense = np.full((500, N_PIXELS), 3.0, np.float32)
    sd_light = measure(scanner, flat, light, light)[0].std()
    sd_dense = measure(scanner, flat, dense, dense)[0].std()
    # Poisson: sd of log-attenuation ~ 1/sqrt(N0 exp(-A)) grows by exp((3.0 - 0.2) / 2) = 4x.
    assert sd_dense / sd_light == pytest.approx(np.exp(1.4), rel=0.25)


def test_segmentation_finds_every_parcel_of_a_simulated_stream():
    from edge.config import SegmentConfig
    from edge.imaging.segment import Segmenter

    cfg = SimScannerConfig(realtime=False, seed=4, touch_share=0.0)
    sim = SimScanner(cfg)
    flat = capture_flatfield(sim, lines=256)
    seg_cfg = SegmentConfig()
    seg = Segmenter(seg_cfg, cfg.pitch_mm)
    segments, shows = [], {}
    while sim.line < 12_000:
        block = sim.read()
        segments += seg.feed(*correct(block.hi, block.lo, flat), block.t, block.encoder)
        for p in sim.placed:  # before the simulator lets go of the scene
            if p.id not in shows:
                shows[p.id] = visible_lines(sim, p, seg_cfg)
    passed = [p for p in sim.placed if sim.line_at_mm(p.end_mm(cfg.pitch_mm)) < sim.line - 200]
    assert len(passed) >= 8
    found = {}
    for s in segments:
        owners = [t for t in sim.truth(s.start_line, s.hi.shape[1])]
        assert len(owners) == 1, "one segment, one parcel"
        found[owners[0].parcel_id] = (s.start_line, s.start_line + s.hi.shape[1])
    margin = round(SegmentConfig().margin_mm / cfg.pitch_mm)
    for p in passed:
        start, stop = found[p.id]
        first, last = shows[p.id]
        # A few lines of detector noise either way at the parcel's faint ends.
        assert start <= first and first - start <= margin + 6
        assert stop >= last - 6 and stop - last <= margin + 6


def visible_lines(sim, placed, seg_cfg):
    """(first, last) line where the parcel's noise-free image has min_pixels pixels over the
    threshold. A box's walls reach its canvas to a couple of pixels; a yawed bag's rounded
    corners and thin fabric at its tips can leave 20-35 lines of canvas empty at each end."""
    over = (placed.scene.att_hi > seg_cfg.threshold).sum(axis=0) >= seg_cfg.min_pixels
    cols = np.flatnonzero(over)
    pitch = sim.config.pitch_mm
    return (sim.line_at_mm(placed.start_mm + cols[0] * pitch),
            sim.line_at_mm(placed.start_mm + (cols[-1] + 1) * pitch))
