"""``edge bench faults``: the fault soak matrix.

Every injectable fault, alone and in a few combinations, at a slow and a fast belt: each row
is one live run (real-time simulated scanner, the ground-truth stand-in detector, the
simulated belt PLC on a pseudo-terminal) in a process of its own, judged on what the
simulated diverter physically did. A row holds when no threat parcel passed, no command was
applied twice, the host counted exactly the commands the PLC never applied, and a fault that
breaks the output path raised an alarm.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

FAULT_AT_S = 1.5  # timed faults begin this far into each run
# One value per fault: strong enough to matter, short enough for a few seconds of belt.
SINGLE = {
    "noise": {"noise": 0.3},
    "corrupt": {"corrupt": 0.4},
    "drop-acks": {"drop_acks": 0.5},
    "ack-delay": {"ack_delay": 0.045},
    "plc-silent": {"plc_silent": 1.5},
    "nak-busy": {"nak_busy": 0.5},
    "plc-restart-memory": {"plc_restart_memory": True},
    "port-loss": {"port_loss": 1.5},
    "long-label": {"long_label": 1.0},
    "non-ascii-label": {"non_ascii_label": 1.0},
    "unreadable-label": {"unreadable_label": 1.0},
    "camera-down": {"camera_down": 2.0},
    "scanner-stall": {"scanner_stall": 1.5},
    "encoder-glitch": {"encoder_glitch": 500.0},
    "detector-stall": {"detector_stall": 2.0},
    # A crash shows only when the detector is called: the window holds a parcel's detection
    # even where the slow belt's stream has its longest gap.
    "detector-crash": {"detector_crash": 3.0},
    "modbus-timeout": {"modbus_timeout": 1.5},
}
COMBINED = {
    "corrupt+drop-acks+noise": {"corrupt": 0.3, "drop_acks": 0.3, "noise": 0.3},
    "port-loss+long-label": {"port_loss": 1.5, "long_label": 1.0},
    "detector-crash+plc-silent": {"detector_crash": 3.0, "plc_silent": 1.0},
    "unreadable-label+encoder-glitch": {"unreadable_label": 1.0, "encoder_glitch": 500.0},
}
# Faults the line rides through without harm (resends, unread labels matched by position):
# no alarm is owed for them.
# A restarted host cannot know what its predecessor left: the PLC's forgetting is the answer.
RIDDEN = {"noise", "corrupt", "drop-acks", "ack-delay", "nak-busy", "long-label",
          "non-ascii-label", "unreadable-label", "camera-down", "corrupt+drop-acks+noise",
          "plc-restart-memory"}
SPEEDS = (500.0, 3000.0)
SOAK_PIXELS = 256  # a narrow detector keeps the simulator real-time at 3,000 mm/s on 2 cores


def soak_config(name: str, faults: dict, speed: float, seed: int):
    from edge.config import EdgeConfig

    modbus = "modbus" in name
    return EdgeConfig(
        # Dense parcels on the slow belt, so a few seconds hold several; the fast belt keeps
        # the usual gaps, which the simulator renders about twice as fast as real time.
        scanner={"seed": seed, "belt_speed_mm_s": speed, "threat_share": 0.7,
                 "n_pixels": SOAK_PIXELS,
                 "gap_mm": (100.0, 300.0) if speed <= 1000 else (250.0, 900.0)},
        # Two seconds of belt between scanner and diverter: the simulator's bursts of parcel
        # composition must not be what makes a fast row miss its deadlines.
        plc={"type": "sim-modbus" if modbus else "sim",
             "diverter_distance_mm": max(3000.0, 2.0 * speed)},
        pipeline={"detector": "ground-truth"},
        faults={"at_s": FAULT_AT_S, **faults},
        calibration_dir=tempfile.mkdtemp(prefix="edge-soak-"))


def soak_row(name: str, faults: dict, speed: float, seconds: float, seed: int = 11) -> dict:
    """One live run with ``faults`` at ``speed`` mm/s for ``seconds``; its row."""
    from simulator.harness import SimulatedHub

    config = soak_config(name, faults, speed, seed)
    hub = SimulatedHub(config, log=lambda line: None, show=lambda parcel, verdict: None)
    started = time.monotonic()
    summary = hub.run(seconds)
    applied = Counter(hub.plc.stats.applied)
    never_applied = set(hub.issued) - hub.plc.applied_keys()
    counted_lost = {(link.epoch, key) for link in hub.links for key in link.stats.lost}
    # Counted lost yet applied: exact only where every ACK the host could hear was dropped.
    unheard = counted_lost - never_applied
    first = hub.failsafe.first_alarm_after(started + FAULT_AT_S)
    row = {
        "fault": name, "speed_mm_s": speed, "parcels": summary["belt_parcels"],
        "threat_parcels": summary["threat_parcels"],
        "passed_threats": summary["missed_threats"],
        "false_diverts": summary["false_diverts"], "uninspected": summary["uninspected"],
        "alarms": summary["alarms"], "alarm_kinds": summary["alarm_kinds"],
        "alarm_after_s": None if first is None else round(first - started - FAULT_AT_S, 2),
        "applied_twice": sum(n > 1 for n in applied.values()),
        "lost_counted": summary["lost_commands"], "lost_seen": len(never_applied),
        "lost_unheard": len(unheard),
    }
    owed = name not in RIDDEN
    row["ok"] = (row["passed_threats"] == 0 and row["applied_twice"] == 0
                 and never_applied <= counted_lost and unheard <= hub.plc.unheard_keys()
                 and row["lost_counted"] == len(counted_lost) and row["threat_parcels"] > 0
                 and (row["alarms"] > 0 or not owed))
    return row


def soak(seconds: float = 6.0, speeds=SPEEDS, names: list[str] | None = None,
         progress=None) -> list[dict]:
    """Every row of the matrix (``names`` picks some). Slow-belt rows run two at a time beside
    the fast ones: they mostly wait on the belt, while a fast row keeps a core busy."""
    matrix = SINGLE | COMBINED
    unknown = sorted(set(names or ()) - set(matrix))
    if unknown:
        raise ValueError(f"unknown faults {unknown}; valid: {', '.join(matrix)}")
    picked = [(n, matrix[n]) for n in (names or matrix)]
    spawn = multiprocessing.get_context("spawn")
    fast = [s for s in speeds if s > 1000]
    rows = []
    with ProcessPoolExecutor(1, mp_context=spawn) as fast_pool, \
            ProcessPoolExecutor(2, mp_context=spawn) as slow_pool:
        futures = [(fast_pool if speed in fast else slow_pool).submit(
            soak_row, name, faults, speed, seconds) for name, faults in picked
            for speed in speeds]
        for future in futures:
            rows.append(future.result())
            if progress:
                progress(rows[-1])
    return rows
