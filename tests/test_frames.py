"""The PLC serial protocol: CRC, frames as bytes, and a decoder that survives a noisy line."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.plc.frames import (
    STX,
    Decoder,
    Divert,
    Frame,
    Kind,
    NakReason,
    ack,
    crc16,
    heartbeat,
    nak,
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
    frame = heartbeat(5, 1).encode()
    body = bytes([4, 5, Kind.HEARTBEAT, 0, 0, 0, 1])
    assert frame == bytes([STX]) + body + struct.pack(">H", crc16_bitwise(body))
    assert ack(9, 5).encode()[:5] == bytes([0x02, 0x01, 0x09, 0x02, 0x05])
    assert nak(1, 7, NakReason.TOO_LATE).encode()[4:6] == bytes([7, 2])


def test_divert_payload_round_trip_and_errors():
    divert = Divert("EDG000000042", encoder=123_456_789, lane=2)
    payload = divert.pack()
    assert payload[:8] == (123_456_789).to_bytes(8, "big") and payload[8] == 2
    assert Divert.unpack(payload) == divert
    with pytest.raises(ValueError, match="parcel id"):
        Divert("", 1).pack()
    with pytest.raises(ValueError, match="malformed"):
        Divert.unpack(payload[:-1])
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
