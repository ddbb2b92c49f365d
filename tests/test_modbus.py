"""The Modbus divert link against pymodbus's own RTU server, over real pseudo-terminals.

Both pymodbus ends open a serial device by path, and a pty's master end has none, so the test
joins two pty pairs with a forwarding thread: server on one slave, link on the other (through a
symlink, which ``unplug``/``replug`` swap to make the port vanish and come back).
"""

import asyncio
import os
import select
import struct
import threading
import time
import tty
import zlib

import pytest
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.plc.frames import Divert
from edge.plc.modbus import ModbusDivertLink, ModbusMap, command_registers

UNIT = 7
BLOCK, COIL, WATCHDOG = 100, 5, 200
FC_READ_COILS, FC_WRITE_COIL, FC_READ_REGS, FC_WRITE_REG, FC_WRITE_REGS = 1, 5, 3, 6, 16


def _pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)  # a full buffer towards a stopped server must not hang us
    return master, slave


def wait_for(condition, timeout_s=2.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


class Wire:
    """Two pty pairs joined master to master. ``plc_path`` for the server, ``host_path`` (a
    symlink) for the link. The test keeps both slaves open, so no side ever sees a hang-up
    except when ``unplug`` closes the host pair, as pulling a USB adapter would."""

    def __init__(self, tmp_path):
        self.plc_master, self._plc_slave = _pty()
        self.plc_path = os.ttyname(self._plc_slave)
        self.host_path = str(tmp_path / "plc-port")
        self.host_master = None
        self.replug()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._forward, daemon=True)
        self._thread.start()

    def _forward(self):
        while not self._stop.is_set():
            host = self.host_master
            fds = [self.plc_master] + ([host] if host is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.005)
                for fd in ready:
                    data = os.read(fd, 1024)
                    to = host if fd == self.plc_master else self.plc_master
                    if to is not None:
                        os.write(to, data)
            except OSError:
                continue  # the host pair was unplugged under us

    def unplug(self):
        master, slave = self.host_master, self._host_slave
        self.host_master = None
        time.sleep(0.02)  # let the forwarder drop the fd before it is closed
        os.close(master)
        os.close(slave)
        os.unlink(self.host_path)

    def replug(self):
        master, self._host_slave = _pty()
        if os.path.lexists(self.host_path):
            os.unlink(self.host_path)
        os.symlink(os.ttyname(self._host_slave), self.host_path)
        self.host_master = master

    def close(self):
        self._stop.set()
        self._thread.join(timeout=1)
        if self.host_master is not None:
            self.unplug()
        os.close(self.plc_master)
        os.close(self._plc_slave)


class Plc:
    """pymodbus's serial RTU server in its own thread and event loop. ``writes`` records every
    write request as (function code, address, values)."""

    def __init__(self, path):
        self.writes = []
        device = SimDevice(id=UNIT, action=self._record, simdata=(
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],  # coils
            [SimData(0, values=False, datatype=DataType.BITS)],  # discrete inputs
            [SimData(0, count=256, values=0, datatype=DataType.REGISTERS)],  # holding
            [SimData(0, values=0, datatype=DataType.REGISTERS)]))  # input registers
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server = self._run(self._serve(device, path))

    async def _serve(self, device, path):
        server = ModbusSerialServer(device, port=path, baudrate=19_200)
        await server.serve_forever(background=True)
        return server

    async def _record(self, function_code, _start, address, _count, _registers, values):
        if values is not None:
            self.writes.append((function_code, address, list(values)))

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=2)

    def registers(self, address, count):
        return self._run(self.server.async_getValues(UNIT, FC_READ_REGS, address, count))

    def coil(self, address):
        return self._run(self.server.async_getValues(UNIT, FC_READ_COILS, address, 1))[0]

    def clear_coil(self, address):
        self._run(self.server.async_setValues(UNIT, FC_WRITE_COIL, address, [False]))

    def writes_to(self, function_code, address):
        return [v for fc, a, v in self.writes if (fc, a) == (function_code, address)]

    def stop(self):
        if self.loop.is_running():
            self._run(self.server.shutdown())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=1)


@pytest.fixture
def wire(tmp_path):
    wire = Wire(tmp_path)
    yield wire
    wire.close()


@pytest.fixture
def plc(wire):
    plc = Plc(wire.plc_path)
    yield plc
    plc.stop()


@pytest.fixture
def make_link(wire):
    links = []

    def make(mode="register", **kwargs):
        modbus_map = ModbusMap(unit=UNIT, mode=mode, address=BLOCK, coil_address=COIL,
                               heartbeat_address=WATCHDOG)
        kwargs = {"ack_timeout_s": 0.1, "heartbeat_s": 0.05, **kwargs}  # slack for a busy CI
        links.append(ModbusDivertLink(wire.host_path, modbus_map, **kwargs).start())
        return links[-1]

    yield make
    for link in links:
        link.stop()


def crc_words(parcel_id):
    crc = zlib.crc32(parcel_id.encode("ascii"))
    return [crc >> 16, crc & 0xFFFF]


def block(encoder, lane, counter, parcel_id):
    return list(struct.unpack(">4H", struct.pack(">q", encoder))) + [lane, counter,
                                                                      *crc_words(parcel_id)]


# --- the pure command block ---------------------------------------------------------------------

@pytest.mark.parametrize("parcel_id, encoder, lane, counter, expected", [
    # encoder words most significant first, then lane, counter, CRC-32 of the ID high word first
    ("P1", 0x0102030405060708, 2, 1, [0x0102, 0x0304, 0x0506, 0x0708, 2, 1, *crc_words("P1")]),
    # a negative encoder is two's complement over all four words
    ("P1", -2, 1, 65535, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE, 1, 65535, *crc_words("P1")]),
    ("X" * 32, 0, 0, 7, [0, 0, 0, 0, 0, 7, *crc_words("X" * 32)]),  # longest ID, lane 0
    ("", 0, 1, 1, "parcel id"),  # empty ID
    ("X" * 33, 0, 1, 1, "parcel id"),  # ID too long
    ("colis-é", 0, 1, 1, "parcel id"),  # not ASCII
    ("P1", 2**63, 1, 1, "int64"),  # encoder out of range
    ("P1", 0, 256, 1, "lane"),
    ("P1", 0, 1, 0, "counter"),  # 0 is the PLC's power-up value, never a command
])
def test_command_registers(parcel_id, encoder, lane, counter, expected):
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            command_registers(Divert(parcel_id, encoder, lane), counter)
    else:
        assert command_registers(Divert(parcel_id, encoder, lane), counter) == expected


def test_map_refuses_watchdog_inside_command_block():
    with pytest.raises(ValueError, match="heartbeat_address 103"):
        ModbusMap(address=100, heartbeat_address=103)


def test_bad_parcel_id_raises_in_callers_thread():
    link = ModbusDivertLink("/dev/null-never-opened")  # never started: no port is needed
    for bad in ("", "é", "X" * 33):
        with pytest.raises(ValueError, match="parcel id"):
            link.divert(bad, 1000)
    assert link.unacked == 0
    assert link.divert("P1", 1000) == 1  # a refused ID used up no counter value


# --- against pymodbus's server ------------------------------------------------------------------

def test_register_mode_divert_lands_in_the_block(plc, make_link):
    link = make_link()
    assert link.divert("JJD000123", 0x0102030405060708, lane=2) == 1
    wait_for(lambda: link.stats.acked == 1)
    assert plc.registers(BLOCK, 8) == block(0x0102030405060708, 2, 1, "JJD000123")
    assert link.unacked == 0


def test_each_divert_is_written_once_with_the_next_counter(plc, make_link):
    link = make_link()
    for i in range(5):
        link.divert(f"P{i}", 1000 + i, lane=1 + i % 2)
    wait_for(lambda: link.stats.acked == 5)
    written = plc.writes_to(FC_WRITE_REGS, BLOCK)
    assert [w[5] for w in written] == [1, 2, 3, 4, 5]
    assert written[-1] == block(1004, 1, 5, "P4")
    assert (link.stats.sent, link.stats.resent, link.stats.lost) == (5, 0, [])


def test_coil_mode_every_command_is_latched_and_confirmed(plc, make_link):
    latched, stop = [], threading.Event()

    def play_plc():  # the PLC's scan: latch a set coil, apply a counter only once, clear it
        while not stop.is_set():
            if plc.coil(COIL):
                words = plc.registers(BLOCK, 8)
                if not latched or latched[-1][2] != words[5]:
                    encoder = struct.unpack(">q", struct.pack(">4H", *words[:4]))[0]
                    latched.append((encoder, words[4], words[5]))
                plc.clear_coil(COIL)
            time.sleep(0.005)

    scanner = threading.Thread(target=play_plc, daemon=True)
    scanner.start()
    link = make_link(mode="coil")
    for i in range(4):
        link.divert(f"P{i}", -500 + i, lane=3)
    wait_for(lambda: link.stats.acked == 4)
    stop.set()
    scanner.join(timeout=1)
    assert latched == [(-500, 3, 1), (-499, 3, 2), (-498, 3, 3), (-497, 3, 4)]
    assert (link.stats.lost, link.unacked) == ([], 0)


def test_heartbeat_increments_the_watchdog_register(plc, make_link):
    make_link(heartbeat_s=0.02)
    wait_for(lambda: len(plc.writes_to(FC_WRITE_REG, WATCHDOG)) >= 5)
    beats = [values[0] for values in plc.writes_to(FC_WRITE_REG, WATCHDOG)]
    assert beats[:5] == [1, 2, 3, 4, 5]


def test_silent_plc_command_is_retried_then_lost(plc, make_link):
    lost = []
    link = make_link(max_attempts=3, on_lost=lost.append)
    link.divert("P-ok", 10)
    wait_for(lambda: link.stats.acked == 1)
    plc.stop()
    link.divert("P-gone", 20, lane=2)
    wait_for(lambda: link.stats.lost)
    assert lost == [Divert("P-gone", 20, 2)]
    assert (link.stats.sent, link.stats.resent, link.stats.acked) == (2, 2, 1)
    assert (link.stats.lost, link.unacked) == (["P-gone"], 0)


def test_coil_never_cleared_command_is_lost(plc, make_link):
    link = make_link(mode="coil", latch_timeout_s=0.05, max_attempts=2)
    link.divert("P1", 10)
    wait_for(lambda: link.stats.lost == ["P1"])
    assert (link.stats.sent, link.stats.resent, link.stats.acked) == (1, 1, 0)
    assert [w[5] for w in plc.writes_to(FC_WRITE_REGS, BLOCK)] == [1, 1]  # a repeat, same counter


def test_port_vanishes_and_returns_without_losing_queued_commands(wire, plc, make_link):
    link = make_link()
    wire.unplug()
    link.divert("P1", 100)
    link.divert("P2", 200)
    time.sleep(0.3)  # several reopen attempts fail meanwhile
    assert (link.unacked, link.stats.sent) == (2, 0)
    wire.replug()
    wait_for(lambda: link.stats.acked == 2)
    assert link.stats.reconnects >= 1
    assert link.stats.lost == []
    assert [w[5] for w in plc.writes_to(FC_WRITE_REGS, BLOCK)] == [1, 2]
