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

The hub knows its scanner, camera, detector and PLC link only through ``edge.interfaces``.
``Hub.from_config`` builds a line from real parts; the simulator's harness
(``simulator.harness.SimulatedHub``) builds one on the simulated belt and adds what only a
simulation can know: which parcels carried threats, and what the diverter did with them.
"""

from __future__ import annotations

import json
import queue
import resource
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.capture import PhotoMatcher, encoder_break, load_or_capture_flatfield, to_parcel
from edge.config import EdgeConfig, dump_config
from edge.decide import Policy
from edge.detect.parcel import ModelDetector
from edge.failsafe import FailSafe
from edge.faults import Faults, InjectedCrash
from edge.imaging.attenuation import ratio_boundaries
from edge.imaging.correct import FlatField, correct
from edge.imaging.segment import Segment, Segmenter
from edge.interfaces import Camera, Detector, DivertLink, EndOfStream, NoLinesYet, Scanner
from edge.ledger import Entry, Ledger, percentiles_ms, uninspected
from edge.plc.frames import RELEASE, Command
from edge.plc.link import PlcLink
from edge.sources.recording import Recorder
from edge.store import Retention, SchemaError, Store, StoreWriter
from edge.types import Action, BeltEvent, Parcel, Verdict

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


class Hub:
    """One inspection line: scanner, detector, decision, PLC (module docstring)."""

    def __init__(self, config: EdgeConfig, scanner: Scanner, flat: FlatField,
                 detector: Detector, camera: Camera | None = None,
                 link: DivertLink | None = None, log: Callable[[str], None] = print,
                 show: Callable[[Parcel, Verdict], None] | None = None, seed: int = 0,
                 recorder: Recorder | None = None, wait_for_detector: bool = False):
        self.config, self.log = config, log
        self.recorder = recorder
        # A replay played as fast as the detector allows waits for room in the queue; a live
        # belt does not wait, so there a full queue diverts the parcel uninspected.
        self.wait_for_detector = wait_for_detector
        self.faults = Faults(config.faults, seed=seed)
        self.scanner, self.flat, self.camera = scanner, flat, camera
        self.segmenter = Segmenter(config.segment, config.scanner.pitch_mm)
        cpm = config.scanner.encoder_counts_per_mm
        self.counts_per_mm = cpm
        self.matcher = PhotoMatcher(int(config.scanner.camera_offset_mm * cpm),
                                    int(config.segment.margin_mm * 2 * cpm))
        self.detector = detector
        self.policy = Policy.from_config(config, self.detector.classes, self.detector.version)
        self.failsafe = FailSafe(config.pipeline.failsafe_hold_s, log, self._tell_plc)
        self.links: list[DivertLink] = []   # every host session's (several after a restart)
        self.link: DivertLink | None = None
        self._output_open = False
        if link is not None:
            self.attach(link)
        self.show = show or print_verdict
        self.ledger = Ledger()
        self.queue: queue.Queue[Entry | None] = queue.Queue(config.pipeline.queue)
        self.stages = Stages()
        self.capture_s: float | None = None   # how long the scanner was read, once run
        self.issued: list[tuple[int, int]] = []   # (epoch, key) of every command sent
        self._key_base = 0   # keys restart from 1 in each host session
        self._last_encoder: int | None = None
        self._last_block_at = time.monotonic()
        self._stalled = False
        self._calls: dict[str, float] = {}   # detector thread -> start of its call in progress
        self._hung: dict[str, float] = {}    # detector thread -> start of the call reported
        self._stop = threading.Event()
        self._capturing = threading.Event()   # the scanner is expected to deliver lines
        self._halt = threading.Event()        # ends ``run`` as its duration would
        self._emit_lock = threading.Lock()
        self.store_writer: StoreWriter | None = None   # the parcel store's writer, once kept

    def keep_records(self, store: Store) -> StoreWriter:
        """Write every settled parcel, its pictures and its command's fate into ``store``
        (on a thread of its own, started and stopped with the run)."""
        cfg = self.config.store
        self.store_writer = StoreWriter(
            store, store.begin_run(self.detector.name, self.detector.version,
                                   self.policy.source, dump_config(self.config)),
            self.detector.classes, cfg.weapon_classes, pictures=cfg.pictures,
            boundaries=ratio_boundaries(self.config.scanner.low_kev,
                                        self.config.scanner.high_kev), health=self.health,
            retention=Retention(cfg.keep_days, int(cfg.max_picture_gb * 1e9)), log=self.log)
        return self.store_writer

    @classmethod
    def from_config(cls, config: EdgeConfig, record: Path | None = None,
                    record_max_bytes: int | None = None, **kwargs) -> Hub:
        """A line of real parts as ``config`` names them: the scanner's acquisition PC over
        TCP, a real camera or none, the ONNX model, the PLC on its serial port or none."""
        from edge.sources.camera import open_camera
        from edge.sources.tcp import TcpLineSource
        if config.scanner.type != "tcp":
            raise ValueError(f"scanner.type {config.scanner.type} is not a real scanner "
                             "source (the simulated line is simulator.harness.SimulatedHub)")
        if config.pipeline.detector != "model":
            raise ValueError("pipeline.detector ground-truth reports the simulator's own "
                             "labels: it needs scanner.type sim")
        flat = load_or_capture_flatfield(config, None, kwargs.get("log", print))
        link = new_link(config, config.plc.port) if config.plc.type != "none" else None
        recorder = Recorder(record, dump_config(config), flat, record_max_bytes) \
            if record is not None else None
        return cls(config, TcpLineSource(config.scanner), flat, ModelDetector(config),
                   camera=open_camera(config.camera), link=link, recorder=recorder, **kwargs)

    # --- what a harness around the hub may add (the simulator's adds its ground truth) -------

    def belt_event(self, event: BeltEvent) -> None:
        """The photo-eye saw ``event`` (a parcel's leading edge)."""

    def parcel_cut(self, parcel: Parcel, segment: Segment) -> None:
        """``parcel`` was cut from the stream, before it is opened in the ledger."""

    def belt_clear(self) -> bool:
        """Whether the run may end: every parcel it answers for is past the diverter."""
        return True

    def attach(self, link: DivertLink) -> None:
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

    def _open(self, parcel: Parcel) -> Entry:
        cfg, speed = self.config, self.config.scanner.belt_speed_mm_s
        lead_mm = cfg.segment.margin_mm   # segments start this much belt ahead of the parcel
        travel_mm = lead_mm + cfg.plc.diverter_distance_mm
        deadline = float(parcel.t[0]) + travel_mm / speed - cfg.plc.margin_s
        divert_at = int(parcel.encoder[0] + travel_mm * self.counts_per_mm)
        return self.ledger.open(parcel, deadline, divert_at)

    def _capture_once(self, seq: int) -> int:
        self._inject_timed_faults()
        block = self.scanner.read()   # the scanner's own time (and real-time pacing) not ours
        started = self._last_block_at = time.monotonic()
        if self.faults.glitch.fire_once(started):
            jump = int(self.config.faults.encoder_glitch * self.counts_per_mm)
            block.encoder[:] += jump
        if self.recorder is not None:
            self.recorder.lines(block)
        for event in self.scanner.poll_events():
            if self.recorder is not None:
                self.recorder.event(event)
            if self.camera is not None and not self.faults.camera.on(started):
                photo = self.camera.photograph(event)
                if photo is not None:
                    self.matcher.add(photo)
                    if self.recorder is not None:
                        self.recorder.photo(event, photo)
            self.belt_event(event)
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
            parcel = to_parcel(seg, seq, self.matcher, self.faults.label)
            self.parcel_cut(parcel, seg)
            entry = self._open(parcel)
            self.stages.queue_depth.append(self.queue.qsize())
            try:
                self.queue.put(entry, block=self.wait_for_detector)
            except queue.Full:
                self.failsafe.fault("overload", "the detector queue is full")
                self._settle(entry, uninspected(entry, "overload: detector queue full"))
        self.stages.capture.append(time.monotonic() - started)
        return seq

    def _inject_timed_faults(self) -> None:
        now, faults = time.monotonic(), self.faults
        if faults.stall.fire_once(now):
            time.sleep(self.config.faults.scanner_stall)   # then the backlog arrives late
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
            if self.store_writer is not None:
                self.store_writer.settled(entry.parcel, verdict, won.settled_at)
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
        if self.store_writer is not None:
            self.store_writer.commanded(entry.seq, lane, verdict.reason)
        arrives = entry.deadline + self.config.plc.margin_s
        command = self.link.send(entry.seq - self._key_base, entry.divert_encoder, lane,
                                 entry.parcel_id, expires_at=arrives)
        self.issued.append((command.epoch, command.key))

    def _command_sent(self, command: Command, t: float) -> None:
        self.ledger.mark_sent(command.key + self._key_base, t)
        if self.store_writer is not None:
            self.store_writer.sent(command.key + self._key_base, t)

    def _command_done(self, command: Command, outcome: str) -> None:
        self.ledger.command_done(command.key + self._key_base, outcome)
        if self.store_writer is not None:
            self.store_writer.done(command.key + self._key_base, str(outcome))

    @property
    def lost_commands(self) -> int:
        """Commands lost over every host session's link."""
        return sum(len(link.stats.lost) for link in self.links)

    def health(self) -> dict[str, tuple[bool, dict]]:
        """component -> (healthy, details) for the dashboard: scanner, detector, PLC link."""
        now = time.monotonic()
        quiet = now - self._last_block_at if self._capturing.is_set() else None
        scanner = {"type": self.config.scanner.type, "capturing": self._capturing.is_set(),
                   "last_block_s": None if quiet is None else round(quiet, 3)}
        detect = self.stages.detect[-200:]
        detector = {"name": self.detector.name, "version": self.detector.version,
                    "queue": self.queue.qsize(), "busy_calls": len(self._calls),
                    "detect_p50_ms": round(float(np.median(detect)) * 1000, 1)
                    if detect else None}
        report = {"scanner": (quiet is None or quiet < self.config.pipeline.stall_s, scanner),
                  "detector": (not self._hung or all(self._calls.get(w) != since for w, since
                                                     in self._hung.items()), detector),
                  "failsafe": (not self.failsafe.active, self.failsafe.summary())}
        if self.link is not None:
            silent = self.link.silent_for_s
            report["plc"] = (silent < self.config.plc.silent_s,
                             {"type": self.config.plc.type, "last_heard_s": round(silent, 3),
                              "commands_lost": self.lost_commands,
                              "unacked": self.link.unacked,
                              "acked": sum(link.stats.acked for link in self.links)})
        return report

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

    def halt(self) -> None:
        """Ends a ``run`` from another thread as its duration would: capture stops, and the
        parcels already cut are inspected and answered for."""
        self._halt.set()

    def run(self, duration_s: float | None = None) -> dict:
        self.faults.restart_clock()
        threads = [threading.Thread(target=self._supervised, args=(f"detect-{k}",
                                                                   self._work_once),
                                    daemon=True, name=f"detect-{k}")
                   for k in range(self.config.pipeline.workers)]
        threads.append(threading.Thread(target=self._supervised, args=("deadlines",
                                                                       self._watch_once),
                                        daemon=True, name="deadlines"))
        self.open_output()
        if self.store_writer is not None:
            self.store_writer.start()
        for t in threads:
            t.start()
        started, seq = time.monotonic(), 0
        self._last_block_at = started
        self._capturing.set()
        try:
            while not self._halt.is_set() and (
                    duration_s is None or time.monotonic() - started < duration_s):
                try:
                    seq = self._capture_once(seq)
                except EndOfStream:
                    break
                except NoLinesYet:
                    continue   # the deadline watcher's stall alarm judges the silence
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
        self.scanner.close()
        if self.camera is not None:
            self.camera.close()
        if self.recorder is not None:
            self.recorder.close()
            if self.recorder.stopped:
                self.log(f"recording stopped early: {self.recorder.stopped}")
        if self.store_writer is not None:
            self.store_writer.close()
        return self.summary(time.monotonic() - started)

    def _drain(self) -> None:
        """Wait until every parcel has a verdict, its command has an outcome, and (as far as
        ``belt_clear`` knows) the belt has carried every parcel past the diverter."""
        entries = self.ledger.snapshot()
        last = max((e.deadline for e in entries), default=time.monotonic())
        give_up = last + self.config.plc.margin_s + 2.0

        def done() -> bool:
            if self.ledger.open_entries():
                return False
            if self.link is not None and self.link.unacked:
                return False
            return self.belt_clear()
        while not done() and time.monotonic() < give_up:
            time.sleep(0.01)

    def summary(self, elapsed_s: float) -> dict:
        """The run's figures. Counts are the ledger's run totals; latencies describe the
        parcels it still holds (the most recent ones on a long run). ``diverted`` counts
        what the protocol made of our commands: every parcel but those released with an
        acknowledged command."""
        ledger = self.ledger
        settled = [e for e in ledger.snapshot() if e.verdict is not None]
        latencies = [(e.sent_at or e.settled_at) - e.last_line_t for e in settled]
        return {
            "parcels": ledger.opened, "diverted": ledger.opened - ledger.released(),
            "uninspected": ledger.actions[Action.UNINSPECTED.value],
            "undecided": ledger.opened - ledger.settled,
            "lost_commands": self.lost_commands,
            "commands": dict(sum((Counter(link.stats.outcomes) for link in self.links),
                                 Counter())),
            **self.failsafe.summary(),
            "latency_ms": percentiles_ms(latencies),
            "detector": self.detector.name,
            "belt_speed_mm_s": self.config.scanner.belt_speed_mm_s,
            "faults": self.config.faults.active,
            "duration_s": round(elapsed_s, 2),
            "capture_s": round(elapsed_s if self.capture_s is None else self.capture_s, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "stages": self.stages.summary(),
            "plc": {"link": link_report(self.links)} if self.links else {},
        }


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


def link_report(links: list[DivertLink]) -> dict:
    """Every host session's link counters, summed."""
    counters: Counter = Counter()
    for link in links:
        counters.update({k: (len(v) if isinstance(v, list) else v)
                         for k, v in vars(link.stats).items() if not isinstance(v, dict)})
    return dict(counters)


class StartError(RuntimeError):
    """The line could not be built (no model, a bad model, a bad threshold table)."""


def run(config: EdgeConfig, build: Callable[..., Hub], duration_s: float | None = None,
        summary_path: Path | None = None, **kwargs) -> int:
    """Build the line with ``build(config, **kwargs)`` (``Hub.from_config`` or the simulator's
    harness), run it, print and write its summary. Raises StartError when it cannot start."""
    from serial import SerialException

    from edge.detect.model import ModelError
    from edge.interfaces import ScannerError
    from edge.sources.camera import CameraError
    plc = config.plc
    if plc.type in ("serial", "modbus") and not plc.port:
        raise StartError(f"plc.port is not set: plc.type {plc.type} needs the PLC's serial "
                         "port (for example /dev/ttyUSB0)")
    try:
        hub = build(config, **kwargs)
    except (ModelError, ValueError, ScannerError, CameraError) as exc:
        raise StartError(str(exc)) from exc
    try:
        hub.open_output()
    except (SerialException, OSError) as exc:
        raise StartError(f"plc.port {plc.port!r} cannot be opened: {exc}") from None
    if config.store.enabled:
        try:
            hub.keep_records(Store(config.store.dir))
        except (OSError, sqlite3.Error, SchemaError) as exc:
            raise StartError(f"the store at {config.store.dir} cannot be used: {exc} "
                             "(store.dir sets another; store.enabled false runs without "
                             "records)") from None
    faults = config.faults.active
    hub.log(f"detector: {hub.detector.name}; thresholds: {hub.policy.source}; "
            f"scanner: {config.scanner.type}; PLC: {config.plc.type}; "
            f"store: {config.store.dir if config.store.enabled else 'off'}"
            + (f"; injected faults: {', '.join(faults)}" if faults else ""))
    summary = hub.run(duration_s)
    hub.log(summary_line(summary))
    if summary_path:
        Path(summary_path).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


def summary_line(summary: dict) -> str:
    """The run in one line, for the operator's console (the JSON summary has the rest).
    Missed threats and false diverts are told where the run knows the truth (a simulation)."""
    kinds = ", ".join(f"{k} {n}" for k, n in summary["alarm_kinds"].items())
    truth = (f"{summary['missed_threats']} threats missed, {summary['false_diverts']} false "
             "diverts, ") if "missed_threats" in summary else ""
    return (f"summary: {summary['parcels']} parcels, {summary['diverted']} diverted "
            f"({summary['uninspected']} uninspected), {truth}{summary['lost_commands']} "
            f"commands lost, {summary['alarms']} alarms" + (f" ({kinds})" if kinds else ""))


def print_verdict(parcel: Parcel, verdict: Verdict) -> None:
    found = f" ({verdict.reason})" if verdict.reason else ""
    print(f"parcel {parcel.id}: {verdict.action.value}{found}; {parcel.shape[1]} lines",
          flush=True)
