"""A simulated belt PLC that speaks Modbus RTU (docs/modbus.md), for the demo and soak tests.

pymodbus's own RTU server answers on a pseudo-terminal; behind it, an ``simulator.plc.SimPlc``
runs the belt and the diverter and keeps ground truth (``expect``, ``outcomes``, ``stats``).
Both pymodbus ends open a serial device by path and a pty's master end has none, so two pty
pairs are joined master to master by a forwarding thread: the server on one slave, the host on
the other (``path``, a symlink). The forwarder is also where ``stop_answering`` drops requests
and ``drop_acks`` drops replies, as a noisy or dead line would.

The SimPlc's own serial side is started (it runs the belt) and left unused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import select
import shutil
import tempfile
import threading
import time
import tty
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.config import BLOCK_REGISTERS, ModbusMap
from edge.plc.frames import NakReason
from edge.plc.modbus import decode_block
from simulator.plc import SimPlc, SimStats

FC_WRITE_COIL, FC_WRITE_REGISTER, FC_WRITE_REGISTERS = 5, 6, 16
REFUSALS = {NakReason.BUSY: ExcCodes.DEVICE_BUSY,  # the host writes the command again
            NakReason.TOO_LATE: ExcCodes.ILLEGAL_VALUE,  # the parcel is gone: it was diverted
            NakReason.BAD_PAYLOAD: ExcCodes.ILLEGAL_VALUE}


def written_value(address: int, values: list[int], target: int) -> int | None:
    """What a write of ``values`` from ``address`` on puts into register ``target``, if any."""
    offset = target - address
    return values[offset] if 0 <= offset < len(values) else None


def _raw_pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)  # a full line towards a reader that stopped drops bytes
    return master, slave


class SimModbusPlc:
    """Modbus RTU belt PLC on a pseudo-terminal; ``path`` is the port the host opens (after
    ``start``). ``program_options`` go to the SimPlc (``watchdog_s``, ``tolerance_mm``,
    ``nak_busy``, ``drop_acks``, ``seed``...); its serial-line faults have no effect here.

    A full write of the command block (register mode), or the command coil set on (coil mode),
    is decoded and applied; a refusal is a Modbus exception response. Only a change of the
    watchdog register feeds the PLC's watchdog: when it holds still for ``watchdog_s`` the PLC
    diverts every parcel.
    """

    def __init__(self, encoder_now: Callable[[], int], *, counts_per_mm: float,
                 modbus_map: ModbusMap | None = None, baudrate: int = 19_200,
                 **program_options):
        self.map = modbus_map or ModbusMap()
        self.baudrate = baudrate
        self.program = SimPlc(encoder_now, counts_per_mm=counts_per_mm, **program_options)
        self.path = ""
        self._rng = random.Random(program_options.get("seed", 0))
        self._watchdog = 0  # the register's power-up value
        self._epoch = 0  # of the last command: what a watchdog change tells the program
        self._block: list[int] = [0] * BLOCK_REGISTERS  # coil mode: applied on the coil
        self._deaf_until = 0.0
        self._drop_reply = False
        self._dir = ""
        self._host = self._plc = (-1, -1)  # (master, slave) of each pty pair
        self._stop = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._threads: list[threading.Thread] = []
        self._server: ModbusSerialServer | None = None

    # --- public ---------------------------------------------------------------------------

    @property
    def stats(self) -> SimStats:
        return self.program.stats

    def expect(self, parcel_id: str, leading_edge: int) -> None:
        """Photo-eye: ``parcel_id``'s leading edge reaches the diverter at ``leading_edge``."""
        self.program.expect(parcel_id, leading_edge)

    def outcomes(self) -> dict[str, str]:
        """Parcel ID -> "diverted" | "passed", for expected parcels the diverter has seen."""
        return self.program.outcomes()

    def applied_keys(self) -> set[tuple[int, int]]:
        return self.program.applied_keys()

    def unheard_keys(self) -> set[tuple[int, int]]:
        return self.program.unheard_keys()

    def stop_answering(self, seconds: float) -> None:
        """Fault (modbus-timeout): requests go unheard for ``seconds``, the diverter runs on
        (its watchdog then trips: divert all)."""
        self._deaf_until = time.monotonic() + seconds
        self.stats.silent_s += seconds

    def go_silent(self, seconds: float) -> None:
        """SimPlc's name for the same fault (plc-silent), so a host drives either sim alike."""
        self.stop_answering(seconds)

    def start(self) -> SimModbusPlc:
        self.program.start()
        self._dir = tempfile.mkdtemp(prefix="edge-modbus-plc-")
        self.path = os.path.join(self._dir, "tty")
        self._host, self._plc = _raw_pty(), _raw_pty()
        # The host opens a symlink, as a udev rule names a USB serial adapter.
        os.symlink(os.ttyname(self._host[1]), self.path)
        self._threads = [threading.Thread(target=self._loop.run_forever, daemon=True,
                                          name="sim-modbus-server"),
                         threading.Thread(target=self._forward, daemon=True,
                                          name="sim-modbus-line")]
        for thread in self._threads:
            thread.start()
        self._server = self._run(self._serve(os.ttyname(self._plc[1])))
        return self

    def stop(self) -> None:
        if not self._threads or self._stop.is_set():
            return
        self._stop.set()
        with contextlib.suppress(Exception):  # a server that failed to start has nothing to end
            self._run(self._server.shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        for thread in self._threads:
            thread.join(timeout=1.0)
        for fd in (*self._host, *self._plc):
            os.close(fd)
        shutil.rmtree(self._dir, ignore_errors=True)
        self.program.stop()

    def __enter__(self) -> SimModbusPlc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the server ---------------------------------------------------------------------------

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=5)

    async def _serve(self, port: str) -> ModbusSerialServer:
        # Only the mapped addresses exist: a host with another map gets exception responses.
        holding = [SimData(self.map.address, count=BLOCK_REGISTERS, datatype=DataType.REGISTERS),
                   SimData(self.map.heartbeat_address, datatype=DataType.REGISTERS)]
        device = SimDevice(id=self.map.unit, action=self._on_request, simdata=(
            [SimData(self.map.coil_address, values=False, datatype=DataType.BITS)],  # coils
            [SimData(0, values=False, datatype=DataType.BITS)],  # discrete inputs
            holding,
            [SimData(0, datatype=DataType.REGISTERS)]))  # input registers
        server = ModbusSerialServer(device, port=port, baudrate=self.baudrate)
        await server.serve_forever(background=True)
        return server

    async def _on_request(self, function_code: int, _start: int, address: int, _count: int,
                          _registers: list[int], values: list | None) -> ExcCodes | None:
        """The PLC program's view of each request, before the server stores a write."""
        if values is None:
            return None
        if function_code in (FC_WRITE_REGISTER, FC_WRITE_REGISTERS):
            beat = written_value(address, values, self.map.heartbeat_address)
            if beat is not None:
                self._watchdog_written(beat)
            if function_code == FC_WRITE_REGISTERS and address == self.map.address \
                    and len(values) == BLOCK_REGISTERS:
                if self.map.mode == "register":
                    return self._command(values)
                self._block = list(values)
        if function_code == FC_WRITE_COIL and address == self.map.coil_address \
                and self.map.mode == "coil" and values[0]:
            refused = self._command(self._block)
            if refused is None:
                values[0] = False  # latched at once: the coil reads back cleared
            return refused
        return None

    def _command(self, words: list[int]) -> ExcCodes | None:
        self.stats.commands_received += 1  # repeats and refusals included
        try:
            command, _tag = decode_block(words)
        except ValueError:
            self.stats.bad_payload += 1
            return REFUSALS[NakReason.BAD_PAYLOAD]
        self._epoch = command.epoch
        refused = self.program.apply(command)
        if refused is not None:
            return REFUSALS[refused]
        if self.program.drop_acks and self._rng.random() < self.program.drop_acks:
            self.stats.acks_dropped += 1
            self.program.mark_unheard(command)
            self._drop_reply = True  # applied, but the host never hears so: it writes again
        return None

    def _watchdog_written(self, value: int) -> None:
        if value != self._watchdog:
            self._watchdog = value
            self.program.heartbeat(self._epoch, fail_closed=False)

    # --- the line ---------------------------------------------------------------------------

    def _forward(self) -> None:
        host, plc = self._host[0], self._plc[0]
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([host, plc], [], [], 0.02)
                for fd in ready:
                    self._pass_on(fd, host if fd == plc else plc)
            except OSError:
                time.sleep(0.005)  # a line full towards a host that stopped reading

    def _pass_on(self, source: int, target: int) -> None:
        data = os.read(source, 1024)
        if time.monotonic() < self._deaf_until:
            return  # unheard, and nothing to answer
        if source == self._plc[0] and self._drop_reply:
            self._drop_reply = False
            return
        os.write(target, data)
