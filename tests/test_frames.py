"""The PLC serial protocol: CRC, frames as bytes, and a decoder that survives a noisy line."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.plc.frames import (
    MAX_LABEL,
    MAX_PAYLOAD,
    STX,
    Command,
    Decoder,
    DivertAll,
    Frame,
    Heartbeat,
    HostState,
    Kind,
    NakReason,
    Status,
    ack,
    crc16,
    heartbeat,
    nak,
    status,
    wire_label,
)


def crc16_bitwise(data: bytes) -> int:
    """CRC-16/CCITT-FALSE the slow way, bit by bit."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_crc_check_value_and_reference():
    assert crc16(b"123456789") == 0x29B1  # the catalogued check value
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 64):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc16(data) == crc16_bitwise(data)


def test_frame_layout_as_bytes():
    frame = heartbeat(5, 1, epoch=0x01020304, state=HostState.FAIL_CLOSED).encode()
    body = bytes([9, 5, Kind.HEARTBEAT, 0, 0, 0, 1, 1, 2, 3, 4, 1])
    assert frame == bytes([STX]) + body + struct.pack(">H", crc16_bitwise(body))
    assert ack(9, 5).encode()[:5] == bytes([0x02, 0x01, 0x09, 0x02, 0x05])
    assert nak(1, 7, NakReason.TOO_LATE).encode()[4:6] == bytes([7, 2])
    assert status(3, DivertAll.WATCHDOG, 258, 7, 2).encode()[4:18] == \
        bytes([1, 1, 0, 0, 1, 2, 0, 0, 0, 7, 0, 0, 0, 2])


def test_command_payload_layout_and_round_trip():
    command = Command(key=42, encoder=123_456_789, lane=2, epoch=0xDEADBEEF, label="EDG042")
    payload = command.pack()
    assert payload[:8] == (123_456_789).to_bytes(8, "big") and payload[8] == 2
    assert payload[9:13] == bytes.fromhex("deadbeef") and payload[13:17] == bytes([0, 0, 0, 42])
    assert payload[17] == 6 and payload[18:] == b"EDG042"
    assert Command.unpack(payload) == command
    assert Command(1, 0, lane=0).releases and not Command(1, 0, lane=1).releases


@pytest.mark.parametrize(("label", "on_wire"), [
    ("", b""),                                           # an unread label: the key names it
    ("EDG000000042", b"EDG000000042"),
    ("É" + "1" * 33, "É".encode() + b"1" * 33),          # non-ASCII, two bytes
    ("9" * 34, b"9" * 34),                               # an IMpb tracking number fits
    ("9" * 60, b"9" * MAX_LABEL),                        # longer: cut, the host keeps it all
    ("1" * 39 + "É", b"1" * 39),                         # never cut inside a character
    ("\udcff" + "A", b"?A"),                             # a lone surrogate from a misread
])
def test_any_label_is_carried_or_cut_never_refused(label, on_wire):
    assert wire_label(label) == on_wire
    frame = Frame(1, Kind.COMMAND, Command(7, 100, 1, 3, label).pack())
    assert len(frame.payload) <= MAX_PAYLOAD
    (decoded,) = Decoder().feed(frame.encode())
    assert Command.unpack(decoded.payload).label == on_wire.decode()


@pytest.mark.parametrize(("args", "match"), [
    ({"key": -1, "encoder": 0}, "key"),
    ({"key": 2**32, "encoder": 0}, "key"),
    ({"key": 1, "encoder": 0, "lane": 256}, "lane"),
    ({"key": 1, "encoder": 0, "epoch": -1}, "epoch"),
    ({"key": 1, "encoder": 2**63}, "encoder"),
])
def test_command_fields_out_of_range_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        Command(**args)


@pytest.mark.parametrize("payload", [
    b"\x00\x01",                                # too short
    bytes(17) + b"\x05EDG",                     # label length says 5, 3 follow
    bytes(17) + bytes([MAX_LABEL + 1]) + b"1" * (MAX_LABEL + 1),   # label too long
])
def test_malformed_command_payloads_refused(payload):
    with pytest.raises(ValueError, match="malformed"):
        Command.unpack(payload)


def test_heartbeat_and_status_payloads_round_trip():
    beat = Frame(0, Kind.HEARTBEAT, heartbeat(0, 9, 77, HostState.FAIL_CLOSED).payload)
    assert Heartbeat.unpack(beat.payload) == Heartbeat(9, 77, HostState.FAIL_CLOSED)
    assert Status.unpack(status(1, DivertAll.HOST_FAIL_CLOSED, 5, 77, 3).payload) == \
        Status(True, DivertAll.HOST_FAIL_CLOSED, 5, 77, 3)
    assert Status.unpack(status(1, DivertAll.NO, 5, 77).payload).divert_all is False
    with pytest.raises(ValueError, match="seq"):
        Frame(256, Kind.ACK).encode()


frames = st.builds(
    Frame,
    st.integers(0, 255),
    st.sampled_from(list(Kind)),
    st.binary(max_size=40),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(frames, st.binary(max_size=12)), max_size=8), st.data())
def test_decoder_recovers_every_frame_through_noise_and_any_split(items, data):
    stream = b"".join(noise + frame.encode() for frame, noise in items)
    cut = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = Decoder()
    got = []
    for a, b in zip([0, *cut], [*cut, len(stream)], strict=True):
        got += decoder.feed(stream[a:b])
    assert got == [frame for frame, _ in items]


def test_corrupted_frame_is_dropped_and_the_next_one_kept():
    good, bad = heartbeat(1, 10).encode(), bytearray(heartbeat(2, 11).encode())
    bad[5] ^= 0xFF  # a flipped payload byte
    decoder = Decoder()
    assert decoder.feed(bytes(bad) + good) == [heartbeat(1, 10)]
    assert decoder.bad_crc >= 1
    # a truncated frame followed by a good one: the good one still comes through
    assert Decoder().feed(good[:5] + good) == [heartbeat(1, 10)]
