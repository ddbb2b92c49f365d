"""The Modbus link against pymodbus's own RTU server, over real pseudo-terminals.

Both pymodbus ends open a serial device by path, and a pty's master end has none, so the test
joins two pty pairs with a forwarding thread: server on one slave, link on the other (through a
symlink, which ``unplug``/``replug`` swap to make the port vanish and come back).
"""

import asyncio
import math
import os
import select
import struct
import threading
import time
import tty
import zlib

import pytest
import serial
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.bit_message import ReadCoilsResponse
from pymodbus.pdu.register_message import (
    WriteMultipleRegistersResponse,
    WriteSingleRegisterResponse,
)
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.config import BLOCK_REGISTERS
from edge.plc.frames import RELEASE, Command
from edge.plc.link import Outcome
from edge.plc.modbus import (
    ModbusDivertLink,
    ModbusMap,
    answers,
    command_registers,
    decode_block,
    label_tag,
)

UNIT = 7
BLOCK, COIL, WATCHDOG = 100, 5, 200
EPOCH = 0x0A0B0C0D
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


class Recorder:
    """The host's callbacks, in the order they came."""

    def __init__(self):
        self.events, self.faults = [], []

    def sent(self, command, t):
        self.events.append(("sent", command.key, t))

    def done(self, command, outcome):
        self.events.append(("done", command.key, outcome))

    def fault(self, kind, detail):
        self.faults.append((kind, detail))

    def outcomes(self):
        return {key: outcome for what, key, outcome in self.events if what == "done"}

    def fault_kinds(self):
        return [kind for kind, _ in self.faults]


@pytest.fixture
def make_link(wire):
    links = []

    def make(mode="register", recorder=None, **kwargs):
        modbus_map = ModbusMap(unit=UNIT, mode=mode, address=BLOCK, coil_address=COIL,
                               heartbeat_address=WATCHDOG)
        callbacks = {"on_sent": recorder.sent, "on_done": recorder.done,
                     "on_fault": recorder.fault} if recorder else {}
        # Timeouts with slack for a busy CI.
        kwargs = {"ack_timeout_s": 0.1, "heartbeat_s": 0.05, "epoch": EPOCH, **callbacks,
                  **kwargs}
        links.append(ModbusDivertLink(wire.host_path, modbus_map, **kwargs).start())
        return links[-1]

    yield make
    for link in links:
        link.stop()


def words(fmt, *values):
    return list(struct.unpack(f">{struct.calcsize(fmt) // 2}H", struct.pack(fmt, *values)))


def block(encoder, lane, key, label, epoch=EPOCH):
    return (words(">q", encoder) + [lane] + words(">I", epoch) + words(">I", key)
            + words(">I", zlib.crc32(label.encode("utf-8"))))


# --- the pure command block ---------------------------------------------------------------------

@pytest.mark.parametrize("command, expected", [
    # encoder most significant word first; lane; epoch, key and label tag high word first
    (Command(1, 0x0102030405060708, 2, 0x11223344, "P1"),
     [0x0102, 0x0304, 0x0506, 0x0708, 2, 0x1122, 0x3344, 0, 1, *words(">I", zlib.crc32(b"P1"))]),
    # a negative encoder is two's complement over all four words; lane 0 releases
    (Command(0xFFFFFFFF, -2, RELEASE, 0xFFFFFFFF, ""),
     [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE, 0, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0, 0]),
    (Command(7, 2**63 - 1, 255, 0, "JJD000123"), block(2**63 - 1, 255, 7, "JJD000123", 0)),
], ids=["divert", "release-extremes", "top-encoder-and-lane"])
def test_command_registers(command, expected):
    assert command_registers(command) == expected
    assert len(expected) == BLOCK_REGISTERS
    assert decode_block(expected) == (Command(command.key, command.encoder, command.lane,
                                              command.epoch), label_tag(command.label))


@pytest.mark.parametrize("label, tagged_bytes", [
    ("", b""),
    ("JJD000123", b"JJD000123"),
    ("ÉDG-colis", "ÉDG-colis".encode()),
    ("\udcffX", b"?X"),  # a lone surrogate from a misread counts as "?"
    ("9" * 40 + "1", b"9" * 40 + b"1"),  # no cut at 40 bytes: the whole number is tagged
])
def test_label_tag_covers_the_whole_label_in_utf8(label, tagged_bytes):
    assert label_tag(label) == zlib.crc32(tagged_bytes)


def test_key_zero_would_be_the_power_up_block():
    with pytest.raises(ValueError, match="key must be >= 1.*got 0"):
        command_registers(Command(0, 10, 1, 0))


@pytest.mark.parametrize("registers, match", [
    ([0] * BLOCK_REGISTERS, "key 0"),  # the PLC's power-up block
    ([0] * (BLOCK_REGISTERS - 1), "11 16-bit registers"),
    ([0x10000] + [0] * (BLOCK_REGISTERS - 1), "11 16-bit registers"),
    (block(10, 256, 1, ""), "lane"),
])
def test_decode_block_refuses(registers, match):
    with pytest.raises(ValueError, match=match):
        decode_block(registers)


@pytest.mark.parametrize("heartbeat_address, inside", [(99, False), (100, True), (110, True),
                                                       (111, False)])
def test_map_refuses_watchdog_inside_command_block(heartbeat_address, inside):
    if inside:
        with pytest.raises(ValueError, match=f"heartbeat_address {heartbeat_address}"):
            ModbusMap(address=100, heartbeat_address=heartbeat_address)
    else:
        ModbusMap(address=100, heartbeat_address=heartbeat_address)


@pytest.mark.parametrize("reply, function_code, address, expected", [
    (WriteMultipleRegistersResponse(address=BLOCK, count=BLOCK_REGISTERS), FC_WRITE_REGS, BLOCK,
     True),
    # a heartbeat's reply that came after its timeout does not confirm the command after it
    (WriteSingleRegisterResponse(address=WATCHDOG, registers=[3]), FC_WRITE_REGS, BLOCK, False),
    (WriteMultipleRegistersResponse(address=BLOCK + 1, count=1), FC_WRITE_REGS, BLOCK, False),
    (ExceptionResponse(FC_WRITE_REGS, 6), FC_WRITE_REGS, BLOCK, True),  # a refusal answers
    (ExceptionResponse(FC_WRITE_REG, 6), FC_WRITE_REGS, BLOCK, False),
    (ReadCoilsResponse(bits=[False]), FC_READ_COILS, COIL, True),  # reads echo no address
])
def test_only_the_reply_to_this_request_answers_it(reply, function_code, address, expected):
    assert answers(reply, function_code, address) == expected


@pytest.mark.parametrize("key, encoder, lane, match", [
    (0, 10, 1, "key must be >= 1"),
    (2**32, 10, 1, "key must be"),
    (1, 2**63, 1, "encoder must be"),
    (1, 10, 256, "lane must be"),
    (1, 10, -1, "lane must be"),
])
def test_bad_command_raises_in_callers_thread(key, encoder, lane, match):
    link = ModbusDivertLink("/dev/null-never-opened")  # never started: no port is needed
    with pytest.raises(ValueError, match=match):
        link.send(key, encoder, lane)
    assert link.unacked == 0


def test_a_missing_port_fails_at_start_naming_it(tmp_path):
    missing = str(tmp_path / "ttyPLC")
    link = ModbusDivertLink(missing)
    with pytest.raises(serial.SerialException, match="ttyPLC"):
        link.start()
    link.stop()  # stopping a link that never started is harmless


# --- against pymodbus's server ------------------------------------------------------------------

def test_register_mode_command_lands_in_the_block(plc, make_link):
    link = make_link()
    command = link.send(1, 0x0102030405060708, 2, "JJD000123")
    assert command == Command(1, 0x0102030405060708, 2, EPOCH, "JJD000123")
    wait_for(lambda: link.stats.acked == 1)
    assert plc.registers(BLOCK, BLOCK_REGISTERS) == block(0x0102030405060708, 2, 1, "JJD000123")
    assert link.unacked == 0 and link.stats.outcomes == {Outcome.ACKED: 1}


def test_each_command_is_written_once_releases_and_diverts(plc, make_link):
    link = make_link()
    lanes = [RELEASE, 1, RELEASE, 2, RELEASE]
    for key, lane in enumerate(lanes, 1):
        link.send(key, 1000 + key, lane, f"P{key}")
    wait_for(lambda: link.stats.acked == 5)
    written = plc.writes_to(FC_WRITE_REGS, BLOCK)
    assert written == [block(1000 + key, lane, key, f"P{key}") for key, lane in enumerate(lanes, 1)]
    assert (link.stats.sent, link.stats.resent, link.stats.lost) == (5, 0, [])


def test_on_sent_comes_once_per_command_before_its_outcome(plc, make_link):
    recorder = Recorder()
    link = make_link(recorder=recorder)
    before = time.monotonic()
    for key in (1, 2, 3):
        link.send(key, 100 * key, RELEASE, f"P{key}")
    wait_for(lambda: len(recorder.outcomes()) == 3)
    assert [(what, key) for what, key, _ in recorder.events] == [
        ("sent", 1), ("done", 1), ("sent", 2), ("done", 2), ("sent", 3), ("done", 3)]
    sent_at = [t for what, _, t in recorder.events if what == "sent"]
    assert before <= sent_at[0] <= sent_at[1] <= sent_at[2] <= time.monotonic()
    assert recorder.outcomes() == dict.fromkeys((1, 2, 3), Outcome.ACKED)


def test_coil_mode_every_command_is_latched_and_confirmed(plc, make_link):
    latched, stop = [], threading.Event()

    def play_plc():  # the PLC's scan: latch a set coil, apply an (epoch, key) once, clear it
        while not stop.is_set():
            if plc.coil(COIL):
                command, _ = decode_block(plc.registers(BLOCK, BLOCK_REGISTERS))
                if not latched or latched[-1][:2] != (command.epoch, command.key):
                    latched.append((command.epoch, command.key, command.encoder, command.lane))
                plc.clear_coil(COIL)
            time.sleep(0.005)

    scanner = threading.Thread(target=play_plc, daemon=True)
    scanner.start()
    link = make_link(mode="coil")
    for key in (1, 2, 3, 4):
        link.send(key, -500 + key, key % 2, f"P{key}")
    wait_for(lambda: link.stats.acked == 4)
    stop.set()
    scanner.join(timeout=1)
    assert latched == [(EPOCH, key, -500 + key, key % 2) for key in (1, 2, 3, 4)]
    assert (link.stats.lost, link.unacked) == ([], 0)


def test_heartbeat_increments_the_watchdog_register(plc, make_link):
    make_link(heartbeat_s=0.02)
    wait_for(lambda: len(plc.writes_to(FC_WRITE_REG, WATCHDOG)) >= 5)
    beats = [values[0] for values in plc.writes_to(FC_WRITE_REG, WATCHDOG)]
    assert beats[:5] == [1, 2, 3, 4, 5]


def test_failing_closed_holds_the_watchdog_register_still(plc, make_link):
    link = make_link(heartbeat_s=0.02)

    def beats():
        return [values[0] for values in plc.writes_to(FC_WRITE_REG, WATCHDOG)]

    wait_for(lambda: len(beats()) >= 3)
    link.fail_closed = True
    held = len(beats()) + 1  # a write in progress may still carry the next value
    wait_for(lambda: len(beats()) >= held + 5)
    frozen = beats()[held:]
    assert len(set(frozen)) == 1  # still written, so a silent PLC is still noticed
    assert plc.registers(WATCHDOG, 1) == [frozen[0]]
    link.fail_closed = False
    wait_for(lambda: beats()[-1] > frozen[0] + 2)


def test_unanswered_command_is_retried_then_lost(plc, make_link):
    recorder = Recorder()
    link = make_link(max_attempts=3, recorder=recorder)
    link.send(1, 10, RELEASE, "P-ok")
    wait_for(lambda: link.stats.acked == 1)
    plc.stop()
    link.send(2, 20, 2, "P-gone")
    wait_for(lambda: link.stats.lost)
    assert recorder.outcomes() == {1: Outcome.ACKED, 2: Outcome.UNANSWERED}
    assert (link.stats.sent, link.stats.resent, link.stats.acked) == (2, 2, 1)
    assert (link.stats.lost, link.unacked) == ([2], 0)
    lost = [detail for kind, detail in recorder.faults if kind == "command-lost"]
    assert len(lost) == 1 and "P-gone" in lost[0] and "unanswered" in lost[0]


def test_coil_never_cleared_command_is_unanswered(plc, make_link):
    link = make_link(mode="coil", latch_timeout_s=0.05, max_attempts=2)
    link.send(1, 10, 1, "P1")
    wait_for(lambda: link.stats.lost == [1])
    assert link.stats.outcomes == {Outcome.UNANSWERED: 1}
    assert (link.stats.sent, link.stats.resent, link.stats.acked) == (1, 1, 0)
    assert plc.writes_to(FC_WRITE_REGS, BLOCK) == [block(10, 1, 1, "P1")] * 2  # a repeat


def test_commands_expire_in_flight_and_queued(plc, make_link):
    recorder = Recorder()
    link = make_link(max_attempts=1000, recorder=recorder)
    plc.stop()  # nothing is ever confirmed
    expires = time.monotonic() + 0.3
    link.send(1, 10, RELEASE, "P1", expires_at=expires)
    link.send(2, 20, RELEASE, "P2", expires_at=expires)
    link.send(3, 30, RELEASE, "P3", expires_at=math.inf)
    wait_for(lambda: len(recorder.outcomes()) == 2)
    assert time.monotonic() >= expires
    assert recorder.outcomes() == {1: Outcome.EXPIRED, 2: Outcome.EXPIRED}
    assert link.stats.lost == [1, 2] and link.unacked == 1
    assert recorder.fault_kinds().count("command-lost") == 2


def test_commands_left_at_stop_are_unsent_and_lost(plc, make_link):
    recorder = Recorder()
    link = make_link(max_attempts=1000, recorder=recorder)
    plc.stop()
    for key in (1, 2, 3):
        link.send(key, 10 * key, RELEASE, f"P{key}")
    wait_for(lambda: link.stats.sent == 1)  # the first is in flight, the others queued
    link.stop()
    assert recorder.outcomes() == dict.fromkeys((1, 2, 3), Outcome.UNSENT)
    assert link.stats.outcomes == {Outcome.UNSENT: 3} and link.stats.lost == [1, 2, 3]
    assert link.unacked == 0 and recorder.fault_kinds().count("command-lost") == 3


def test_a_long_non_ascii_label_is_accepted(plc, make_link):
    label = "колис-" + "é" * 50 + "ÉDG9"  # 60 characters, 116 bytes of UTF-8
    assert len(label) == 60
    link = make_link()
    link.send(1, 10, RELEASE, label)
    wait_for(lambda: link.stats.acked == 1)
    assert plc.registers(BLOCK, BLOCK_REGISTERS) == block(10, RELEASE, 1, label)


def test_a_silent_plc_is_a_fault_once_per_silence(wire, plc, make_link):
    recorder = Recorder()
    link = make_link(silent_s=0.2, recorder=recorder)
    time.sleep(0.3)
    assert recorder.faults == []  # answered heartbeats keep it quiet
    plc.stop()
    wait_for(lambda: "plc-silent" in recorder.fault_kinds())
    time.sleep(0.5)
    assert recorder.fault_kinds() == ["plc-silent"] and link.stats.silences == 1
    again = Plc(wire.plc_path)  # answers again, then falls silent a second time
    try:
        link.send(1, 10, RELEASE, "P1")
        wait_for(lambda: link.stats.acked == 1)
    finally:
        again.stop()
    wait_for(lambda: link.stats.silences == 2)
    assert recorder.fault_kinds() == ["plc-silent", "plc-silent"]


def test_port_vanishes_and_returns_without_losing_queued_commands(wire, plc, make_link):
    recorder = Recorder()
    link = make_link(recorder=recorder)
    wire.unplug()
    link.send(1, 100, RELEASE, "P1")
    link.send(2, 200, 1, "P2")
    time.sleep(0.4)  # several reopen attempts fail meanwhile
    assert (link.unacked, link.stats.sent) == (2, 0)
    assert recorder.fault_kinds() == ["port-gone"]  # once per loss
    wire.replug()
    wait_for(lambda: link.stats.acked == 2)
    assert link.stats.reconnects >= 1 and link.stats.lost == []
    assert plc.writes_to(FC_WRITE_REGS, BLOCK) == [block(100, RELEASE, 1, "P1"),
                                                   block(200, 1, 2, "P2")]
    assert wire.host_path in recorder.faults[0][1]  # the fault names the port


def test_an_exception_in_the_sender_is_a_fault_and_the_link_goes_on(plc, make_link):
    recorder = Recorder()

    def done(command, outcome):
        recorder.done(command, outcome)
        if command.key == 1:
            raise RuntimeError("ledger full")

    link = make_link(recorder=recorder, on_done=done)
    link.send(1, 10, RELEASE, "P1")
    link.send(2, 20, RELEASE, "P2")
    wait_for(lambda: len(recorder.outcomes()) == 2)
    assert recorder.outcomes() == {1: Outcome.ACKED, 2: Outcome.ACKED}
    assert recorder.faults == [("link-error", "RuntimeError: ledger full")]
