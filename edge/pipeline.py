"""The live loop: scanner lines -> correction -> parcels -> detection -> verdict -> PLC.

Stages run in threads joined by a bounded queue (onnxruntime and NumPy release the GIL):
the capture loop (this thread) reads, corrects and segments the line stream and opens each
parcel in the ``Ledger`` with its divert deadline; detector workers settle parcels with the
decision policy's verdict; a deadline watcher settles any parcel still open at its deadline as
``uninspected``. Every divert and every ``uninspected`` verdict goes to the belt PLC. A parcel
that finds the detector queue full is diverted uninspected: overload never drops a parcel.
"""

from __future__ import annotations

import json
import queue
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.capture import PhotoMatcher, load_or_capture_flatfield, open_scanner, to_parcel
from edge.config import EdgeConfig
from edge.decide import Policy
from edge.detect.parcel import GroundTruthDetector, ModelDetector
from edge.imaging.correct import correct
from edge.imaging.segment import Segmenter
from edge.ledger import Entry, Ledger, percentiles_ms, uninspected
from edge.plc.link import PlcLink
from edge.scanner.camera import open_camera
from edge.scanner.sim import SimScanner
from edge.types import Action, Parcel, Verdict


@dataclass
class Stages:
    """Stage timings (seconds) and the detector queue's depth, sampled per parcel."""

    capture: list[float] = field(default_factory=list)
    detect: list[float] = field(default_factory=list)
    queue_depth: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        return {"capture_block_ms": percentiles_ms(self.capture),
                "detect_ms": percentiles_ms(self.detect),
                "queue_max": max(self.queue_depth, default=0),
                "queue_mean": round(float(np.mean(self.queue_depth)), 2)
                if self.queue_depth else 0.0}


def open_detector(config: EdgeConfig):
    if config.pipeline.detector == "ground-truth":
        return GroundTruthDetector()
    return ModelDetector(config)


class Hub:
    """One inspection line: scanner, detector, decision, PLC (module docstring)."""

    def __init__(self, config: EdgeConfig, detector=None, link=None, plc=None,
                 log: Callable[[str], None] = print, show: Callable[[Parcel, Verdict], None]
                 | None = None, plc_options: dict | None = None):
        self.config, self.log = config, log
        self.scanner = open_scanner(config)
        self.flat = load_or_capture_flatfield(config, self.scanner, log)
        self.segmenter = Segmenter(config.segment, config.scanner.pitch_mm)
        self.camera = open_camera(config.camera, config.scanner.seed)
        cpm = config.scanner.encoder_counts_per_mm
        self.counts_per_mm = cpm
        self.matcher = PhotoMatcher(int(config.scanner.camera_offset_mm * cpm),
                                    int(config.segment.margin_mm * 2 * cpm))
        self.detector = detector if detector is not None else open_detector(config)
        self.policy = Policy.from_config(config, self.detector.classes)
        self.plc = plc
        if link is None and config.plc.type != "none":
            self.plc, link = open_plc(config, self.scanner, self.plc, **(plc_options or {}))
        self.link = link
        if link is not None and hasattr(link, "on_sent"):
            link.on_sent = lambda divert, t: self.ledger.mark_sent(divert.parcel_id, t)
        self.show = show or print_verdict
        self.ledger = Ledger()
        self.queue: queue.Queue[Entry | None] = queue.Queue(config.pipeline.queue)
        self.stages = Stages()
        self.true_ids: dict[int, list[str]] = {}
        self.threat_truth: dict[str, bool] = {}
        self._stop = threading.Event()
        self._emit_lock = threading.Lock()

    # --- stages -------------------------------------------------------------------------------

    def _open(self, parcel: Parcel, truths) -> Entry:
        cfg, speed = self.config, self.config.scanner.belt_speed_mm_s
        lead_mm = cfg.segment.margin_mm   # segments start this much belt ahead of the parcel
        travel_mm = lead_mm + cfg.plc.diverter_distance_mm
        deadline = float(parcel.t[0]) + travel_mm / speed - cfg.plc.margin_s
        divert_at = int(parcel.encoder[0] + travel_mm * self.counts_per_mm)
        self.true_ids[parcel.seq] = [t.parcel_id for t in truths]
        return self.ledger.open(parcel, deadline, divert_at)

    def _capture_once(self, seq: int) -> int:
        block = self.scanner.read()   # the scanner's own time (and real-time pacing) not ours
        started = time.monotonic()
        for arrival in self.scanner.poll_arrivals():
            self.matcher.add(self.camera.photograph(arrival.parcel_id, arrival.size_mm[:2],
                                                    arrival.kind, arrival.t, arrival.encoder))
            self._photo_eye(arrival)
        att_hi, att_lo = correct(block.hi, block.lo, self.flat)
        for seg in self.segmenter.feed(att_hi, att_lo, block.t, block.encoder):
            seq += 1
            truths = self.scanner.truth(seg.start_line, seg.hi.shape[1])
            entry = self._open(to_parcel(seg, seq, self.scanner, self.matcher), truths)
            self.stages.queue_depth.append(self.queue.qsize())
            try:
                self.queue.put_nowait(entry)
            except queue.Full:
                self._settle(entry, uninspected(entry, "overload: detector queue full"))
        self.stages.capture.append(time.monotonic() - started)
        return seq

    def _photo_eye(self, arrival) -> None:
        """Ground truth for outcome accounting: which parcels carry threats, and where."""
        placed = next((p for p in self.scanner.placed if p.id == arrival.parcel_id), None)
        if placed is not None:
            self.threat_truth[arrival.parcel_id] = bool(placed.scene.labels)
        if self.plc is not None and hasattr(self.plc, "expect"):
            travel = self.config.scanner.camera_offset_mm + self.config.plc.diverter_distance_mm
            self.plc.expect(arrival.parcel_id,
                            int(arrival.encoder + travel * self.counts_per_mm))

    def _work(self) -> None:
        while True:
            entry = self.queue.get()
            if entry is None:
                return
            parcel = entry.parcel
            if parcel is None or not self.ledger.is_open(entry.seq) \
                    or time.monotonic() >= entry.deadline:
                continue   # the watcher has settled it (or will, this instant)
            started = time.monotonic()
            try:
                found = self.detector(parcel)
                verdict = self.policy.decide(parcel.id, found)
            except Exception as exc:  # noqa: BLE001 - any detector fault fails closed
                verdict = uninspected(entry, f"detector error: {type(exc).__name__}: {exc}")
            self.stages.detect.append(time.monotonic() - started)
            verdict.deadline_t = entry.deadline
            self._settle(entry, verdict)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for entry in self.ledger.overdue(time.monotonic()):
                self._settle(entry, uninspected(entry, "no verdict by the deadline"))
            time.sleep(0.005)

    def _settle(self, entry: Entry, verdict: Verdict) -> None:
        parcel = entry.parcel
        won = self.ledger.settle(entry.seq, verdict, time.monotonic())
        if won is None:
            return
        if verdict.action in (Action.DIVERT, Action.UNINSPECTED) and self.link is not None:
            self.link.divert(entry.parcel_id, entry.divert_encoder)
        with self._emit_lock:
            self.show(parcel, verdict)
        entry.release()

    # --- run ------------------------------------------------------------------------------

    def run(self, duration_s: float | None = None, stop_plc: bool = True) -> dict:
        workers = [threading.Thread(target=self._work, daemon=True, name=f"detect-{k}")
                   for k in range(self.config.pipeline.workers)]
        watcher = threading.Thread(target=self._watch, daemon=True, name="deadlines")
        if self.link is not None:
            self.link.start()
        for t in (*workers, watcher):
            t.start()
        started, seq = time.monotonic(), 0
        try:
            while duration_s is None or time.monotonic() - started < duration_s:
                seq = self._capture_once(seq)
        except KeyboardInterrupt:
            pass
        self.capture_s = time.monotonic() - started
        for _ in workers:
            self.queue.put(None)
        self._drain()
        self._stop.set()
        summary = self.summary(time.monotonic() - started)
        if self.link is not None:
            self.link.stop()
        if stop_plc and self.plc is not None and hasattr(self.plc, "stop"):
            self.plc.stop()
        return summary

    def _drain(self) -> None:
        """Wait until every parcel has a verdict, its divert frame is out, and (with a
        simulated PLC) the belt has carried it past the diverter."""
        entries = self.ledger.snapshot()
        last = max((e.deadline for e in entries), default=time.monotonic())
        give_up = last + self.config.plc.margin_s + 2.0
        def done() -> bool:
            if self.ledger.open_entries():
                return False
            if self.link is not None and self.link.unacked:
                return False
            outcomes = self.plc.outcomes() if self.plc is not None and hasattr(
                self.plc, "outcomes") else None
            if outcomes is not None:
                return all(i in outcomes for e in entries for i in self.true_ids[e.seq]
                           if i in self.threat_truth)
            return True
        while not done() and time.monotonic() < give_up:
            time.sleep(0.01)

    def summary(self, elapsed_s: float) -> dict:
        entries = self.ledger.snapshot()
        settled = [e for e in entries if e.verdict is not None]
        actions = [e.verdict.action for e in settled]
        latencies = [(e.sent_at or e.settled_at) - e.last_line_t for e in settled]
        lost = list(getattr(getattr(self.link, "stats", None), "lost", []))
        outcomes = self.plc.outcomes() if self.plc is not None and hasattr(
            self.plc, "outcomes") else None
        cut = {i for e in entries for i in self.true_ids[e.seq]
               if i in self.threat_truth}
        if outcomes is not None:   # what the diverter physically did
            diverted = {i for i in cut if outcomes.get(i) == "diverted"}
            threats = {i for i in cut if self.threat_truth[i]}
            missed = len(threats - diverted)
            false = len(diverted - threats)
            n_diverted, n_threats = len(diverted), len(threats)
        else:                      # what we commanded
            divert = [a in (Action.DIVERT, Action.UNINSPECTED) for a in actions]
            threat = [bool(e.truth_labels) for e in settled]
            n_diverted, n_threats = sum(divert), sum(threat)
            missed = sum(t and not d for t, d in zip(threat, divert, strict=True))
            false = sum(d and not t for t, d in zip(threat, divert, strict=True))
        return {
            "parcels": len(entries), "threat_parcels": n_threats, "diverted": n_diverted,
            "missed_threats": missed, "false_diverts": false,
            "uninspected": actions.count(Action.UNINSPECTED),
            "undecided": len(entries) - len(settled), "lost_commands": len(lost),
            "latency_ms": percentiles_ms(latencies),
            "detector": getattr(self.detector, "name", type(self.detector).__name__),
            "belt_speed_mm_s": self.config.scanner.belt_speed_mm_s,
            "duration_s": round(elapsed_s, 2),
            "capture_s": round(getattr(self, "capture_s", elapsed_s), 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "stages": self.stages.summary(),
            "plc": plc_report(self.link, self.plc),
        }


def open_plc(config: EdgeConfig, scanner: SimScanner, plc=None, **sim_options):
    """(simulated PLC or None, host link) for ``config.plc``; ``sim_options`` go to SimPlc
    (its fault injection: corrupt, noise, drop_acks, ack_delay_s)."""
    cfg = config.plc
    if cfg.type == "sim":
        from edge.plc.sim import SimPlc
        plc = plc or SimPlc(scanner.encoder_now,
                            counts_per_mm=config.scanner.encoder_counts_per_mm, **sim_options)
        if not plc.path:
            plc.start()  # its pseudo-terminal exists from here on
        port = plc.path
    elif cfg.type == "modbus":
        from edge.plc.modbus import ModbusDivertLink
        return None, ModbusDivertLink(cfg.port, cfg.modbus, baudrate=cfg.baudrate,
                                      max_attempts=cfg.max_attempts, heartbeat_s=cfg.heartbeat_s)
    else:
        port = cfg.port
    return plc, PlcLink(port, cfg.baudrate, cfg.ack_timeout_s, cfg.max_attempts, cfg.heartbeat_s)


def plc_report(link, plc) -> dict:
    out: dict = {}
    stats = getattr(link, "stats", None)
    if stats is not None:
        out["link"] = {k: (len(v) if isinstance(v, list) else v)
                       for k, v in vars(stats).items()}
    sim_stats = getattr(plc, "stats", None)
    if sim_stats is not None:
        out["sim_plc"] = {k: (len(v) if isinstance(v, list) else v)
                          for k, v in vars(sim_stats).items()}
    return out


class StartError(RuntimeError):
    """The line could not be built (no model, a bad model, a bad threshold table)."""


def run(config: EdgeConfig, duration_s: float | None = None, summary_path: Path | None = None,
        **kwargs) -> int:
    from edge.detect.model import ModelError
    try:
        hub = Hub(config, **kwargs)
    except (ModelError, ValueError) as exc:
        raise StartError(str(exc)) from exc
    hub.log(f"detector: {getattr(hub.detector, 'name', '?')}; PLC: {config.plc.type}")
    summary = hub.run(duration_s)
    if summary_path:
        Path(summary_path).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


def print_verdict(parcel: Parcel, verdict: Verdict) -> None:
    truth = ", ".join(parcel.truth_labels) or "none"
    found = f" ({verdict.reason})" if verdict.reason else ""
    print(f"parcel {parcel.id}: {verdict.action.value}{found}; {parcel.shape[1]} lines, "
          f"simulated threats: {truth}", flush=True)


