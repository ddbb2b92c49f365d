"""The host side of the belt-PLC link: pyserial I/O around the pure protocol in ``frames``.

A reader thread decodes what the PLC sends; ``send`` queues a command and returns at once; a
sender loop transmits, resends unacknowledged commands with the same SEQ after the ACK
timeout, and sends heartbeats that carry the session epoch and the host's state. A command
ends in one outcome (``Outcome``), reported to ``on_done``; every outcome but ``acked`` is a
lost command and also a fault (``on_fault``), as are a PLC silent for ``silent_s``, a port
gone and a STATUS saying the PLC's watchdog tripped. An ACK that still comes for a command
given up on (unanswered, expired) turns it into ``acked``, reported again. A silent or lost port
is reopened without losing queued commands; a command expires when its parcel reaches the
diverter. The port is any pyserial URL: ``/dev/ttyUSB0``, ``socket://host:port``, ``loop://``.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import serial

from edge.plc import frames
from edge.plc.frames import Command, DivertAll, Frame, HostState, Kind, NakReason, Status

# What a port that is gone raises: pyserial's own errors, the OS's, and TypeError when the
# other thread closes the port mid-call (pyserial drops the descriptor before it marks the
# port closed). Either thread reopens it on any of them; left uncaught they end that thread.
PORT_GONE = (serial.SerialException, OSError, TypeError)
MAX_IN_FLIGHT = 255  # SEQ 1..255 name commands; heartbeats carry SEQ 0
REOPEN_PAUSE_S = 0.05  # between attempts to reopen a port that is gone


class Outcome(StrEnum):
    ACKED = "acked"
    TOO_LATE = "too-late"  # NAK 2: the parcel had reached the diverter (it was diverted)
    REFUSED = "refused"  # NAK 1: the PLC could not read the command
    UNANSWERED = "unanswered"  # no ACK after every attempt
    EXPIRED = "expired"  # its parcel reached the diverter before an ACK
    OVERFLOW = "overflow"  # pushed out by newer commands while the PLC did not answer
    UNSENT = "unsent"  # still queued when the link stopped


def new_epoch() -> int:
    """A session epoch: random, non-zero, so a restarted host never repeats its predecessor's
    (epoch, key) names (one chance in four billion per restart)."""
    return secrets.randbits(32) or 1


@dataclass
class Pending:
    """A command on its way: sent ``attempts`` times, last at ``sent_at``."""

    seq: int
    command: Command
    expires_at: float
    payload: bytes  # the command packed once, in the caller's thread
    attempts: int = 0
    sent_at: float = 0.0


@dataclass
class LinkStats:
    sent: int = 0
    resent: int = 0
    acked: int = 0
    nak: int = 0  # NAKs of any reason, BUSY included
    outcomes: dict[str, int] = field(default_factory=dict)  # Outcome -> commands
    lost: list[int] = field(default_factory=list)  # keys of commands that did not take effect
    reconnects: int = 0
    silences: int = 0  # times the PLC went silent for silent_s with the port present
    watchdog_reports: int = 0  # watchdog trips of the PLC while it followed this session
    late_acks: int = 0  # commands given up on, then acknowledged: counted acked after all


class CommandLink:
    """What every PLC link shares, whatever its fieldbus: the callbacks the host sets, the
    counters, and the one way a command's outcome is recorded and reported."""

    on_done: Callable[[Command, Outcome], None] | None = None
    on_sent: Callable[[Command, float], None] | None = None
    on_fault: Callable[[str, str], None] | None = None
    stats: LinkStats

    def _fault(self, kind: str, detail: str) -> None:
        if self.on_fault:
            self.on_fault(kind, detail)

    def _finish(self, command: Command, outcome: Outcome) -> None:
        """Record ``command``'s one outcome; every outcome but ``acked`` is a lost command and
        a fault."""
        self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1
        if outcome == Outcome.ACKED:
            self.stats.acked += 1
        else:
            self.stats.lost.append(command.key)
        if self.on_done:
            self.on_done(command, outcome)
        if outcome != Outcome.ACKED:
            self._fault("command-lost", f"command for parcel {command.key} "
                        f"({command.label or 'no label'}) lost: {outcome}")


class PlcLink(CommandLink):
    """Host end of the serial link (see module docstring and docs/plc-protocol.md)."""

    def __init__(self, url: str, baudrate: int = 115_200, ack_timeout_s: float = 0.05,
                 max_attempts: int = 100, heartbeat_s: float = 0.1, silent_s: float = 0.5,
                 epoch: int | None = None,
                 on_done: Callable[[Command, Outcome], None] | None = None,
                 on_sent: Callable[[Command, float], None] | None = None,
                 on_fault: Callable[[str, str], None] | None = None):
        self.url, self.baudrate = url, baudrate
        self.ack_timeout_s, self.max_attempts, self.heartbeat_s = (ack_timeout_s, max_attempts,
                                                                   heartbeat_s)
        self.silent_s = silent_s
        self.epoch = new_epoch() if epoch is None else epoch
        self.on_done, self.on_sent, self.on_fault = on_done, on_sent, on_fault
        self.fail_closed = False  # what the heartbeats tell the PLC
        self.plc_status: Status | None = None
        self._trips_seen: int | None = None  # the PLC's trip count, once it follows us
        self.stats = LinkStats()
        self._seq = 0
        self._pending: dict[int, Pending] = {}
        self._given_up: dict[int, tuple[Command, Outcome]] = {}  # SEQ -> unanswered or expired
        self._lock = threading.Lock()
        self._reopen_lock = threading.Lock()  # reader and sender may both find the port gone
        self._stop = threading.Event()
        self._port: serial.SerialBase | None = None
        self._decoder = frames.Decoder()
        self._last_heard = time.monotonic()
        self._threads = [threading.Thread(target=self._guarded, args=(self._read_once,),
                                          daemon=True, name="plc-read"),
                         threading.Thread(target=self._guarded, args=(self._send_once,),
                                          daemon=True, name="plc-send")]
        self._beat, self._next_beat, self._next_open = 0, 0.0, 0.0

    # --- public ---------------------------------------------------------------------------

    def start(self) -> PlcLink:
        """Open the port (a missing port raises ``serial.SerialException`` here) and start."""
        self._open()
        self._last_heard = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1.0)
        with self._lock:
            left, self._pending = list(self._pending.values()), {}
        for p in left:
            self._finish(p.command, Outcome.UNSENT)
        if self._port is not None:
            self._port.close()

    def send(self, key: int, encoder: int, lane: int, label: str = "",
             expires_at: float = math.inf) -> Command:
        """Queue a command for parcel ``key`` (release with lane 0, else divert); it expires
        at ``expires_at`` (monotonic s). Never blocks on the line; never refuses a label."""
        command = Command(key, encoder, lane, self.epoch, label)
        payload = command.pack()
        with self._lock:
            pushed_out = self._pending.pop(self._seq % MAX_IN_FLIGHT + 1, None) \
                if len(self._pending) >= MAX_IN_FLIGHT else None
            seq = self._next_seq()
            self._given_up.pop(seq, None)   # an ACK of this SEQ now names the new command
            self._pending[seq] = Pending(seq, command, expires_at, payload)
        if pushed_out is not None:
            self._finish(pushed_out.command, Outcome.OVERFLOW)
        return command

    @property
    def unacked(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def silent_for_s(self) -> float:
        return time.monotonic() - self._last_heard

    # --- internals --------------------------------------------------------------------------

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run ``step`` until stopped; an exception is a fault, never the end of the thread."""
        while not self._stop.is_set():
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the link must outlive any one fault
                self._fault("link-error", f"{type(exc).__name__}: {exc}")
                time.sleep(0.01)

    def _next_seq(self) -> int:
        # SEQ 1..255, skipping SEQs in flight, so an ACK always names one command.
        for _ in range(MAX_IN_FLIGHT):
            self._seq = self._seq % MAX_IN_FLIGHT + 1
            if self._seq not in self._pending:
                return self._seq
        raise AssertionError("no free SEQ although a slot was freed")

    def _open(self) -> None:
        self._port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.02,
                                           write_timeout=0.5)

    def _write(self, data: bytes) -> None:
        port = self._port
        if port is None:
            return  # no port: the command waits, or expires, in the table
        try:
            port.write(data)
        except PORT_GONE:
            self._drop_port(port, "port-gone", "the PLC's port failed")

    def _drop_port(self, broken: serial.SerialBase, kind: str, detail: str) -> None:
        """Close a port that failed; the sender reopens it while commands keep expiring."""
        with self._reopen_lock:
            if self._port is not broken:
                return  # the other thread got there first
            self._port = None
        self._fault(kind, detail)
        try:
            broken.close()
        except PORT_GONE:
            pass

    def _reopen(self, now: float) -> None:
        if now < self._next_open:
            return
        self._next_open = now + REOPEN_PAUSE_S
        with self._reopen_lock:
            try:
                self._open()
            except (serial.SerialException, OSError):
                return
        self.stats.reconnects += 1
        self._last_heard = time.monotonic()

    def _read_once(self) -> None:
        port = self._port
        if port is None:
            time.sleep(0.02)
            return
        try:
            data = port.read(256)
        except PORT_GONE:
            self._drop_port(port, "port-gone", "the PLC's port failed")
            return
        for frame in self._decoder.feed(data):
            self._last_heard = time.monotonic()
            self._handle(frame)

    def _handle(self, frame: Frame) -> None:
        if frame.kind == Kind.STATUS:
            self._on_status(frame)
            return
        if frame.kind not in (Kind.ACK, Kind.NAK) or not frame.payload:
            return
        reason = frame.payload[1] if frame.kind == Kind.NAK and len(frame.payload) > 1 else 0
        if frame.kind == Kind.NAK:
            self.stats.nak += 1
            if reason == NakReason.BUSY:
                return  # a busy PLC gets the command again after the ACK timeout
        with self._lock:
            done = self._pending.pop(frame.payload[0], None)
            given_up = self._given_up.pop(frame.payload[0], None) if done is None else None
        if given_up is not None and frame.kind == Kind.ACK:
            self._late_ack(*given_up)
        if done is None:
            return
        if frame.kind == Kind.ACK:
            self._finish(done.command, Outcome.ACKED)
        else:
            self._finish(done.command, Outcome.TOO_LATE if reason == NakReason.TOO_LATE
                         else Outcome.REFUSED)

    def _late_ack(self, command: Command, was: Outcome) -> None:
        """An ACK for a command given up on (unanswered, expired) before its SEQ was reused:
        the PLC did apply it, so it was not lost after all."""
        self.stats.outcomes[was] -= 1
        self.stats.outcomes[Outcome.ACKED] = self.stats.outcomes.get(Outcome.ACKED, 0) + 1
        self.stats.lost.remove(command.key)
        self.stats.acked += 1
        self.stats.late_acks += 1
        if self.on_done:
            self.on_done(command, Outcome.ACKED)

    def _on_status(self, frame: Frame) -> None:
        try:
            status = Status.unpack(frame.payload)
        except ValueError:
            return
        self.plc_status = status
        ours = status.epoch == self.epoch
        if self._trips_seen is None:   # the count before this session, as first heard
            self._trips_seen = status.trips - (ours and status.why == DivertAll.WATCHDOG)
        if not ours:
            # Not heard by the PLC yet: a trip now is the PLC waiting for a host.
            self._trips_seen = status.trips
        elif status.trips > self._trips_seen:
            # Counted, not only seen: a trip while the line was down is reported afterwards.
            self.stats.watchdog_reports += status.trips - self._trips_seen
            self._trips_seen = status.trips
            self._fault("plc-watchdog", "the PLC's watchdog tripped: it diverted every parcel "
                        "until it heard this host again")

    def _send_once(self) -> None:
        now = time.monotonic()
        due, ended = [], []
        with self._lock:
            for p in list(self._pending.values()):
                if now >= p.expires_at:
                    ended.append((self._pending.pop(p.seq), Outcome.EXPIRED))
                elif p.attempts and now - p.sent_at < self.ack_timeout_s:
                    continue
                elif p.attempts >= self.max_attempts:
                    ended.append((self._pending.pop(p.seq), Outcome.UNANSWERED))
                else:
                    p.attempts += 1
                    p.sent_at = now
                    due.append(p)
        for p in due:
            if p.attempts > 1:
                self.stats.resent += 1
            else:
                self.stats.sent += 1
            self._write(Frame(p.seq, Kind.COMMAND, p.payload).encode())
            if p.attempts == 1 and self.on_sent:
                self.on_sent(p.command, time.monotonic())
        for p, outcome in ended:
            self._finish(p.command, outcome)
            with self._lock:
                if p.seq not in self._pending:   # an ACK may yet come (``_late_ack``)
                    self._given_up[p.seq] = (p.command, outcome)
        if now >= self._next_beat:
            self._beat += 1
            state = HostState.FAIL_CLOSED if self.fail_closed else HostState.INSPECTING
            self._write(frames.heartbeat(0, self._beat, self.epoch, state).encode())
            self._next_beat = now + self.heartbeat_s
        if self._port is None:
            self._reopen(now)
        elif self.silent_for_s > self.silent_s:
            self.stats.silences += 1
            self._drop_port(self._port, "plc-silent", f"no frame from the PLC for "
                            f"{self.silent_for_s:.2f} s: reopening its port")
            self._last_heard = now  # the next alarm after another silent_s
        time.sleep(0.005)
