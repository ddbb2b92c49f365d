"""The scanner's TCP line source: framing against byte layouts, the incremental reader on
broken streams, the clock map, and the source on real localhost sockets."""

import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import TcpScannerConfig
from edge.interfaces import EndOfStream, NoLinesYet, ScannerError
from edge.sources.tcp import (
    END,
    MAGIC,
    MAX_PAYLOAD,
    ClockMap,
    FrameError,
    FrameReader,
    TcpLineSource,
    pack_end,
    pack_event,
    pack_lines,
)
from edge.sources.tcp_sender import LineSender
from edge.types import BeltEvent, LineBlock

WAIT_S = 10.0  # generous: a busy 2-core CI machine


def block(rows: int = 3, n_pixels: int = 64, t0: float = 100.0, seed: int = 0) -> LineBlock:
    rng = np.random.default_rng(seed)
    return LineBlock(rng.integers(0, 65536, (rows, n_pixels), dtype=np.uint16),
                     rng.integers(0, 65536, (rows, n_pixels), dtype=np.uint16),
                     t0 + np.arange(rows) / 500.0, np.arange(rows, dtype=np.int64) * 8 + 1000)


def same(a: LineBlock, b: LineBlock) -> bool:
    return all(x.dtype == y.dtype and np.array_equal(x, y)
               for x, y in ((a.hi, b.hi), (a.lo, b.lo), (a.t, b.t), (a.encoder, b.encoder)))


def header(version: int = 1, kind: int = 1, length: int = 0, crc: int = 0) -> bytes:
    return struct.pack("<4sHHIII", MAGIC, version, kind, length, crc, 0)


def decode(*chunks: bytes) -> list:
    reader = FrameReader()
    return [item for chunk in chunks for item in reader.feed(chunk)]


# --- framing ------------------------------------------------------------------------------------

def test_frames_have_the_documented_bytes():
    event = pack_event(BeltEvent(1.5, -3))
    payload = struct.pack("<dq", 1.5, -3)
    assert event == MAGIC + struct.pack("<HHIII", 1, 2, 16, zlib.crc32(payload), 0) + payload
    assert pack_end() == MAGIC + struct.pack("<HHIII", 1, 3, 0, 0, 0)
    lines = pack_lines(block(rows=2, n_pixels=3))
    assert lines[4:12] == struct.pack("<HHI", 1, 1, 8 + 2 * 16 + 2 * 3 * 4)
    assert lines[20:28] == struct.pack("<II", 2, 3)          # rows, n_pixels
    assert lines[28:36] == struct.pack("<d", 100.0)          # t[0], float64
    assert lines[44:52] == struct.pack("<q", 1000)           # encoder[0], int64


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 12), n_pixels=st.integers(0, 40), seed=st.integers(0, 2**32 - 1),
       t0=st.floats(-1e9, 1e9))
def test_a_block_of_any_shape_comes_back_whole(rows, n_pixels, seed, t0):
    sent = block(rows, n_pixels, t0, seed)
    (got,) = decode(pack_lines(sent))
    assert same(got, sent)


@settings(max_examples=60, deadline=None)
@given(t=st.floats(allow_nan=False, allow_infinity=False), encoder=st.integers(-(2**63), 2**63 - 1))
def test_an_event_comes_back_whole(t, encoder):
    assert decode(pack_event(BeltEvent(t, encoder))) == [BeltEvent(t, encoder)]


def test_pack_refuses_values_it_would_have_to_wrap():
    bad = LineBlock(np.zeros((2, 4), np.int64), np.zeros((2, 4), np.int64), np.zeros(2),
                    np.zeros(2, np.int64))
    with pytest.raises(TypeError):
        pack_lines(bad)


STREAM = [BeltEvent(99.0, 7), block(2, 3, seed=1), BeltEvent(99.5, 9), block(1, 3, seed=2),
          END]


def pack(item) -> bytes:
    return pack_end() if item is END else \
        pack_event(item) if isinstance(item, BeltEvent) else pack_lines(item)


def check_stream(items: list) -> None:
    assert len(items) == len(STREAM)
    for got, sent in zip(items, STREAM, strict=True):
        assert same(got, sent) if isinstance(sent, LineBlock) else got == sent


def test_a_stream_split_at_every_byte_decodes_alike():
    data = b"".join(map(pack, STREAM))
    for split in range(len(data) + 1):
        check_stream(decode(data[:split], data[split:]))
    check_stream(decode(*(data[i:i + 1] for i in range(len(data)))))


# --- broken streams -----------------------------------------------------------------------------

def read_on(reader: FrameReader, data: bytes) -> tuple[list, list[str]]:
    """Every item and every refusal, feeding ``data`` and then what stays buffered."""
    items, errors = [], []
    chunk = data
    while True:
        try:
            items.extend(reader.feed(chunk))
            return items, errors
        except FrameError as error:
            errors.append(str(error))
            chunk = b""


def test_bad_magic_hunts_for_the_next_frame_and_says_how_far():
    good = pack_event(BeltEvent(1.0, 2))
    items, errors = read_on(FrameReader(), good + b"garbage!" + good)
    assert items == [BeltEvent(1.0, 2)] * 2
    assert errors == ["bad magic b'garb': skipped 8 bytes to the next frame start"]


def test_the_hunt_finds_a_magic_split_across_chunks():
    reader = FrameReader()
    data = b"\x00" * 10 + pack_end()
    assert list(reader.feed(data[:12])) == []        # 10 junk bytes and "XR"
    with pytest.raises(FrameError, match="skipped 10 bytes"):
        list(reader.feed(data[12:]))
    assert list(reader.feed(b"")) == [END]
    assert reader.skipped == 10


def test_a_crc_error_costs_only_its_frame():
    first, second = pack_lines(block(seed=1)), pack_lines(block(seed=2))
    broken = bytearray(first)
    broken[30] ^= 0xFF
    items, errors = read_on(FrameReader(), pack_end() + bytes(broken) + second)
    assert items[0] is END and same(items[1], block(seed=2)) and len(items) == 2
    assert len(errors) == 1 and "fails its CRC" in errors[0]


def test_a_newer_version_is_refused_and_skipped_by_its_length():
    payload = b"a future payload"
    newer = header(version=2, kind=1, length=len(payload), crc=zlib.crc32(payload)) + payload
    items, errors = read_on(FrameReader(), newer + pack_end())
    assert errors == ["format version 2 is newer than this reader's 1: upgrade the edge "
                      "software"]
    assert items == [END]


@pytest.mark.parametrize("frame, message", [
    # kind 9 does not exist; the header is sound, so the frame is skipped by its length
    (header(kind=9, length=3) + b"abc", "unknown frame kind 9"),
    # a line frame whose rows x n_pixels do not match its length (CRC good)
    (header(kind=1, length=8 + 16 + 4, crc=zlib.crc32(struct.pack("<II", 1, 2) + bytes(20)))
     + struct.pack("<II", 1, 2) + bytes(20),
     "says 1 rows x 2 pixels, which is 32 payload bytes, but carries 28"),
    # an event payload of the wrong size
    (header(kind=2, length=4, crc=zlib.crc32(bytes(4))) + bytes(4), "expected 16"),
    # times that no clock can map
    (pack_event(BeltEvent(float("nan"), 1)), "not finite"),
    (pack_lines(LineBlock(np.zeros((2, 3), np.uint16), np.zeros((2, 3), np.uint16),
                          np.array([1.0, np.inf]), np.zeros(2, np.int64))), "not finite"),
])
def test_malformed_frames_are_refused_and_the_next_one_read(frame, message):
    items, errors = read_on(FrameReader(), frame + pack_end())
    assert items == [END] and len(errors) == 1 and message in errors[0]


def test_a_length_over_the_cap_is_not_trusted():
    # The reader hunts for the next magic instead of waiting for 4 GiB that will not come.
    items, errors = read_on(FrameReader(), header(length=MAX_PAYLOAD + 1) + pack_end())
    assert items == [END]
    assert errors == [f"payload length {MAX_PAYLOAD + 1} is over the cap of {MAX_PAYLOAD} "
                      "bytes: skipped 20 bytes to the next frame start"]


# --- clock --------------------------------------------------------------------------------------

def test_clock_offset_is_the_smallest_delay_sample():
    clock = ClockMap(window=3)
    assert clock.offset is None
    with pytest.raises(ValueError, match="unknown"):
        clock.to_local(1.0)
    # sender clock = ours - 1000; delays 5, 2, 9 ms: the minimum is the offset + 2 ms
    for sent, delay in ((10.0, 0.005), (11.0, 0.002), (12.0, 0.009)):
        clock.observe(sent + 1000 + delay, sent)
    assert clock.offset == pytest.approx(1000.002)
    np.testing.assert_allclose(clock.to_local(np.array([20.0, 21.0])), [1020.002, 1021.002])
    clock.observe(13.0 + 1000.004, 13.0)
    assert clock.offset == pytest.approx(1000.002)
    clock.observe(14.0 + 1000.006, 14.0)       # the 2 ms sample slides out of the window
    assert clock.offset == pytest.approx(1000.004)
    clock.observe(float("nan"), float("nan"))  # a frame without a usable time is no sample
    assert clock.offset == pytest.approx(1000.004)
    clock.reset()
    assert clock.offset is None


# --- the source on sockets ----------------------------------------------------------------------

@pytest.fixture
def sender():
    with LineSender() as s:
        yield s


def open_source(port: int, **options) -> TcpLineSource:
    config = TcpScannerConfig(host="127.0.0.1", port=port, n_pixels=64, connect_timeout_s=WAIT_S)
    return TcpLineSource(config, retry_s=0.02, **options)


@pytest.fixture
def source(sender):
    src = open_source(sender.port)
    assert sender.wait_client(WAIT_S)
    yield src
    src.close()


def test_blocks_and_events_arrive_in_order_on_our_clock(sender, source):
    before = time.monotonic()
    sender.send_event(BeltEvent(5.0, 100))
    sender.send_block(block(t0=5.25))
    first = source.read()
    after = time.monotonic()
    # The latest frame's sample bounds the offset: its last line maps to no later than we got
    # it, and the sender's times rise, so to no earlier than we asked for it.
    assert before <= first.t[-1] <= after
    offset = source.clock.offset
    assert np.array_equal(first.hi, block().hi) and np.allclose(first.t, block(t0=5.25).t + offset)
    assert source.poll_events() == [BeltEvent(5.0 + offset, 100)]
    assert source.poll_events() == []

    sender.send_event(BeltEvent(5.5, 200))
    sender.send_event(BeltEvent(5.6, 300))
    sender.send_block(block(t0=6.0, seed=1))
    second = source.read()
    events = source.poll_events()
    assert [e.encoder for e in events] == [200, 300]
    assert same(LineBlock(second.hi, second.lo, block(t0=6.0).t, second.encoder),
                block(t0=6.0, seed=1))
    # events are mapped with the offset of the block that follows them
    assert events[0].t - 5.5 == pytest.approx(second.t[0] - 6.0, abs=1e-9)


def test_events_wait_for_the_block_after_them(sender, source):
    sender.send_block(block(t0=1.0))
    sender.send_event(BeltEvent(1.1, 5))
    assert sender.flush(WAIT_S)
    source.read()
    assert source.poll_events() == []          # received, maybe, but after the block
    sender.send_block(block(t0=1.2))
    source.read()
    assert [e.encoder for e in source.poll_events()] == [5]


def test_the_end_frame_ends_the_stream(sender, source):
    sender.send_block(block())
    sender.send_end()
    assert len(source.read()) == 3
    for _ in range(2):
        with pytest.raises(EndOfStream):
            source.read()


def test_a_pixel_count_other_than_the_config_is_refused(sender, source):
    sender.send_block(block(n_pixels=128))
    sender.send_block(block())
    with pytest.raises(ScannerError, match="lines of 128 pixels but scanner.n_pixels is 64"):
        source.read()
    assert source.read().n_pixels == 64


def test_a_corrupt_frame_is_one_error_and_the_stream_reads_on(sender, source):
    broken = bytearray(pack_lines(block()))
    broken[-1] ^= 1
    sender.send_raw(bytes(broken))
    sender.send_block(block(seed=5))
    with pytest.raises(FrameError, match="CRC"):
        source.read()
    assert np.array_equal(source.read().hi, block(seed=5).hi)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_scanner_there_names_the_address():
    port = free_port()
    with pytest.raises(ScannerError, match=f"127.0.0.1:{port}"):
        open_source(port)


def test_a_dropped_connection_is_an_error_then_the_source_reconnects(sender, source):
    sender.send_block(block())
    source.read()
    sender.drop()
    with pytest.raises(ScannerError, match="closed the connection"):
        source.read()
    sender.send_block(block(seed=3))           # waits in the sender for the new client
    assert np.array_equal(source.read().hi, block(seed=3).hi)


def test_a_restarted_sender_is_found_again_on_its_port(sender, source):
    port = sender.port
    sender.send_block(block())
    source.read()
    sender.close()
    with pytest.raises(ScannerError, match="closed the connection"):
        source.read()
    with pytest.raises(ScannerError, match=f"cannot connect to the scanner at 127.0.0.1:{port}"):
        source.read()
    with LineSender(port) as again:
        again.send_block(block(t0=0.5, seed=4))   # a restarted PC: its clock starts again
        got = source.read()
        assert np.array_equal(got.hi, block(seed=4).hi)
        assert got.t[-1] == pytest.approx(time.monotonic(), abs=WAIT_S)


def test_close_wakes_a_waiting_read(sender, source):
    failed = threading.Event()

    def read() -> None:
        try:
            source.read()
        except ScannerError:
            failed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    source.close()
    assert failed.wait(WAIT_S)
    reader.join(WAIT_S)


def test_a_silent_sender_makes_a_read_give_up_for_now_not_fail(sender):
    config = TcpScannerConfig(host="127.0.0.1", port=sender.port, n_pixels=64,
                              connect_timeout_s=WAIT_S, read_wait_s=0.2)
    source = TcpLineSource(config, retry_s=0.02)
    try:
        assert sender.wait_client(WAIT_S)
        started = time.monotonic()
        with pytest.raises(NoLinesYet, match="no bytes .* for 0.2 s"):
            source.read()
        assert time.monotonic() - started < WAIT_S
        # The connection stays: lines sent after the pause come through it.
        sender.send_block(block(seed=5))
        assert np.array_equal(source.read().hi, block(seed=5).hi)
    finally:
        source.close()
