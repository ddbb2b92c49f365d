"""The live loop: scanner lines -> correction -> parcels -> detection -> verdict -> PLC.

Stages run in threads joined by a bounded queue (onnxruntime and NumPy release the GIL):
the capture loop (this thread) reads, corrects and segments the line stream and opens each
parcel in the ``Ledger`` with its divert deadline; detector workers settle parcels with the
decision policy's verdict; a deadline watcher settles any parcel still open at its deadline as
``uninspected``. Every parcel's verdict becomes one PLC command: a release for a clear parcel,
a divert for any other. The PLC diverts every parcel it holds no release for, so a verdict
that never reaches it fails closed. Every fault lands in one place, ``FailSafe``: an alarm,
and the PLC told to divert everything until the fault has passed. No stage thread dies of an
exception: a supervisor counts it as a fault and runs the stage again.
"""

from __future__ import annotations

import json
import queue
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.capture import (
    PhotoMatcher,
    encoder_break,
    load_or_capture_flatfield,
    open_scanner,
    to_parcel,
)
from edge.config import EdgeConfig
from edge.decide import Policy
from edge.detect.parcel import GroundTruthDetector, ModelDetector
from edge.failsafe import FailSafe
from edge.faults import Faults, InjectedCrash
from edge.imaging.correct import correct
from edge.imaging.segment import Segmenter
from edge.ledger import Entry, Ledger, percentiles_ms, uninspected
from edge.plc.frames import RELEASE, Command
from edge.plc.link import PlcLink
from edge.scanner.camera import open_camera
from edge.scanner.sim import SimScanner
from edge.types import Action, Parcel, Verdict

DIVERT_LANE = 1  # manual inspection


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
        self.faults = Faults(config.faults, seed=config.scanner.seed)
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
        self.failsafe = FailSafe(config.pipeline.failsafe_hold_s, log, self._tell_plc)
        self.plc = plc
        self.links: list = []   # every host session's link (more than one after a restart)
        self.link = None
        self._output_open = False
        if link is None and config.plc.type != "none":
            options = self.faults.plc_options() | (plc_options or {})
            self.plc, link = open_plc(config, self.scanner, self.plc, **options)
        if link is not None:
            self.attach(link)
        self.show = show or print_verdict
        self.ledger = Ledger()
        self.queue: queue.Queue[Entry | None] = queue.Queue(config.pipeline.queue)
        self.stages = Stages()
        self.true_ids: dict[int, list[str]] = {}
        self.threat_truth: dict[str, bool] = {}
        self.belt_edges: dict[str, int] = {}   # photo-eye: parcel ID -> edge at the diverter
        self.issued: list[tuple[int, int]] = []   # (epoch, key) of every command sent
        self._key_base = 0   # keys restart from 1 in each host session
        self._last_encoder: int | None = None
        self._last_block_at = time.monotonic()
        self._stalled = False
        self._calls: dict[str, float] = {}   # detector thread -> start of its call in progress
        self._hung: dict[str, float] = {}    # detector thread -> start of the call reported
        self._stop = threading.Event()
        self._capturing = threading.Event()   # the scanner is expected to deliver lines
        self._emit_lock = threading.Lock()

    def attach(self, link) -> None:
        """Make ``link`` the PLC link of this host session: its outcomes reach the ledger and
        its faults the fail-safe, and its heartbeats carry the fail-safe's state."""
        link.on_done = self._command_done
        link.on_sent = self._command_sent
        link.on_fault = self.failsafe.fault
        link.fail_closed = self.failsafe.active
        self.link = link
        self.links.append(link)

    def open_output(self) -> None:
        """Open the PLC link's port and start it (once); a port that cannot be opened
        raises here, before any parcel is inspected."""
        if self.link is not None and not self._output_open:
            self.link.start()
            self._output_open = True

    def _tell_plc(self, failing: bool) -> None:
        if self.link is not None:
            self.link.fail_closed = failing

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
        self._inject_timed_faults()
        block = self.scanner.read()   # the scanner's own time (and real-time pacing) not ours
        started = self._last_block_at = time.monotonic()
        if self.faults.glitch.fire_once(started):
            jump = int(self.config.faults.encoder_glitch * self.counts_per_mm)
            block.encoder[:] += jump
        for arrival in self.scanner.poll_arrivals():
            if not self.faults.camera.on(started):
                self.matcher.add(self.camera.photograph(arrival.parcel_id, arrival.size_mm[:2],
                                                        arrival.kind, arrival.t,
                                                        arrival.encoder))
            self._photo_eye(arrival)
        broken = encoder_break(self._last_encoder, block.encoder,
                               self.config.scanner.pitch_mm * self.counts_per_mm)
        self._last_encoder = int(block.encoder[-1])
        if broken:
            # Positions cannot be trusted across the break: a parcel cut across it would be
            # released at the wrong place. It is never emitted, so the PLC diverts it.
            self.segmenter.discard()
            self.failsafe.fault("encoder-glitch", broken)
        att_hi, att_lo = correct(block.hi, block.lo, self.flat)
        for seg in self.segmenter.feed(att_hi, att_lo, block.t, block.encoder):
            seq += 1
            truths = self.scanner.truth(seg.start_line, seg.hi.shape[1])
            parcel = to_parcel(seg, seq, self.scanner, self.matcher, self.faults.label)
            entry = self._open(parcel, truths)
            self.stages.queue_depth.append(self.queue.qsize())
            try:
                self.queue.put_nowait(entry)
            except queue.Full:
                self.failsafe.fault("overload", "the detector queue is full")
                self._settle(entry, uninspected(entry, "overload: detector queue full"))
        self.stages.capture.append(time.monotonic() - started)
        return seq

    def _inject_timed_faults(self) -> None:
        now, faults = time.monotonic(), self.faults
        if faults.stall.fire_once(now):
            time.sleep(self.config.faults.scanner_stall)   # then the backlog arrives late
        if faults.silent.fire_once(now):
            self.plc.go_silent(self.config.faults.plc_silent)
        if faults.modbus.fire_once(now):
            self.plc.stop_answering(self.config.faults.modbus_timeout)
        if faults.port.fire_once(now):
            self.plc.lose_port(self.config.faults.port_loss)
        if faults.restart.fire_once(now) and self.link is not None:
            self._restart_host()

    def _restart_host(self) -> None:
        """Emulate a host restart (``plc-restart-memory``): the old session's link dies with
        what it had queued, a new one starts with a new epoch and keys from 1 again, and
        parcels seen before the restart get no command from it."""
        old = self.link
        old.on_done = old.on_sent = old.on_fault = None   # a dead host hears nothing
        old.stop()
        self._key_base = max(self.ledger.entries, default=0)
        new = new_link(self.config, old.url)
        self.attach(new)
        new.start()
        self.log(f"host restarted: new session epoch {new.epoch:#010x}")

    def _photo_eye(self, arrival) -> None:
        """Ground truth for outcome accounting: which parcels carry threats, and where."""
        placed = next((p for p in self.scanner.placed if p.id == arrival.parcel_id), None)
        if placed is not None:
            self.threat_truth[arrival.parcel_id] = bool(placed.scene.labels)
        travel = self.config.scanner.camera_offset_mm + self.config.plc.diverter_distance_mm
        edge = int(arrival.encoder + travel * self.counts_per_mm)
        self.belt_edges[arrival.parcel_id] = edge
        if self.plc is not None:
            self.plc.expect(arrival.parcel_id, edge)

    def _detect(self, parcel: Parcel):
        now = time.monotonic()
        if self.faults.crash.on(now):
            raise InjectedCrash("detector-crash fault")
        if self.faults.detector_hang.fire_once(now):
            time.sleep(self.config.faults.detector_stall)
        return self.detector(parcel)

    def _work_once(self) -> bool:
        """Settle the next queued parcel; False when told to stop."""
        entry = self.queue.get()
        if entry is None:
            return False
        parcel = entry.parcel
        if parcel is None or not self.ledger.is_open(entry.seq) \
                or time.monotonic() >= entry.deadline:
            return True   # the watcher has settled it (or will, this instant)
        started = time.monotonic()
        worker = threading.current_thread().name
        self._calls[worker] = started
        try:
            found = self._detect(parcel)
            verdict = self.policy.decide(parcel.id, found)
        except Exception as exc:  # noqa: BLE001 - any detector fault fails closed
            self.failsafe.fault("detector-error", f"{type(exc).__name__}: {exc}")
            verdict = uninspected(entry, f"detector error: {type(exc).__name__}: {exc}")
        finally:
            self._calls.pop(worker, None)
        self.stages.detect.append(time.monotonic() - started)
        verdict.deadline_t = entry.deadline
        self._settle(entry, verdict)
        return True

    def _watch_once(self) -> bool:
        now = time.monotonic()
        for entry in self.ledger.overdue(now):
            self.failsafe.fault("deadline-missed", f"parcel {entry.parcel_id} has no verdict "
                                "by its deadline")
            self._settle(entry, uninspected(entry, "no verdict by the deadline"))
        limit = self.config.pipeline.stall_s
        quiet = now - self._last_block_at if self._capturing.is_set() else 0.0
        if quiet > limit and not self._stalled:
            self.failsafe.fault("scanner-stall", f"no line block for {quiet:.2f} s")
        self._stalled = quiet > limit
        for worker, since in list(self._calls.items()):
            if now - since > limit and self._hung.get(worker) != since:
                self._hung[worker] = since
                self.failsafe.fault("detector-stall", f"{worker}: one call has run for "
                                    f"{now - since:.2f} s")
        self.failsafe.tick()
        time.sleep(0.005)
        return not self._stop.is_set()

    def _settle(self, entry: Entry, verdict: Verdict) -> None:
        try:
            won = self.ledger.settle(entry.seq, verdict, time.monotonic())
            if won is None:
                return
            self._command(entry, verdict)
            with self._emit_lock:
                self.show(entry.parcel, verdict)
        except Exception as exc:  # noqa: BLE001 - the output path fails closed, never stops
            self.failsafe.fault("output-error", f"parcel {entry.parcel_id}: "
                                f"{type(exc).__name__}: {exc}")
        finally:
            if entry.verdict is verdict:
                entry.release()

    def _command(self, entry: Entry, verdict: Verdict) -> None:
        """One command per parcel: a release only for a clear verdict while nothing is
        failing; a parcel from before a host restart gets none (the new host never saw it)."""
        if self.link is None or entry.seq <= self._key_base:
            return
        lane = RELEASE if verdict.action == Action.CLEAR and not self.failsafe.active \
            else DIVERT_LANE
        if lane != RELEASE and verdict.action == Action.CLEAR:
            verdict.reason = "; ".join(filter(None, [verdict.reason, "diverted all the same: "
                                                     "the line fails closed"]))
        self.ledger.commanded(entry, lane)
        arrives = entry.deadline + self.config.plc.margin_s
        command = self.link.send(entry.seq - self._key_base, entry.divert_encoder, lane,
                                 entry.parcel_id, expires_at=arrives)
        self.issued.append((command.epoch, command.key))

    def _command_sent(self, command: Command, t: float) -> None:
        self.ledger.mark_sent(command.key + self._key_base, t)

    def _command_done(self, command: Command, outcome: str) -> None:
        self.ledger.command_done(command.key + self._key_base, outcome)

    # --- run ------------------------------------------------------------------------------

    def _supervised(self, name: str, step: Callable[[], bool]) -> None:
        """Run ``step`` until it returns False; whatever it raises is a fault, and the stage
        runs on (a dead detector thread would leave parcels to the deadline watcher alone)."""
        while True:
            try:
                if not step():
                    return
            except (Exception, InjectedCrash) as exc:  # noqa: BLE001
                self.failsafe.fault("thread-died", f"{name}: {type(exc).__name__}: {exc}; "
                                    "restarted")
                time.sleep(0.01)

    def run(self, duration_s: float | None = None, stop_plc: bool = True) -> dict:
        self.faults.restart_clock()
        threads = [threading.Thread(target=self._supervised, args=(f"detect-{k}",
                                                                   self._work_once),
                                    daemon=True, name=f"detect-{k}")
                   for k in range(self.config.pipeline.workers)]
        threads.append(threading.Thread(target=self._supervised, args=("deadlines",
                                                                       self._watch_once),
                                        daemon=True, name="deadlines"))
        self.open_output()
        for t in threads:
            t.start()
        started, seq = time.monotonic(), 0
        self._last_block_at = started
        self._capturing.set()
        try:
            while duration_s is None or time.monotonic() - started < duration_s:
                try:
                    seq = self._capture_once(seq)
                except Exception as exc:  # noqa: BLE001 - capture runs on; its parcels fail closed
                    self.failsafe.fault("capture-error", f"{type(exc).__name__}: {exc}")
                    time.sleep(0.01)
        except KeyboardInterrupt:
            pass
        self._capturing.clear()
        self.capture_s = time.monotonic() - started
        for _ in threads[:-1]:
            self.queue.put(None)
        self._drain()
        self._stop.set()
        if self.link is not None:
            self.link.stop()   # commands still queued now count as lost
        summary = self.summary(time.monotonic() - started)
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

    def _drain(self) -> None:
        """Wait until every parcel has a verdict, its command has an outcome, and (with a
        simulated PLC) the belt has carried every accounted parcel past the diverter."""
        entries = self.ledger.snapshot()
        last = max((e.deadline for e in entries), default=time.monotonic())
        give_up = last + self.config.plc.margin_s + 2.0

        def done() -> bool:
            if self.ledger.open_entries():
                return False
            if self.link is not None and self.link.unacked:
                return False
            if self.plc is not None:
                outcomes = self.plc.outcomes()
                return all(i in outcomes for i in self._accounted())
            return True
        while not done() and time.monotonic() < give_up:
            time.sleep(0.01)

    def summary(self, elapsed_s: float) -> dict:
        entries = self.ledger.snapshot()
        settled = [e for e in entries if e.verdict is not None]
        actions = [e.verdict.action for e in settled]
        latencies = [(e.sent_at or e.settled_at) - e.last_line_t for e in settled]
        lost = sum(len(link.stats.lost) for link in self.links)
        outcomes = self.plc.outcomes() if self.plc is not None else None
        if outcomes is not None:   # what the diverter physically did
            accounted = [i for i in self._accounted() if i in outcomes]
            diverted = {i for i in accounted if outcomes[i] == "diverted"}
            threats = {i for i in accounted if self.threat_truth.get(i)}
            n_parcels = len(accounted)
        else:                      # what the protocol makes of our commands
            released = [e.lane == RELEASE and e.outcome == "acked" for e in entries]
            diverted = {e.seq for e, r in zip(entries, released, strict=True) if not r}
            threats = {e.seq for e in entries if e.truth_labels}
            n_parcels = len(entries)
        return {
            "parcels": len(entries), "belt_parcels": n_parcels, "threat_parcels": len(threats),
            "diverted": len(diverted), "missed_threats": len(threats - diverted),
            "false_diverts": len(diverted - threats),
            "uninspected": actions.count(Action.UNINSPECTED),
            "undecided": len(entries) - len(settled), "lost_commands": lost,
            "commands": dict(sum((Counter(link.stats.outcomes) for link in self.links),
                                 Counter())),
            **self.failsafe.summary(),
            "latency_ms": percentiles_ms(latencies),
            "detector": getattr(self.detector, "name", type(self.detector).__name__),
            "belt_speed_mm_s": self.config.scanner.belt_speed_mm_s,
            "faults": self.config.faults.active,
            "duration_s": round(elapsed_s, 2),
            "capture_s": round(getattr(self, "capture_s", elapsed_s), 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "stages": self.stages.summary(),
            "plc": plc_report(self.links, self.plc),
        }


def open_plc(config: EdgeConfig, scanner: SimScanner, plc=None, **sim_options):
    """(simulated PLC or None, host link) for ``config.plc``; ``sim_options`` go to the
    simulated PLC (its fault injection: corrupt, noise, drop_acks, ack_delay_s, nak_busy)."""
    cfg = config.plc
    if cfg.type in ("sim", "sim-modbus") and plc is None:
        plc = simulated_plc(config, scanner, **sim_options)
    if plc is not None and not plc.path:
        plc.start()  # its pseudo-terminal exists from here on
    return plc, new_link(config, plc.path if plc is not None else cfg.port)


def simulated_plc(config: EdgeConfig, scanner: SimScanner, **options):
    """The simulated belt PLC of ``plc.type`` sim (framed protocol) or sim-modbus."""
    common = {"counts_per_mm": config.scanner.encoder_counts_per_mm}
    if config.plc.type == "sim-modbus":
        from edge.plc.modbus_sim import SimModbusPlc
        options = {k: v for k, v in options.items() if k in ("drop_acks", "nak_busy") and v}
        return SimModbusPlc(scanner.encoder_now, modbus_map=config.plc.modbus, **common,
                            **options)
    from edge.plc.sim import SimPlc
    return SimPlc(scanner.encoder_now, heartbeat_s=config.plc.heartbeat_s, **common, **options)


def new_link(config: EdgeConfig, port: str):
    """A host link of the protocol ``plc.type`` speaks, on ``port``, not yet started."""
    cfg = config.plc
    if cfg.type in ("modbus", "sim-modbus"):
        from edge.plc.modbus import ModbusDivertLink
        return ModbusDivertLink(port, cfg.modbus, baudrate=cfg.baudrate,
                                ack_timeout_s=max(cfg.ack_timeout_s, 0.1),
                                max_attempts=cfg.max_attempts, heartbeat_s=cfg.heartbeat_s,
                                silent_s=cfg.silent_s)
    return PlcLink(port, cfg.baudrate, cfg.ack_timeout_s, cfg.max_attempts, cfg.heartbeat_s,
                   cfg.silent_s)


def plc_report(links: list, plc) -> dict:
    out: dict = {}
    if links:
        counters = Counter()
        for link in links:
            counters.update({k: (len(v) if isinstance(v, list) else v)
                             for k, v in vars(link.stats).items() if not isinstance(v, dict)})
        out["link"] = dict(counters)
    if plc is not None:
        out["sim_plc"] = {k: (len(v) if isinstance(v, list) else v)
                          for k, v in vars(plc.stats).items()}
    return out


class StartError(RuntimeError):
    """The line could not be built (no model, a bad model, a bad threshold table)."""


def run(config: EdgeConfig, duration_s: float | None = None, summary_path: Path | None = None,
        **kwargs) -> int:
    from serial import SerialException

    from edge.detect.model import ModelError
    plc = config.plc
    if plc.type in ("serial", "modbus") and not plc.port:
        raise StartError(f"plc.port is not set: plc.type {plc.type} needs the PLC's serial "
                         "port (for example /dev/ttyUSB0)")
    try:
        hub = Hub(config, **kwargs)
        hub.open_output()
    except (ModelError, ValueError) as exc:
        raise StartError(str(exc)) from exc
    except (SerialException, OSError) as exc:
        raise StartError(f"plc.port {plc.port!r} cannot be opened: {exc}") from None
    faults = config.faults.active
    hub.log(f"detector: {getattr(hub.detector, 'name', '?')}; PLC: {config.plc.type}"
            + (f"; injected faults: {', '.join(faults)}" if faults else ""))
    summary = hub.run(duration_s)
    hub.log(summary_line(summary))
    if summary_path:
        Path(summary_path).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


def summary_line(summary: dict) -> str:
    """The run in one line, for the operator's console (the JSON summary has the rest)."""
    kinds = ", ".join(f"{k} {n}" for k, n in summary["alarm_kinds"].items())
    return (f"summary: {summary['parcels']} parcels, {summary['diverted']} diverted "
            f"({summary['uninspected']} uninspected), {summary['missed_threats']} threats "
            f"missed, {summary['false_diverts']} false diverts, {summary['lost_commands']} "
            f"commands lost, {summary['alarms']} alarms" + (f" ({kinds})" if kinds else ""))


def print_verdict(parcel: Parcel, verdict: Verdict) -> None:
    truth = ", ".join(parcel.truth_labels) or "none"
    found = f" ({verdict.reason})" if verdict.reason else ""
    print(f"parcel {parcel.id}: {verdict.action.value}{found}; {parcel.shape[1]} lines, "
          f"simulated threats: {truth}", flush=True)
