"""Release and divert commands to a belt PLC that speaks Modbus RTU instead of our framed
protocol (docs/modbus.md).

``ModbusDivertLink`` has ``PlcLink``'s surface: ``send`` queues a command and returns at once;
one sender thread owns the pymodbus serial client, writes each command into the PLC's command
block, retries it a bounded number of times, and ends it in exactly one ``Outcome`` reported to
``on_done``; every outcome but ``acked`` is a lost command and also a fault (``on_fault``), as
are a PLC that answers nothing for ``silent_s`` and a port that vanishes (it is reopened, queued
commands kept). A watchdog register is incremented every ``heartbeat_s``; while ``fail_closed``
is set it holds still, so the PLC's watchdog trips and it diverts every parcel. Modbus has no
sequence numbers: the PLC tells a new command from a repeat by the (epoch, key) in the block.
"""

from __future__ import annotations

import contextlib
import logging
import math
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import serial
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException

from edge.config import BLOCK_REGISTERS, ModbusMap
from edge.plc.frames import Command
from edge.plc.link import CommandLink, LinkStats, Outcome, new_epoch

# The link reports every failed request itself (outcomes, faults, alarms); pymodbus's own lines
# (timeouts with hex dumps of the last frames) would repeat them on the operator's console.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

RECONNECT_PAUSE_S = 0.1  # between attempts to reopen a vanished port
READ_COILS, WRITE_COIL, WRITE_REGISTER, WRITE_REGISTERS = 1, 5, 6, 16  # function codes
_BLOCK = struct.Struct(">qHIII")  # encoder, lane, epoch, key, label tag: BLOCK_REGISTERS words


def label_tag(label: str) -> int:
    """CRC-32 (zlib) of the whole label in UTF-8, for the PLC's log. Never raises: a character
    UTF-8 cannot carry (a lone surrogate from a misread) counts as "?", as in frames.wire_label.
    Unlike the framed protocol nothing is cut at 40 bytes: only the tag travels."""
    return zlib.crc32(label.encode("utf-8", "replace"))


def command_registers(command: Command) -> list[int]:
    """The command block for ``command``: encoder int64 in 4 registers, lane, epoch and key
    uint32 in 2 each, the label's tag in 2; every multi-register value most significant first.
    Raises ValueError for key 0: with epoch 0 it would be the PLC's all-zero power-up block."""
    if command.key < 1:
        raise ValueError(f"key must be >= 1 (0 names no command), got {command.key}")
    packed = _BLOCK.pack(command.encoder, command.lane, command.epoch, command.key,
                         label_tag(command.label))
    return list(struct.unpack(f">{BLOCK_REGISTERS}H", packed))


def decode_block(words: list[int]) -> tuple[Command, int]:
    """(command, label tag) from the command block, as the PLC reads it. The label is not in
    the block, so the command's is empty. Raises ValueError naming what is wrong."""
    if len(words) != BLOCK_REGISTERS or not all(0 <= w <= 0xFFFF for w in words):
        raise ValueError(f"a command block is {BLOCK_REGISTERS} 16-bit registers, got {words!r}")
    encoder, lane, epoch, key, tag = _BLOCK.unpack(struct.pack(f">{BLOCK_REGISTERS}H", *words))
    if key == 0:
        raise ValueError(f"key 0 names no command (epoch {epoch})")
    return Command(key, encoder, lane, epoch), tag


def answers(reply, function_code: int, address: int) -> bool:
    """Whether ``reply`` answers a request ``function_code`` at ``address``. RTU replies carry
    no transaction id: a late reply to an earlier request (a heartbeat, say) must not confirm
    this one. A read reply and an exception response echo no address."""
    if reply.function_code & 0x7F != function_code:
        return False
    return reply.isError() or function_code == READ_COILS or reply.address == address


@dataclass
class Pending:
    """A command on its way: written ``attempts`` times; in coil mode, confirmed when the PLC
    clears the coil before ``latch_deadline`` (monotonic s; None while not awaiting it)."""

    command: Command
    registers: list[int]
    expires_at: float
    attempts: int = 0
    latch_deadline: float | None = None


class _PortGone(Exception):
    """The serial port failed or vanished: nothing reached the line, so no attempt is spent."""


class ModbusDivertLink(CommandLink):
    """Modbus RTU master towards the belt PLC (see module docstring and docs/modbus.md).
    ``stats.nak`` counts Modbus exception responses; such an attempt is retried."""

    def __init__(self, url: str, modbus_map: ModbusMap | None = None, baudrate: int = 19_200,
                 ack_timeout_s: float = 0.1, latch_timeout_s: float = 0.5,
                 max_attempts: int = 5, heartbeat_s: float = 0.1, silent_s: float = 0.5,
                 epoch: int | None = None,
                 on_done: Callable[[Command, Outcome], None] | None = None,
                 on_sent: Callable[[Command, float], None] | None = None,
                 on_fault: Callable[[str, str], None] | None = None):
        self.url, self.baudrate, self.map = url, baudrate, modbus_map or ModbusMap()
        self.ack_timeout_s, self.latch_timeout_s = ack_timeout_s, latch_timeout_s
        self.max_attempts, self.heartbeat_s, self.silent_s = max_attempts, heartbeat_s, silent_s
        self.epoch = new_epoch() if epoch is None else epoch
        self.on_done, self.on_sent, self.on_fault = on_done, on_sent, on_fault
        self.fail_closed = False  # set by the host: the watchdog register then holds still
        self.stats = LinkStats()
        # Our own retries and timeouts only: pymodbus retrying inside a call would hide attempts.
        self._client = ModbusSerialClient(url, baudrate=baudrate, timeout=ack_timeout_s,
                                          retries=0)
        self._queue: deque[Pending] = deque()
        self._in_flight: Pending | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send_loop, daemon=True, name="modbus-send")
        self._beat, self._next_beat = 0, 0.0
        self._last_answer = time.monotonic()
        self._silent = self._port_gone = False  # in a silence / a port loss now

    # --- public ---------------------------------------------------------------------------

    def start(self) -> ModbusDivertLink:
        """Open the port (a missing port raises ``serial.SerialException`` here) and start."""
        if not self._client.connect():
            raise serial.SerialException(f"cannot open the PLC's port {self.url!r}")
        self._last_answer = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending; every command still queued or in flight ends ``unsent``."""
        self._stop.set()
        if self._thread.is_alive():
            # A request in progress ends within its timeout: wait for it, so that it cannot
            # report the command in flight while we do.
            self._thread.join(timeout=2.0 + 2 * self.ack_timeout_s)
        with self._lock:
            left = ([self._in_flight] if self._in_flight else []) + list(self._queue)
            self._in_flight, self._queue = None, deque()
        for pending in left:
            self._finish(pending.command, Outcome.UNSENT)
        self._client.close()

    def send(self, key: int, encoder: int, lane: int, label: str = "",
             expires_at: float = math.inf) -> Command:
        """Queue a command for parcel ``key`` (1.., release with lane 0, else divert); it
        expires at ``expires_at`` (monotonic s). Never blocks on the line; never refuses a
        label. A bad key, encoder or lane raises ValueError here, in the caller's thread."""
        command = Command(key, encoder, lane, self.epoch, label)
        pending = Pending(command, command_registers(command), expires_at)
        with self._lock:
            self._queue.append(pending)
        return command

    @property
    def silent_for_s(self) -> float:
        """Seconds since the PLC last answered."""
        return time.monotonic() - self._last_answer

    @property
    def unacked(self) -> int:
        with self._lock:
            return len(self._queue) + (self._in_flight is not None)

    # --- outcomes and faults ------------------------------------------------------------------

    def _end_in_flight(self, pending: Pending, outcome: Outcome) -> None:
        """Report ``pending`` unless ``stop`` took it meanwhile (one outcome per command)."""
        with self._lock:
            if self._in_flight is not pending:
                return
            self._in_flight = None
        self._finish(pending.command, outcome)

    def _expire(self, now: float) -> None:
        with self._lock:
            ended = [p for p in (self._in_flight, *self._queue)
                     if p is not None and now >= p.expires_at]
            if self._in_flight in ended:
                self._in_flight = None
            self._queue = deque(p for p in self._queue if now < p.expires_at)
        for pending in ended:
            self._finish(pending.command, Outcome.EXPIRED)

    # --- the sender loop ------------------------------------------------------------------------

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._send_once()
            except Exception as exc:  # noqa: BLE001 - the link must outlive any one fault
                # A fault handler that raises too must not end the thread either.
                with contextlib.suppress(Exception):
                    self._fault("link-error", f"{type(exc).__name__}: {exc}")
                time.sleep(0.01)

    def _send_once(self) -> None:
        self._expire(time.monotonic())  # also while the port is gone
        if not self._client.connected:
            self._reconnect()
            return
        try:
            self._beat_if_due()
            busy = self._step()
        except _PortGone:
            self._lose_port()
            return
        self._check_silence()
        if not busy:
            time.sleep(0.005)

    def _lose_port(self) -> None:
        if not self._port_gone:
            self._port_gone = True
            self._fault("port-gone", f"the PLC's port {self.url} failed: reopening it")

    def _reconnect(self) -> None:
        time.sleep(RECONNECT_PAUSE_S)
        if self._client.connect():
            self.stats.reconnects += 1
            self._port_gone = False
            self._last_answer = time.monotonic()  # silence counts from the reopening

    def _check_silence(self) -> None:
        silent_for = time.monotonic() - self._last_answer
        if silent_for > self.silent_s and not self._silent:
            self._silent = True
            self.stats.silences += 1
            self._fault("plc-silent", f"no answer from the PLC for {silent_for:.2f} s")

    def _call(self, function_code: int, request: Callable, address: int, *args):
        """One Modbus request; the reply, or None when the PLC did not answer it, answered
        another request or refused it."""
        try:
            reply = request(address, *args, device_id=self.map.unit)
        except ModbusException as exc:
            if not self._client.connected:  # pymodbus closes the port on an OS error
                raise _PortGone from exc
            return None
        self._last_answer, self._silent = time.monotonic(), False  # any reply is an answer
        if not answers(reply, function_code, address):
            return None
        if reply.isError():
            self.stats.nak += 1
            return None
        return reply

    def _beat_if_due(self) -> None:
        if time.monotonic() < self._next_beat:
            return
        if not self.fail_closed:
            self._beat = (self._beat + 1) & 0xFFFF
        # While failing closed the same value is written again: the line stays watched for
        # silence, and the PLC's watchdog, which wants a change, trips.
        self._call(WRITE_REGISTER, self._client.write_register, self.map.heartbeat_address,
                   self._beat)
        self._next_beat = time.monotonic() + self.heartbeat_s

    def _step(self) -> bool:
        """Move the command in flight on by one request; False when there was none."""
        with self._lock:
            if self._in_flight is None and self._queue:
                self._in_flight = self._queue.popleft()
            pending = self._in_flight
        if pending is None:
            return False
        if pending.latch_deadline is not None and time.monotonic() < pending.latch_deadline:
            reply = self._call(READ_COILS, self._client.read_coils, self.map.coil_address)
            if reply is not None and not reply.bits[0]:
                self._end_in_flight(pending, Outcome.ACKED)
            return True
        if pending.attempts >= self.max_attempts:
            self._end_in_flight(pending, Outcome.UNANSWERED)
            return True
        self._attempt(pending)
        return True

    def _attempt(self, pending: Pending) -> None:
        started = time.monotonic()
        written = self._call(WRITE_REGISTERS, self._client.write_registers, self.map.address,
                             pending.registers)
        if written is not None and self.map.mode == "coil":
            written = self._call(WRITE_COIL, self._client.write_coil, self.map.coil_address, True)
        # Counted only now: an attempt that died with the port never reached the PLC.
        pending.attempts += 1
        if pending.attempts == 1:
            self.stats.sent += 1
            if self.on_sent:
                self.on_sent(pending.command, started)
        else:
            self.stats.resent += 1
        if written is None:
            pending.latch_deadline = None  # the next step writes it again
        elif self.map.mode == "coil":
            pending.latch_deadline = time.monotonic() + self.latch_timeout_s
        else:
            self._end_in_flight(pending, Outcome.ACKED)
