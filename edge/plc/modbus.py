"""Divert commands to a belt PLC that speaks Modbus RTU instead of our framed protocol.

``ModbusDivertLink`` has ``PlcLink``'s surface: ``divert`` queues a command and returns at once;
one sender thread owns the pymodbus serial client, writes each command to the PLC's command
block (docs/modbus.md), retries it a bounded number of times, reports it lost when it is never
confirmed, writes a watchdog register every ``heartbeat_s``, and reopens a vanished port
without losing queued commands. Modbus has no sequence numbers, so a 16-bit command counter in
the block tells the PLC a new command from a repeat of the last one.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException

from edge.config import BLOCK_REGISTERS, ModbusMap
from edge.plc.frames import MAX_ID, Divert
from edge.plc.link import LinkStats

RECONNECT_PAUSE_S = 0.1  # between attempts to reopen a vanished port


def command_registers(command: Divert, counter: int) -> list[int]:
    """The command block for ``command``: encoder as int64 in 4 registers, most significant
    first; lane; counter (1..65535); CRC-32 of the ASCII parcel ID in 2 registers, high first.
    Raises ValueError naming the bad field."""
    try:
        pid = command.parcel_id.encode("ascii")
    except UnicodeEncodeError:
        pid = b""
    if not 1 <= len(pid) <= MAX_ID:
        raise ValueError(f"parcel id must be 1..{MAX_ID} ASCII characters, got "
                         f"{command.parcel_id!r}")
    if not -(2**63) <= command.encoder < 2**63:
        raise ValueError(f"encoder {command.encoder} does not fit an int64")
    if not 0 <= command.lane <= 255:
        raise ValueError(f"lane must be 0..255, got {command.lane}")
    if not 1 <= counter <= 0xFFFF:
        raise ValueError(f"counter must be 1..65535, got {counter}")
    packed = struct.pack(">qHHI", command.encoder, command.lane, counter, zlib.crc32(pid))
    return list(struct.unpack(f">{BLOCK_REGISTERS}H", packed))


@dataclass
class Pending:
    """A command on its way: written ``attempts`` times; in coil mode, confirmed when the PLC
    clears the coil before ``latch_deadline`` (monotonic s; None while not awaiting it)."""

    counter: int
    divert: Divert
    registers: list[int]
    attempts: int = 0
    latch_deadline: float | None = None


class _PortGone(Exception):
    """The serial port failed or vanished: nothing reached the line, so no attempt is spent."""


class ModbusDivertLink:
    """Modbus RTU master towards the belt PLC (see module docstring and docs/modbus.md).
    ``stats.nak`` counts Modbus exception responses; such an attempt is retried."""

    def __init__(self, port: str, modbus_map: ModbusMap | None = None, baudrate: int = 19_200,
                 ack_timeout_s: float = 0.1, latch_timeout_s: float = 0.5,
                 max_attempts: int = 5, heartbeat_s: float = 0.1,
                 on_lost: Callable[[Divert], None] | None = None):
        self.map = modbus_map or ModbusMap()
        self.latch_timeout_s, self.max_attempts, self.heartbeat_s = (latch_timeout_s,
                                                                     max_attempts, heartbeat_s)
        self.on_lost = on_lost
        self.stats = LinkStats()
        # Our own retries and timeouts only: pymodbus retrying inside a call would hide attempts.
        self._client = ModbusSerialClient(port, baudrate=baudrate, timeout=ack_timeout_s,
                                          retries=0)
        self._counter = 0
        self._queue: deque[Pending] = deque()
        self._in_flight: Pending | None = None
        self._opened = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send_loop, daemon=True)

    # --- public ---------------------------------------------------------------------------

    def start(self) -> ModbusDivertLink:
        self._client.connect()  # a port missing now is opened later by the sender loop
        self._opened = self._client.connected  # so that a late first open is no "reconnect"
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._client.close()

    def divert(self, parcel_id: str, encoder: int, lane: int = 1) -> int:
        """Queue a divert; returns its command counter (1..65535). Never blocks on the line."""
        command = Divert(parcel_id, encoder, lane)
        with self._lock:
            counter = self._counter % 0xFFFF + 1  # 0 is the PLC's power-up value: never a command
            registers = command_registers(command, counter)  # a bad ID raises here, in the caller
            self._counter = counter
            self._queue.append(Pending(counter, command, registers))
        return counter

    @property
    def unacked(self) -> int:
        with self._lock:
            return len(self._queue) + (self._in_flight is not None)

    # --- internals --------------------------------------------------------------------------

    def _call(self, request: Callable, *args):
        """One Modbus request; the reply, or None when the PLC did not answer or refused it."""
        try:
            reply = request(*args, device_id=self.map.unit)
        except ModbusException as exc:
            if not self._client.connected:  # pymodbus closes the port on an OS error
                raise _PortGone from exc
            return None
        if reply.isError():
            self.stats.nak += 1
            return None
        return reply

    def _send_loop(self) -> None:
        beat, next_beat = 0, 0.0
        while not self._stop.is_set():
            try:
                if not self._client.connected:
                    self._reconnect()
                    continue
                if time.monotonic() >= next_beat:
                    beat = (beat + 1) & 0xFFFF
                    self._call(self._client.write_register, self.map.heartbeat_address, beat)
                    next_beat = time.monotonic() + self.heartbeat_s
                if not self._step():
                    time.sleep(0.005)
            except _PortGone:
                continue  # the next turn reopens it; the command in flight stays in flight

    def _reconnect(self) -> None:
        time.sleep(RECONNECT_PAUSE_S)
        if self._client.connect():
            self.stats.reconnects += self._opened
            self._opened = True

    def _step(self) -> bool:
        """Move the command in flight on by one request; False when there was none."""
        with self._lock:
            if self._in_flight is None and self._queue:
                self._in_flight = self._queue.popleft()
            pending = self._in_flight
        if pending is None:
            return False
        if pending.latch_deadline is not None and time.monotonic() < pending.latch_deadline:
            reply = self._call(self._client.read_coils, self.map.coil_address)
            if reply is not None and not reply.bits[0]:
                self._finish(acked=True)
            return True
        if pending.attempts >= self.max_attempts:
            self._finish(acked=False)
            return True
        written = self._call(self._client.write_registers, self.map.address, pending.registers)
        if written is not None and self.map.mode == "coil":
            written = self._call(self._client.write_coil, self.map.coil_address, True)
        # Counted only now: an attempt that died with the port never reached the PLC.
        pending.attempts += 1
        if pending.attempts == 1:
            self.stats.sent += 1
        else:
            self.stats.resent += 1
        if written is None:
            pending.latch_deadline = None  # the next step writes it again
        elif self.map.mode == "coil":
            pending.latch_deadline = time.monotonic() + self.latch_timeout_s
        else:
            self._finish(acked=True)
        return True

    def _finish(self, acked: bool) -> None:
        with self._lock:
            done, self._in_flight = self._in_flight, None
        if acked:
            self.stats.acked += 1
            return
        self.stats.lost.append(done.divert.parcel_id)
        if self.on_lost:
            self.on_lost(done.divert)
