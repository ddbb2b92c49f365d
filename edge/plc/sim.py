"""A simulated belt PLC with one diverter, on the PLC end of a real pseudo-terminal pair.

It speaks docs/plc-protocol.md to the real host (``PlcLink(sim.path)``) and keeps ground truth:
the belt's photo-eye (``expect``) says where each parcel's leading edge really is, so tests and
the demo can check what the diverter did (``outcomes``, ``stats``) against what the host meant.
Positions are encoder counts; ``encoder_now`` is called from the sim's threads, so it must be
thread-safe (a pure function of a monotonic clock is).
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.plc import frames
from edge.plc.frames import Divert, Frame, Kind, NakReason

TICK_S = 0.002  # diverter resolution: 2 ms is 4 mm of belt at 2 m/s
STATUS_S = 0.5  # STATUS period; also sent at once when the watchdog changes state


@dataclass
class SimStats:
    diverts_received: int = 0  # well-framed DIVERTs, duplicates and refusals included
    duplicates: int = 0  # repeats of an applied (SEQ, ID): ACKed again, not re-applied
    applied: list[str] = field(default_factory=list)  # parcel IDs scheduled, in order
    too_late: int = 0  # NAK reason 2 sent: the belt had passed the commanded position
    bad_payload: int = 0  # NAK reason 1 sent
    acks_dropped: int = 0  # applied but deliberately left unacknowledged (``drop_acks``)
    misfires: int = 0  # commanded position > tolerance from the true edge: wrong parcel pushed
    unexpected: int = 0  # diverts fired for IDs the photo-eye never reported
    watchdog_trips: int = 0
    watchdog_tripped: bool = False  # now: every arriving parcel is diverted (fail closed)
    heartbeats_received: int = 0
    corrupted: int = 0  # DIVERTs lost on the wire (``corrupt``): as if their CRC had failed
    noise_bursts: int = 0  # garbage written ahead of a frame (``noise``)


class SimPlc:
    """Belt PLC with a diverter; ``path`` is the pty the host opens (after ``start``)."""

    def __init__(self, encoder_now: Callable[[], int], *, counts_per_mm: float,
                 watchdog_s: float = 0.5, heartbeat_s: float = 0.1, remember: int = 64,
                 tolerance_mm: float = 60.0, ack_delay_s: float = 0.0, drop_acks: float = 0.0,
                 corrupt: float = 0.0, noise: float = 0.0, seed: int = 0):
        for name, value, ok, rule in [
            ("counts_per_mm", counts_per_mm, counts_per_mm > 0, "> 0"),
            ("watchdog_s", watchdog_s, watchdog_s > 0, "> 0"),
            ("heartbeat_s", heartbeat_s, heartbeat_s > 0, "> 0"),
            ("remember", remember, remember >= 1, ">= 1"),
            ("tolerance_mm", tolerance_mm, tolerance_mm >= 0, ">= 0"),
            ("ack_delay_s", ack_delay_s, ack_delay_s >= 0, ">= 0"),
            ("drop_acks", drop_acks, 0 <= drop_acks <= 1, "in [0, 1]"),
            ("corrupt", corrupt, 0 <= corrupt <= 1, "in [0, 1]"),
            ("noise", noise, 0 <= noise <= 1, "in [0, 1]"),
        ]:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {value!r}")
        self.encoder_now = encoder_now
        self.watchdog_s, self.heartbeat_s = watchdog_s, heartbeat_s
        self.tolerance = round(tolerance_mm * counts_per_mm)  # counts
        self.ack_delay_s, self.drop_acks = ack_delay_s, drop_acks
        self.corrupt, self.noise = corrupt, noise  # line faults, for fault-injection runs
        self.stats = SimStats()
        self.path = ""
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._expected: dict[str, int] = {}  # parcel ID -> true leading edge (counts)
        self._scheduled: dict[str, int] = {}  # parcel ID -> commanded position (counts)
        self._recent: deque[tuple[int, str]] = deque(maxlen=remember)  # applied (SEQ, ID)
        self._outcomes: dict[str, str] = {}
        self._outbox: list[tuple[float, int, bytes]] = []  # heap of (due, order, frame)
        self._order = itertools.count()
        self._seq = 0
        self._diverted = 0  # since power-up, as STATUS reports it
        self._last_heard = 0.0
        self._master = self._slave = -1
        self._threads: list[threading.Thread] = []

    # --- public ---------------------------------------------------------------------------

    def start(self) -> SimPlc:
        self._master, self._slave = os.openpty()
        # We keep the slave open too: the device node and its raw settings then outlive host
        # reconnects, as a real serial port does, and reads on the master never see EIO.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)  # a PLC talking to nobody drops frames, not time
        self.path = os.ttyname(self._slave)
        self._last_heard = time.monotonic()  # no host within watchdog_s: trip, divert all
        self._threads = [threading.Thread(target=loop, name=f"sim-plc{loop.__name__}", daemon=True)
                         for loop in (self._read_loop, self._belt_loop)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop the threads and close the pty: to the host, the port has vanished."""
        if not self._threads or self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1.0)
        os.close(self._master)
        os.close(self._slave)

    def __enter__(self) -> SimPlc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def expect(self, parcel_id: str, leading_edge: int) -> None:
        """Photo-eye: ``parcel_id``'s leading edge reaches the diverter at ``leading_edge``."""
        with self._lock:
            self._expected[parcel_id] = leading_edge

    def outcomes(self) -> dict[str, str]:
        """Parcel ID -> "diverted" | "passed", for expected parcels the diverter has seen."""
        with self._lock:
            return dict(self._outcomes)

    # --- receiving --------------------------------------------------------------------------

    def _read_loop(self) -> None:
        decoder = frames.Decoder()  # hunts past line noise by itself
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(self._master, 1024)
            except OSError:
                time.sleep(TICK_S)
                continue
            for frame in decoder.feed(data):
                with self._lock:
                    self._heard(frame)

    def _heard(self, frame: Frame) -> None:
        self._last_heard = time.monotonic()  # any valid frame feeds the watchdog
        if self.stats.watchdog_tripped:
            self.stats.watchdog_tripped = False
            self._queue_status()
        if frame.kind == Kind.HEARTBEAT:
            self.stats.heartbeats_received += 1
        elif frame.kind == Kind.DIVERT:
            self._on_divert(frame)

    def _on_divert(self, frame: Frame) -> None:
        if self.corrupt and self._rng.random() < self.corrupt:
            self.stats.corrupted += 1  # damaged on the wire: the decoder would drop it
            return
        self.stats.diverts_received += 1
        try:
            command = Divert.unpack(frame.payload)
            command.pack()  # the host's own checks: an ID of 1..32 ASCII characters
        except ValueError:
            self.stats.bad_payload += 1
            self._reply(frames.nak(self._next_seq(), frame.seq, NakReason.BAD_PAYLOAD))
            return
        key = (frame.seq, command.parcel_id)
        if key in self._recent:  # a resend whose ACK was lost: answer, do not apply again
            self.stats.duplicates += 1
        elif command.encoder < self.encoder_now():
            self.stats.too_late += 1
            self._reply(frames.nak(self._next_seq(), frame.seq, NakReason.TOO_LATE))
            return
        else:
            self._recent.append(key)
            self._scheduled[command.parcel_id] = command.encoder
            self.stats.applied.append(command.parcel_id)
        if self._rng.random() < self.drop_acks:
            self.stats.acks_dropped += 1
        else:
            self._reply(frames.ack(self._next_seq(), frame.seq))

    # --- the belt: diverter, watchdog, outgoing frames ----------------------------------------

    def _belt_loop(self) -> None:
        beat, next_beat, next_status = 0, 0.0, 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                self._check_watchdog(now)
                self._divert_arrivals(self.encoder_now())
                if now >= next_beat:
                    beat += 1
                    self._queue(frames.heartbeat(self._next_seq(), beat))
                    next_beat = now + self.heartbeat_s
                if now >= next_status:
                    self._queue_status()
                    next_status = now + STATUS_S
                due = []
                while self._outbox and self._outbox[0][0] <= now:
                    due.append(heapq.heappop(self._outbox)[2])
            for data in due:
                self._write(data)
            time.sleep(TICK_S)

    def _check_watchdog(self, now: float) -> None:
        if not self.stats.watchdog_tripped and now - self._last_heard > self.watchdog_s:
            self.stats.watchdog_tripped = True
            self.stats.watchdog_trips += 1
            self._queue_status()

    def _divert_arrivals(self, position: int) -> None:
        for parcel_id, edge in list(self._expected.items()):
            if edge > position:
                continue
            del self._expected[parcel_id]
            commanded = self._scheduled.pop(parcel_id, None)
            if commanded is None:
                # The pusher acts on position: a command under another name (a label the host
                # could not read) still pushes the parcel that is there.
                near = [pid for pid, at in self._scheduled.items()
                        if abs(at - edge) <= self.tolerance and pid not in self._expected]
                if near:
                    commanded = self._scheduled.pop(near[0])
            on_target = commanded is not None and abs(commanded - edge) <= self.tolerance
            if commanded is not None and not on_target:
                self.stats.misfires += 1  # the pusher fired on a gap or on a neighbour
            diverted = on_target or self.stats.watchdog_tripped
            self._outcomes[parcel_id] = "diverted" if diverted else "passed"
            self._diverted += diverted
        for parcel_id, commanded in list(self._scheduled.items()):
            # The host knows a parcel the photo-eye missed: fire once the latest position a
            # matching parcel could have had has gone by.
            if commanded + self.tolerance < position and parcel_id not in self._expected:
                del self._scheduled[parcel_id]
                self.stats.unexpected += 1
                self._diverted += 1

    # --- sending ----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % 256
        return self._seq

    def _reply(self, frame: Frame) -> None:
        self._queue(frame, delay=self.ack_delay_s)  # a slow PLC answers late

    def _queue_status(self) -> None:
        self._queue(frames.status(self._next_seq(), self.stats.watchdog_tripped, self._diverted))

    def _queue(self, frame: Frame, delay: float = 0.0) -> None:
        heapq.heappush(self._outbox,
                       (time.monotonic() + delay, next(self._order), frame.encode()))

    def _write(self, data: bytes) -> None:
        if self.noise and self._rng.random() < self.noise:
            self.stats.noise_bursts += 1
            garbage = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 24)))
            data = garbage + bytes([frames.STX]) + data  # a stray STX makes the host hunt
        try:
            os.write(self._master, data)
        except OSError:  # line full because no host reads it: a PLC does not wait
            pass
