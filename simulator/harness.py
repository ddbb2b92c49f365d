"""The simulation harness: a ``Hub`` on the simulated belt, and what only a simulation knows.

``SimulatedHub`` runs the live loop unchanged on the simulated scanner, camera and belt PLC,
and adds the ground truth around it: each parcel cut carries the simulator's threat boxes
(for the ``GroundTruthDetector`` stand-in and for scoring), the photo-eye tells the simulated
PLC where each parcel is, and the summary counts missed threats and false diverts from what
the simulated diverter physically did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.capture import capture_flatfield, flatfield_path, load_or_capture_flatfield
from edge.config import EdgeConfig, dump_config
from edge.detect.parcel import ModelDetector
from edge.faults import Faults
from edge.imaging.segment import Segment
from edge.pipeline import Hub, new_link
from edge.sources.camera import open_camera
from edge.sources.recording import Recorder
from edge.types import Detections, Parcel, Photo, Verdict
from simulator.camera import SimCamera
from simulator.phantoms import THREAT_CLASSES
from simulator.scanner import Arrival, SimScanner


class GroundTruthDetector:
    """A stand-in that reports the simulator's own threat boxes, so the loop, the decision and
    the PLC path can be tested without a model; its name says so in every summary."""

    name = "ground-truth stand-in (simulator labels, not a model)"
    version = None
    classes: tuple[str, ...] = THREAT_CLASSES

    def __init__(self, delay_s: float = 0.0, score: float = 0.99):
        self.delay_s, self.score = delay_s, score

    def __call__(self, parcel: Parcel) -> Detections:
        if self.delay_s:
            time.sleep(self.delay_s)
        if parcel.truth is None:
            raise ValueError(f"parcel {parcel.id} carries no ground truth: the stand-in "
                             f"detector only works on simulated parcels")
        truth = parcel.truth
        return Detections(truth.xyxy, np.full(len(truth), self.score, np.float32),
                          truth.class_id)


class SimTopCamera:
    """The simulated camera behind the live loop's ``Camera``: the photo-eye's events on the
    simulated belt are ``Arrival``s, which name the parcel the camera is to draw."""

    def __init__(self, camera: SimCamera):
        self.camera = camera

    def photograph(self, event: Arrival) -> Photo:
        return self.camera.photograph(event.parcel_id, event.size_mm[:2], event.kind, event.t,
                                      event.encoder)

    def close(self) -> None:
        pass


def calibrate_flatfield(config: EdgeConfig, lines: int = 512, out: Path | None = None) -> Path:
    """Capture dark (source off) and air (empty belt) lines of the simulated scanner and write
    the correction tables."""
    path = Path(out) if out else flatfield_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    capture_flatfield(SimScanner(config.scanner), lines).save(path)
    return path


def simulated_plc(config: EdgeConfig, scanner: SimScanner, **options):
    """The simulated belt PLC of ``plc.type`` sim (framed protocol) or sim-modbus; ``options``
    are its fault injection (corrupt, noise, drop_acks, ack_delay_s, nak_busy)."""
    common = {"counts_per_mm": config.scanner.encoder_counts_per_mm}
    if config.plc.type == "sim-modbus":
        from simulator.modbus_plc import SimModbusPlc
        options = {k: v for k, v in options.items() if k in ("drop_acks", "nak_busy") and v}
        return SimModbusPlc(scanner.encoder_now, modbus_map=config.plc.modbus, **common,
                            **options)
    from simulator.plc import SimPlc
    return SimPlc(scanner.encoder_now, heartbeat_s=config.plc.heartbeat_s, **common, **options)


class SimulatedHub(Hub):
    """The live loop on the simulated belt, scored against the simulator's ground truth.

    ``plc`` and ``link`` replace the simulated PLC and the host link ``plc.type`` names;
    ``plc_options`` add to the simulated PLC's fault injection."""

    def __init__(self, config: EdgeConfig, detector=None, link=None, plc=None,
                 log: Callable[[str], None] = print,
                 show: Callable[[Parcel, Verdict], None] | None = None,
                 plc_options: dict | None = None, record: Path | None = None,
                 record_max_bytes: int | None = None):
        seed = config.scanner.seed
        scanner = SimScanner(config.scanner)
        flat = load_or_capture_flatfield(config, scanner, log)
        camera = SimTopCamera(SimCamera(config.camera, seed)) if config.camera.type == "sim" \
            else open_camera(config.camera)
        if detector is None:
            detector = GroundTruthDetector() if config.pipeline.detector == "ground-truth" \
                else ModelDetector(config)
        if link is None and config.plc.type != "none":
            options = Faults(config.faults).plc_options() | (plc_options or {})
            if plc is None and config.plc.type in ("sim", "sim-modbus"):
                plc = simulated_plc(config, scanner, **options)
            if plc is not None and not plc.path:
                plc.start()   # its pseudo-terminal exists from here on
            link = new_link(config, plc.path if plc is not None else config.plc.port)
        self.sim, self.plc = scanner, plc
        self.threat_truth: dict[str, bool] = {}   # parcel ID -> carries a threat
        self.belt_edges: dict[str, int] = {}      # parcel ID -> its edge at the diverter
        recorder = Recorder(record, dump_config(config), flat, record_max_bytes) \
            if record is not None else None
        super().__init__(config, scanner, flat, detector, camera=camera, link=link, log=log,
                         show=show or print_verdict_and_truth, seed=seed, recorder=recorder)

    def belt_event(self, event: Arrival) -> None:
        placed = next((p for p in self.sim.placed if p.id == event.parcel_id), None)
        if placed is not None:
            self.threat_truth[event.parcel_id] = bool(placed.scene.labels)
        travel = self.config.scanner.camera_offset_mm + self.config.plc.diverter_distance_mm
        edge = int(event.encoder + travel * self.counts_per_mm)
        self.belt_edges[event.parcel_id] = edge
        if self.plc is not None:
            self.plc.expect(event.parcel_id, edge)

    def parcel_cut(self, parcel: Parcel, segment: Segment) -> None:
        truths = self.sim.truth(segment.start_line, segment.hi.shape[1])
        boxes = [t.boxes for t in truths]
        labels = [lab for t in truths for lab in t.labels]
        parcel.truth = Detections(np.concatenate(boxes) if boxes else np.zeros((0, 4)),
                                  np.ones(len(labels)),
                                  [THREAT_CLASSES.index(lab) for lab in labels])
        parcel.truth_labels = labels
        if self.recorder is not None:
            self.recorder.truth(parcel)

    def belt_clear(self) -> bool:
        if self.plc is None:
            return True
        outcomes = self.plc.outcomes()
        return all(i in outcomes for i in self._accounted())

    def _inject_timed_faults(self) -> None:
        super()._inject_timed_faults()
        now, faults, cfg = time.monotonic(), self.faults, self.config.faults
        if faults.silent.fire_once(now):
            self.plc.go_silent(cfg.plc_silent)
        if faults.modbus.fire_once(now):
            self.plc.stop_answering(cfg.modbus_timeout)
        if faults.port.fire_once(now):
            self.plc.lose_port(cfg.port_loss)

    def run(self, duration_s: float | None = None, stop_plc: bool = True) -> dict:
        summary = super().run(duration_s)
        if stop_plc and self.plc is not None:
            self.plc.stop()
        return summary

    def _accounted(self) -> dict[str, int]:
        """Parcels the belt carried up to the last one cut (parcel ID -> edge at the
        diverter): those a run answers for, scanned or not."""
        entries = self.ledger.snapshot()
        if not entries:
            return {}
        horizon = max(e.divert_encoder for e in entries) + \
            int(self.config.segment.margin_mm * 2 * self.counts_per_mm)
        return {pid: edge for pid, edge in self.belt_edges.items() if edge <= horizon}

    def summary(self, elapsed_s: float) -> dict:
        """The hub's summary with the truth added: ``threat_parcels``, ``missed_threats`` and
        ``false_diverts``, counted from what the simulated diverter did (or, without a
        simulated PLC, from what the protocol made of the commands)."""
        out = super().summary(elapsed_s)
        outcomes = self.plc.outcomes() if self.plc is not None else None
        if outcomes is not None:   # what the diverter physically did
            accounted = [i for i in self._accounted() if i in outcomes]
            diverted = {i for i in accounted if outcomes[i] == "diverted"}
            threats = {i for i in accounted if self.threat_truth.get(i)}
            n_parcels = len(accounted)
            out["plc"]["sim_plc"] = self.plc.stats.report()
            out.update({"belt_parcels": n_parcels, "threat_parcels": len(threats),
                        "diverted": len(diverted), "missed_threats": len(threats - diverted),
                        "false_diverts": len(diverted - threats)})
            return out
        # What the protocol made of the commands, over the whole run (the ledger's totals).
        ledger = self.ledger
        out.update({"belt_parcels": ledger.opened, "threat_parcels": ledger.threats,
                    "missed_threats": ledger.released(threats=True),
                    "false_diverts": ledger.opened - ledger.threats
                    - ledger.released(threats=False)})
        return out


def print_verdict_and_truth(parcel: Parcel, verdict: Verdict) -> None:
    truth = ", ".join(parcel.truth_labels) or "none"
    found = f" ({verdict.reason})" if verdict.reason else ""
    print(f"parcel {parcel.id}: {verdict.action.value}{found}; {parcel.shape[1]} lines, "
          f"simulated threats: {truth}", flush=True)


def seed7_verdicts(calibration_dir: Path, parcels: int = 12,
                   limit_s: float = 60.0) -> tuple[list[dict], dict]:
    """The run ``tests/data/verdicts_seed7.json`` records (the shipped model on seed 7, the
    diverter far enough for a busy machine to inspect every parcel), ended once ``parcels``
    verdicts are in (a busy machine renders the stream more slowly): its verdicts in seq
    order (seq, parcel ID, lines, action, simulated truth) and its summary."""
    config = EdgeConfig(scanner={"seed": 7, "belt_speed_mm_s": 1500, "threat_share": 0.5},
                        plc={"type": "none", "diverter_distance_mm": 9000},
                        calibration_dir=calibration_dir)
    seen = []

    def show(p: Parcel, v: Verdict) -> None:
        seen.append({"seq": p.seq, "id": p.id, "lines": int(p.shape[1]),
                     "action": v.action.value, "truth": sorted(p.truth_labels)})
        if len(seen) >= parcels:
            hub.halt()

    hub = SimulatedHub(config, log=lambda _: None, show=show)
    summary = hub.run(limit_s)
    return sorted(seen, key=lambda row: row["seq"]), summary
