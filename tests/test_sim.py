"""The simulated scanner: detector physics, belt kinematics, determinism, ground truth."""

import hashlib
from collections import Counter

import numpy as np
import pytest

from edge.config import SimScannerConfig
from simulator.column import DetectorModel
from simulator.scanner import SimScanner


def config(**overrides) -> SimScannerConfig:
    return SimScannerConfig(realtime=False, **overrides)


def digest(scanner: SimScanner, blocks: int) -> str:
    h = hashlib.sha256()
    for _ in range(blocks):
        block = scanner.read()
        h.update(block.hi.tobytes() + block.lo.tobytes() + block.encoder.tobytes())
    return h.hexdigest()


def test_same_seed_same_stream_other_seed_other_stream():
    assert digest(SimScanner(config(seed=5)), 24) == digest(SimScanner(config(seed=5)), 24)
    assert digest(SimScanner(config(seed=5)), 24) != digest(SimScanner(config(seed=6)), 24)


def test_detector_noise_follows_photon_statistics():
    cfg = config(n_pixels=64, gain_spread=0.0, dark_spread=0.0, dead_pixels=0,
                 electronic_noise=2.0)
    det = DetectorModel.draw(cfg, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    att = np.full((4000, 64), 1.5, np.float32)  # a uniform slab: exp(-1.5) = 22 % transmission
    hi, lo = det.expose(att * 0.8, att, rng)
    for raw, photons in ((hi, cfg.photons_high), (lo, cfg.photons_low)):
        signal = raw.astype(np.float64) - cfg.dark_counts
        scale = cfg.air_counts / photons  # ADC counts per photon
        mean_photons = photons * np.exp(-1.5 if raw is hi else -1.2)
        assert signal.mean() == pytest.approx(mean_photons * scale, rel=0.01)
        expected_sd = np.sqrt(mean_photons * scale ** 2 + cfg.electronic_noise ** 2)
        assert signal.std() == pytest.approx(expected_sd, rel=0.05)


def test_detector_non_uniformity_and_dead_pixels():
    cfg = config(n_pixels=256, dead_pixels=4)
    det = DetectorModel.draw(cfg, np.random.default_rng(3))
    hi, _ = det.expose(*(np.zeros((200, 256), np.float32),) * 2, np.random.default_rng(4))
    per_pixel = hi.mean(axis=0)
    assert per_pixel.std() / per_pixel.mean() > 0.04  # visible gain non-uniformity
    assert np.all(per_pixel[det.dead] < cfg.dark_counts + 5 * cfg.dark_spread)
    alive = np.setdiff1d(np.arange(256), det.dead)
    assert per_pixel[alive].min() > 0.3 * cfg.air_counts


def test_belt_speed_wobbles_around_nominal_and_encoder_tracks_it():
    cfg = config(speed_jitter=0.05)
    scanner = SimScanner(cfg)
    lines = np.arange(0, 200_000)
    speed = np.diff(scanner.belt_mm(lines)) / cfg.pitch_mm  # relative to nominal
    assert speed.min() > 0
    assert speed.mean() == pytest.approx(1.0, abs=0.01)
    assert speed.std() == pytest.approx(0.05, rel=0.2)
    block = scanner.read(500)
    assert np.all(np.diff(block.encoder) >= 0)
    assert np.diff(block.t) == pytest.approx(1 / cfg.line_rate_hz)
    travel = (block.encoder[-1] - block.encoder[0]) / cfg.encoder_counts_per_mm
    assert travel == pytest.approx(float(np.ptp(scanner.belt_mm(np.arange(500)))), abs=1)


def test_parcels_arrive_with_gaps_and_carry_their_threat_boxes():
    cfg = config(seed=2, threat_share=1.0, touch_share=0.0)
    scanner = SimScanner(cfg)
    parcels = scanner.parcels()
    first, second = next(parcels), next(parcels)
    gap = second.start_mm - first.end_mm(cfg.pitch_mm)
    assert cfg.gap_mm[0] <= gap <= cfg.gap_mm[1]
    start, count = scanner.span_of(first, margin_mm=0)
    att_lo, att_hi = scanner.ideal_lines(start, count)
    truth = [t for t in scanner.truth(start, count) if t.parcel_id == first.id][0]
    assert truth.labels == first.scene.labels and len(truth.labels) >= 1
    for x1, y1, x2, y2 in truth.boxes.astype(int):
        inside = att_hi[x1:x2, y1:y2]  # lines x pixels
        assert inside.size and inside.max() > 0.5, "a threat box must cover dense material"
    # Outside the parcel the belt is empty.
    before, _ = scanner.ideal_lines(max(start - 40, 0), 30)
    assert np.all(before == 0)


def test_calibration_captures():
    scanner = SimScanner(config(n_pixels=128))
    dark = scanner.capture_calibration(64, source_on=False)
    air = scanner.capture_calibration(64, source_on=True)
    assert dark.hi.mean() < 2 * scanner.config.dark_counts
    assert air.hi.mean() > 0.5 * scanner.config.air_counts


def test_items_fit_the_parcel_depth():
    """A long item cannot stand on end in a shallow box: its reach along the beam stays
    within the container's depth."""
    from simulator.parcels import Container, ScanGeometry, place
    from simulator.solids import Item, beam_depth_mm, rod, rotation
    geo = ScanGeometry(768, 1.0, (50.0, 80.0))
    box = Container("box", (450.0, 384.0), 800.0, 600.0, 100.0, 0.0)
    baton = Item("rod", rod((-200.0, 0.0), (200.0, 0.0), 12.0, "steel", geo.cell_mm))
    rng = np.random.default_rng(0)
    assert beam_depth_mm(baton, rotation(0.0, 90.0, 90.0)) > 390
    for _ in range(50):
        fp = place(baton, box, rng, geo, tries=30)
        assert fp is not None
        x0, y0, x1, y1 = fp.box
        # At most 100 mm of the 400 mm rod points along the beam: it lies near flat.
        assert np.hypot(x1 - x0, y1 - y0) >= np.sqrt(400 ** 2 - 100 ** 2) - 5


def test_grey_labels_only_what_grey_shows():
    """A 0.1 mm steel blade over organic clutter shows in colour only; a steel bar shows in
    both. The visibility call follows the grey view's own contrast."""
    from simulator.parcels import visible_in_grey
    from simulator.solids import Footprint
    clutter = np.full((40, 40), 2.0, np.float32)
    thin = np.zeros((20, 20), np.float32) + 0.02 * 3
    thick = np.zeros((20, 20), np.float32) + 1.5
    for own, expect in ((thin, False), (thick, True)):
        total = clutter.copy()
        total[10:30, 10:30] += own
        assert visible_in_grey(Footprint(own, own, 10, 10), total) is expect
    # Behind clutter that already stops the beam nothing is callable.
    opaque = np.full((40, 40), 9.0, np.float32)
    opaque[10:30, 10:30] += thick
    assert visible_in_grey(Footprint(thick, thick, 10, 10), opaque) is False


def test_writer_labels_grey_images_only_with_what_grey_shows(tmp_path, monkeypatch):
    import json

    from edge.config import EdgeConfig
    from simulator import parcels
    from simulator.dataset import write_dataset
    config = EdgeConfig()
    config = config.model_copy(update={"scanner": config.scanner.model_copy(
        update={"threat_share": 1.0})})
    counts = {}
    for name, visible in (("seen", True), ("unseen", False)):
        monkeypatch.setattr(parcels, "visible_in_grey", lambda fp, total, v=visible: v)
        write_dataset(config, 2, tmp_path / name, seed=5, raw_and_photo=False)
        coco = json.loads((tmp_path / name / "annotations.json").read_text())
        render = {im["id"]: im["render"] for im in coco["images"]}
        counts[name] = Counter(render[a["image_id"]] for a in coco["annotations"])
    assert counts["seen"]["colour"] >= 1
    assert counts["seen"]["grey"] == counts["seen"]["colour"] == counts["unseen"]["colour"]
    assert counts["unseen"]["grey"] == 0
