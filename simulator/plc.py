"""A simulated belt PLC with one diverter, on the PLC end of a real pseudo-terminal pair.

It speaks docs/plc-protocol.md to the real host (``PlcLink(sim.path)``) and keeps ground truth:
the belt's photo-eye (``expect``) says where each parcel's leading edge really is, so tests and
the demo can check what the diverter did (``outcomes``, ``stats``) against what the host meant.
Positions are encoder counts; ``encoder_now`` is called from the sim's threads, so it must be
thread-safe (a pure function of a monotonic clock is).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import random
import select
import shutil
import tempfile
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.plc import frames
from edge.plc.frames import Command, DivertAll, Frame, Heartbeat, HostState, Kind, NakReason

TICK_S = 0.002  # diverter resolution: 2 ms is 4 mm of belt at 2 m/s
STATUS_S = 0.5  # STATUS period; also sent at once when the watchdog changes state


@dataclass
class SimStats:
    commands_received: int = 0  # well-framed COMMANDs, duplicates and refusals included
    duplicates: int = 0  # repeats of an applied (epoch, key): ACKed again, not re-applied
    applied: list[tuple[int, int]] = field(default_factory=list)  # (epoch, key), in order
    too_late: int = 0  # NAK reason 2 sent: the parcel had reached the diverter
    bad_payload: int = 0  # NAK reason 1 sent
    busy: int = 0  # NAK reason 3 sent (``nak_busy``)
    acks_dropped: int = 0  # applied but deliberately left unacknowledged (``drop_acks``)
    # (epoch, key) of applied commands with an ACK dropped: if it was the last the host would
    # have heard, the host counts a command lost that took effect, and cannot know better.
    unheard: set[tuple[int, int]] = field(default_factory=set)
    misfires: int = 0  # command position > tolerance from the true edge: not honoured
    unexpected: int = 0  # diverts fired for parcels the photo-eye never reported
    releases_dropped: int = 0  # held releases forgotten on divert-all or a new host session
    watchdog_trips: int = 0
    watchdog_tripped: bool = False  # now
    host_fail_closed: bool = False  # the host's last heartbeat said FAIL_CLOSED
    sessions: int = 0  # host epochs seen
    heartbeats_received: int = 0
    corrupted: int = 0  # host frames lost on the wire (``corrupt``): as if their CRC had failed
    noise_bursts: int = 0  # garbage written ahead of a frame (``noise``)
    silent_s: float = 0.0  # time spent deaf and mute (``go_silent``)
    port_losses: int = 0  # times the port vanished (``lose_port``)

    def report(self) -> dict:
        """The figures for a run's summary: collections as their sizes."""
        return {k: (len(v) if isinstance(v, (list, set)) else v) for k, v in vars(self).items()}


class SimPlc:
    """Belt PLC with a diverter; ``path`` is the port the host opens (after ``start``).

    A parcel reaching the diverter goes on only when the PLC holds a release for it (a
    COMMAND with lane 0 within ``tolerance_mm`` of its leading edge) and is not diverting
    everything; every other parcel is diverted. It diverts everything while its watchdog is
    tripped or the host says it fails closed, and forgets the releases it holds when either
    starts and when a new host session (epoch) speaks: after a fault only parcels inspected
    since go on.
    """

    def __init__(self, encoder_now: Callable[[], int], *, counts_per_mm: float,
                 watchdog_s: float = 0.5, heartbeat_s: float = 0.1, remember: int = 256,
                 tolerance_mm: float = 60.0, ack_delay_s: float = 0.0, drop_acks: float = 0.0,
                 corrupt: float = 0.0, noise: float = 0.0, nak_busy: float = 0.0,
                 seed: int = 0):
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
            ("nak_busy", nak_busy, 0 <= nak_busy < 1, "in [0, 1)"),
        ]:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {value!r}")
        self.encoder_now = encoder_now
        self.watchdog_s, self.heartbeat_s = watchdog_s, heartbeat_s
        self.tolerance = round(tolerance_mm * counts_per_mm)  # counts
        self.ack_delay_s, self.drop_acks = ack_delay_s, drop_acks
        self.corrupt, self.noise, self.nak_busy = corrupt, noise, nak_busy  # fault injection
        self.stats = SimStats()
        self.path = ""
        self._dir = ""
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._expected: dict[str, int] = {}  # parcel ID -> true leading edge (counts)
        self._held: dict[tuple[int, int], Command] = {}  # (epoch, key) -> command in force
        self._recent: deque[tuple[int, int]] = deque(maxlen=remember)  # applied (epoch, key)
        self._outcomes: dict[str, str] = {}
        self._outbox: list[tuple[float, int, bytes]] = []  # heap of (due, order, frame)
        self._order = itertools.count()
        self._seq = 0
        self._epoch = 0  # the host session followed
        self._diverted = 0  # since power-up, as STATUS reports it
        self._last_heard = 0.0
        self._silent_until = 0.0
        self._master = self._slave = -1
        self._threads: list[threading.Thread] = []

    # --- public ---------------------------------------------------------------------------

    def start(self) -> SimPlc:
        # The host opens a symlink to the pty, as a udev rule names a USB serial adapter: the
        # name outlives the device, so ``lose_port`` can pull it and plug a new one in.
        self._dir = tempfile.mkdtemp(prefix="edge-plc-")
        self.path = os.path.join(self._dir, "tty")
        self._plug()
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
        self._unplug()
        shutil.rmtree(self._dir, ignore_errors=True)

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

    def applied_keys(self) -> set[tuple[int, int]]:
        with self._lock:
            return set(self.stats.applied)

    def mark_unheard(self, command: Command) -> None:
        """An ACK for applied ``command`` was dropped (``drop_acks``)."""
        with self._lock:
            self.stats.unheard.add((command.epoch, command.key))

    def unheard_keys(self) -> set[tuple[int, int]]:
        """Applied commands with at least one ACK dropped (``SimStats.unheard``)."""
        with self._lock:
            return set(self.stats.unheard)

    def go_silent(self, seconds: float) -> None:
        """Fault: the serial side goes deaf and mute for ``seconds``, the port stays present
        and the diverter keeps working (its watchdog then trips: divert all)."""
        self._silent_until = time.monotonic() + seconds
        self.stats.silent_s += seconds

    def lose_port(self, seconds: float) -> None:
        """Fault: the port vanishes (cable pulled) and returns ``seconds`` later."""
        with self._lock:
            self._unplug()
            self.stats.port_losses += 1
        timer = threading.Timer(seconds, self._replug)
        timer.daemon = True
        timer.start()

    # --- the port ---------------------------------------------------------------------------

    def _plug(self) -> None:
        self._master, self._slave = os.openpty()
        # We keep the slave open too: the device node and its raw settings then outlive host
        # reconnects, as a real serial port does, and reads on the master never see EIO.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)  # a PLC talking to nobody drops frames, not time
        tmp = self.path + ".new"
        os.symlink(os.ttyname(self._slave), tmp)
        os.replace(tmp, self.path)

    def _unplug(self) -> None:
        if self._master < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = -1

    def _replug(self) -> None:
        with self._lock:
            if not self._stop.is_set() and self._master < 0:
                self._plug()

    # --- receiving --------------------------------------------------------------------------

    def _read_loop(self) -> None:
        decoder = frames.Decoder()  # hunts past line noise by itself
        while not self._stop.is_set():
            master = self._master
            if master < 0:
                time.sleep(TICK_S)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.02)
                data = os.read(master, 1024) if ready else b""
            except (OSError, ValueError):  # the port was pulled under us
                time.sleep(TICK_S)
                continue
            if not data or time.monotonic() < self._silent_until:
                continue
            for frame in decoder.feed(data):
                if self.corrupt and self._rng.random() < self.corrupt:
                    self.stats.corrupted += 1  # damaged on the wire: the decoder would drop it
                    continue
                self._heard(frame)

    def _heard(self, frame: Frame) -> None:
        if frame.kind == Kind.HEARTBEAT:
            try:
                beat = Heartbeat.unpack(frame.payload)
            except ValueError:
                self.feed_watchdog()
                return
            self.heartbeat(beat.epoch, beat.state == HostState.FAIL_CLOSED)
        elif frame.kind == Kind.COMMAND:
            self.feed_watchdog()
            self.stats.commands_received += 1
            try:
                command = Command.unpack(frame.payload)
            except ValueError:
                self.stats.bad_payload += 1
                self._reply(frames.nak(self._next_seq(), frame.seq, NakReason.BAD_PAYLOAD))
                return
            refused = self.apply(command)
            if refused is not None:
                self._reply(frames.nak(self._next_seq(), frame.seq, refused))
            elif self._rng.random() < self.drop_acks:
                self.stats.acks_dropped += 1
                self.mark_unheard(command)
            else:
                self._reply(frames.ack(self._next_seq(), frame.seq))
        else:
            self.feed_watchdog()

    # --- the PLC's program, whatever the fieldbus (callers hold no lock; these take it) ----

    def feed_watchdog(self) -> None:
        """A valid frame (or register write) from the host arrived."""
        with self._lock:
            self._last_heard = time.monotonic()
            if self.stats.watchdog_tripped:
                self.stats.watchdog_tripped = False
                self._queue_status()

    def heartbeat(self, epoch: int, fail_closed: bool) -> None:
        """The host's heartbeat: its session and whether it fails closed."""
        self.feed_watchdog()
        with self._lock:
            self.stats.heartbeats_received += 1
            self._follow(epoch)
            if fail_closed != self.stats.host_fail_closed:
                self.stats.host_fail_closed = fail_closed
                if fail_closed:
                    self._drop_releases()
                self._queue_status()

    def apply(self, command: Command) -> NakReason | None:
        """Schedule ``command``; the NAK reason when it is refused. A repeat of an applied
        (epoch, key) is accepted and not applied again."""
        with self._lock:
            self._follow(command.epoch)
            key = (command.epoch, command.key)
            if key in self._recent:  # a resend whose ACK was lost: answer, do not apply again
                self.stats.duplicates += 1
                return None
            if self.nak_busy and self._rng.random() < self.nak_busy:
                self.stats.busy += 1
                return NakReason.BUSY
            if command.encoder < self.encoder_now():
                self.stats.too_late += 1
                return NakReason.TOO_LATE
            self._recent.append(key)
            self.stats.applied.append(key)
            if not (command.releases and self._divert_all()):
                self._held[key] = command  # a release during divert-all is not kept
            return None

    def _follow(self, epoch: int) -> None:
        """A new host session: what the last one released was never confirmed by this one."""
        if epoch != self._epoch:
            self._epoch = epoch
            self.stats.sessions += 1
            self._drop_releases()

    def _drop_releases(self) -> None:
        for key in [k for k, c in self._held.items() if c.releases]:
            del self._held[key]
            self.stats.releases_dropped += 1

    # --- the belt: diverter, watchdog, outgoing frames ----------------------------------------

    def _divert_all(self) -> DivertAll:
        if self.stats.watchdog_tripped:
            return DivertAll.WATCHDOG
        if self.stats.host_fail_closed:
            return DivertAll.HOST_FAIL_CLOSED
        return DivertAll.NO

    def _belt_loop(self) -> None:
        beat, next_beat, next_status = 0, 0.0, 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            mute = now < self._silent_until
            with self._lock:
                self._check_watchdog(now)
                self._divert_arrivals(self.encoder_now())
                if now >= next_beat:
                    beat += 1
                    self._queue(frames.heartbeat(self._next_seq(), beat, self._epoch,
                                                 HostState(bool(self._divert_all()))))
                    next_beat = now + self.heartbeat_s
                if now >= next_status:
                    self._queue_status()
                    next_status = now + STATUS_S
                due = []
                while self._outbox and self._outbox[0][0] <= now:
                    due.append(heapq.heappop(self._outbox)[2])
            for data in due:
                if not mute:
                    self._write(data)
            time.sleep(TICK_S)

    def _check_watchdog(self, now: float) -> None:
        if not self.stats.watchdog_tripped and now - self._last_heard > self.watchdog_s:
            self.stats.watchdog_tripped = True
            self.stats.watchdog_trips += 1
            self._drop_releases()
            self._queue_status()

    def _match(self, parcel_id: str, edge: int) -> Command | None:
        """The command for the parcel whose leading edge is at ``edge``: the one under its
        name, else the nearest within tolerance that names no other expected parcel (the
        pusher acts on position: a label the host could not read still names a position)."""
        named = [k for k, c in self._held.items() if c.label == parcel_id]
        near = sorted((abs(c.encoder - edge), k) for k, c in self._held.items()
                      if abs(c.encoder - edge) <= self.tolerance
                      and c.label not in self._expected)
        key = named[0] if named else near[0][1] if near else None
        return None if key is None else self._held.pop(key)

    def _divert_arrivals(self, position: int) -> None:
        for parcel_id, edge in list(self._expected.items()):
            if edge > position:
                continue
            del self._expected[parcel_id]
            command = self._match(parcel_id, edge)
            on_target = command is not None and abs(command.encoder - edge) <= self.tolerance
            if command is not None and not on_target:
                self.stats.misfires += 1  # never honoured: the parcel is diverted
            released = on_target and command.releases and not self._divert_all()
            self._outcomes[parcel_id] = "passed" if released else "diverted"
            self._diverted += not released
        for key, command in list(self._held.items()):
            # Commands for parcels the photo-eye missed, once the latest position a matching
            # parcel could have had has gone by: a divert fires, a release lapses.
            if command.encoder + self.tolerance < position and command.label not in \
                    self._expected:
                del self._held[key]
                if not command.releases:
                    self.stats.unexpected += 1
                    self._diverted += 1

    # --- sending ----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        with self._lock:
            self._seq = (self._seq + 1) % 256
            return self._seq

    def _reply(self, frame: Frame) -> None:
        self._queue(frame, delay=self.ack_delay_s)  # a slow PLC answers late

    def _queue_status(self) -> None:
        self._queue(frames.status(self._next_seq(), self._divert_all(), self._diverted,
                                  self._epoch, self.stats.watchdog_trips))

    def _queue(self, frame: Frame, delay: float = 0.0) -> None:
        with self._lock:
            heapq.heappush(self._outbox,
                           (time.monotonic() + delay, next(self._order), frame.encode()))

    def _write(self, data: bytes) -> None:
        if self.noise and self._rng.random() < self.noise:
            self.stats.noise_bursts += 1
            garbage = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 24)))
            data = garbage + bytes([frames.STX]) + data  # a stray STX makes the host hunt
        try:
            os.write(self._master, data)
        except OSError:  # line full because no host reads it, or the port is pulled
            pass
