"""The live loop on a scanner that is not the simulator: raw line blocks and photo-eye events
over TCP, sent by a stand-in for the acquisition PC. The simulator only feeds the sender; the
hub is built from config as a hub with a real scanner is (``Hub.from_config``)."""

import json
import threading
import time
from pathlib import Path

import pytest

from edge.capture import capture_flatfield, flatfield_path
from edge.config import EdgeConfig
from edge.pipeline import Hub
from edge.sources.tcp_sender import LineSender
from simulator.scanner import SimScanner

pytestmark = pytest.mark.slow

RECORDED = Path(__file__).parent / "data" / "verdicts_seed7.json"


def send_the_belt(sender: LineSender, scanner: SimScanner, seconds: float) -> None:
    """Stream the simulated belt as an acquisition PC would, in real time, then say goodbye."""
    sender.wait_client(10.0)
    end = scanner.line + seconds * scanner.config.line_rate_hz
    while scanner.line < end:
        block = scanner.read()
        for event in scanner.poll_events():
            sender.send_event(event)
        sender.send_block(block)
    sender.send_end()


def test_the_live_loop_inspects_a_tcp_line_stream(tmp_path):
    sim_config = EdgeConfig(scanner={"seed": 7, "belt_speed_mm_s": 1500,
                                     "threat_share": 0.5}).scanner
    scanner = SimScanner(sim_config)
    geometry = {k: getattr(sim_config, k) for k in (
        "belt_speed_mm_s", "n_pixels", "pitch_mm", "low_kev", "high_kev",
        "encoder_counts_per_mm", "camera_offset_mm")}
    sender = LineSender()
    config = EdgeConfig(scanner={"type": "tcp", "port": sender.port, **geometry},
                        camera={"type": "none"},
                        plc={"type": "none", "diverter_distance_mm": 4000},
                        calibration_dir=tmp_path)
    # The tables the scanner's own calibration wrote (taken before the stream, as the
    # simulated line takes them at power-up).
    capture_flatfield(scanner).save(flatfield_path(config))
    verdicts = []
    hub = Hub.from_config(config, log=lambda _: None,
                          show=lambda parcel, verdict: verdicts.append((parcel, verdict)))
    feeder = threading.Thread(target=send_the_belt, args=(sender, scanner, 9.0), daemon=True)
    feeder.start()
    started = time.monotonic()
    try:
        summary = hub.run(60.0)
    finally:
        sender.close()
    assert time.monotonic() - started < 30, "the run did not end with the stream"
    assert summary["uninspected"] == 0 and summary["undecided"] == 0, summary
    assert summary["alarms"] == 0, summary["alarm_kinds"]
    assert "missed_threats" not in summary   # a real line knows no truth
    # Same lines, same code: the verdicts the simulated line gave on this seed.
    recorded = json.loads(RECORDED.read_text())
    got = sorted(((p.seq, int(p.shape[1]), v.action.value) for p, v in verdicts))
    want = [(r["seq"], r["lines"], r["action"]) for r in recorded]
    # Parcels cut at the very end of the 9 s stream depend on when each run stopped reading:
    # every parcel both runs decided must agree, and that is at least the first ten.
    common = min(len(got), len(want))
    assert common >= 10 and got[:common] == want[:common]
    # No camera: parcels are named by sequence.
    assert all(p.id.startswith("UNREAD") for p, _ in verdicts)


def test_a_timed_run_ends_on_time_while_the_scanner_is_silent(tmp_path):
    sender = LineSender()
    config = EdgeConfig(scanner={"type": "tcp", "port": sender.port, "read_wait_s": 0.2},
                        camera={"type": "none"}, plc={"type": "none"},
                        calibration_dir=tmp_path)
    capture_flatfield(SimScanner(EdgeConfig().scanner)).save(flatfield_path(config))
    hub = Hub.from_config(config, log=lambda _: None, show=lambda parcel, verdict: None)
    started = time.monotonic()
    try:
        summary = hub.run(2.0)
    finally:
        sender.close()
    assert time.monotonic() - started < 10, "a silent scanner held the run past its duration"
    assert summary["parcels"] == 0 and "scanner-stall" in summary["alarm_kinds"]
    assert "capture-error" not in summary["alarm_kinds"]   # a pause is not a fault
