"""The host side of the belt-PLC link: pyserial I/O around the pure protocol in ``frames``.

A reader thread decodes what the PLC sends; ``divert`` queues a command and returns at once;
a sender loop transmits, resends unacknowledged commands with the same SEQ after the ACK
timeout (bounded), and sends heartbeats. A lost port is reopened without losing queued
commands. The port is any pyserial URL: ``/dev/ttyUSB0``, ``socket://host:port``, ``loop://``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from edge.plc import frames
from edge.plc.frames import Divert, Frame, Kind

# What a port that is gone raises: pyserial's own errors, the OS's, and TypeError when the
# other thread closes the port mid-call (pyserial drops the descriptor before it marks the
# port closed). Either thread reopens it on any of them; left uncaught they end that thread.
PORT_GONE = (serial.SerialException, OSError, TypeError)


@dataclass
class Pending:
    """A divert command on its way: sent ``attempts`` times, last at ``sent_at``."""

    seq: int
    divert: Divert
    attempts: int = 0
    sent_at: float = 0.0


@dataclass
class LinkStats:
    sent: int = 0
    resent: int = 0
    acked: int = 0
    nak: int = 0
    lost: list[str] = field(default_factory=list)  # parcel IDs whose command was never acked
    reconnects: int = 0


class PlcLink:
    """Host end of the serial link (see module docstring and docs/plc-protocol.md)."""

    def __init__(self, url: str, baudrate: int = 115_200, ack_timeout_s: float = 0.05,
                 max_attempts: int = 5, heartbeat_s: float = 0.1,
                 on_lost: Callable[[Divert], None] | None = None,
                 on_sent: Callable[[Divert, float], None] | None = None):
        self.url, self.baudrate = url, baudrate
        self.ack_timeout_s, self.max_attempts, self.heartbeat_s = (ack_timeout_s, max_attempts,
                                                                   heartbeat_s)
        self.on_lost, self.on_sent = on_lost, on_sent  # on_sent: first transmission, time
        self.stats = LinkStats()
        self._seq = 0
        self._pending: dict[int, Pending] = {}
        self._lock = threading.Lock()
        self._reopen_lock = threading.Lock()  # reader and sender may both find the port gone
        self._stop = threading.Event()
        self._port: serial.SerialBase | None = None
        self._decoder = frames.Decoder()
        self._last_heard = time.monotonic()
        self._threads = [threading.Thread(target=self._read_loop, daemon=True),
                         threading.Thread(target=self._send_loop, daemon=True)]

    # --- public ---------------------------------------------------------------------------

    def start(self) -> PlcLink:
        self._open()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1.0)
        if self._port is not None:
            self._port.close()

    def divert(self, parcel_id: str, encoder: int, lane: int = 1) -> int:
        """Queue a divert; returns its SEQ. Never blocks on the line."""
        command = Divert(parcel_id, encoder, lane)
        command.pack()  # refuse a bad ID here, in the caller's thread
        with self._lock:
            seq = self._next_seq()
            self._pending[seq] = Pending(seq, command)
        return seq

    @property
    def unacked(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def silent_for_s(self) -> float:
        return time.monotonic() - self._last_heard

    # --- internals --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        # Skip SEQs still in flight, so an ACK always names one command.
        for _ in range(256):
            self._seq = (self._seq + 1) % 256
            if self._seq not in self._pending:
                return self._seq
        raise RuntimeError("256 divert commands in flight: the PLC is not answering")

    def _open(self) -> None:
        self._port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.02)

    def _write(self, data: bytes) -> None:
        port = self._port
        try:
            port.write(data)
        except PORT_GONE:
            self._reconnect(port)

    def _reconnect(self, broken: serial.SerialBase) -> None:
        with self._reopen_lock:
            if self._stop.is_set() or self._port is not broken:
                return  # the other thread has reopened it meanwhile
            try:
                broken.close()
            except (serial.SerialException, OSError):
                pass
            while not self._stop.is_set():
                try:
                    self._open()
                    self.stats.reconnects += 1
                    return
                except (serial.SerialException, OSError):
                    time.sleep(0.05)

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            port = self._port
            try:
                data = port.read(256)
            except PORT_GONE:
                self._reconnect(port)
                continue
            for frame in self._decoder.feed(data):
                self._last_heard = time.monotonic()
                self._handle(frame)

    def _handle(self, frame: Frame) -> None:
        if frame.kind == Kind.NAK and frame.payload[1:2] == bytes([frames.NakReason.BUSY]):
            return  # a busy PLC gets the command again after the ACK timeout
        if frame.kind in (Kind.ACK, Kind.NAK) and frame.payload:
            with self._lock:
                done = self._pending.pop(frame.payload[0], None)
            if done is not None:
                if frame.kind == Kind.ACK:
                    self.stats.acked += 1
                else:
                    self.stats.nak += 1

    def _send_loop(self) -> None:
        beat, next_beat = 0, 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            due, lost = [], []
            with self._lock:
                for p in list(self._pending.values()):
                    if p.attempts and now - p.sent_at < self.ack_timeout_s:
                        continue
                    if p.attempts >= self.max_attempts:
                        lost.append(self._pending.pop(p.seq).divert)
                        continue
                    p.attempts += 1
                    p.sent_at = now
                    due.append(p)
            for p in due:
                if p.attempts > 1:
                    self.stats.resent += 1
                else:
                    self.stats.sent += 1
                self._write(Frame(p.seq, Kind.DIVERT, p.divert.pack()).encode())
                if p.attempts == 1 and self.on_sent:
                    self.on_sent(p.divert, time.monotonic())
            for command in lost:
                self.stats.lost.append(command.parcel_id)
                if self.on_lost:
                    self.on_lost(command)
            if now >= next_beat:
                beat += 1
                self._write(frames.heartbeat(0, beat).encode())
                next_beat = now + self.heartbeat_s
            time.sleep(0.005)
