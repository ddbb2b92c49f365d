"""The belt-PLC serial protocol: pure encoding and decoding of frames (see docs/plc-protocol.md).

    STX | LEN | SEQ | TYPE | PAYLOAD (LEN bytes) | CRC-16 (big-endian)

CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF) over LEN..PAYLOAD. No byte
stuffing: the receiver hunts for STX, and a frame whose CRC fails costs only its first byte,
after which the hunt goes on from the next one, so noise never swallows a good frame behind it.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, field
from enum import IntEnum

STX = 0x02
HEADER = 4  # STX, LEN, SEQ, TYPE
TRAILER = 2  # CRC
MAX_PAYLOAD = 64
MAX_ID = 32


class Kind(IntEnum):
    DIVERT = 0x01  # host -> PLC: divert this parcel at this encoder position
    ACK = 0x02  # both ways: frame SEQ received and applied (or a duplicate, not re-applied)
    NAK = 0x03  # both ways: frame SEQ refused, with a reason
    HEARTBEAT = 0x04  # both ways, every heartbeat period
    STATUS = 0x05  # PLC -> host: watchdog state and counters


class NakReason(IntEnum):
    BAD_PAYLOAD = 1
    TOO_LATE = 2  # the parcel passed the diverter before the command arrived
    BUSY = 3


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE; check value for b"123456789" is 0x29B1."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True)
class Frame:
    seq: int
    kind: Kind
    payload: bytes = b""

    def encode(self) -> bytes:
        if not 0 <= self.seq <= 255:
            raise ValueError(f"seq must be 0..255, got {self.seq}")
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")
        body = bytes([len(self.payload), self.seq, int(self.kind)]) + self.payload
        return bytes([STX]) + body + struct.pack(">H", crc16(body))


# --- payloads -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Divert:
    """Divert ``parcel_id`` when the belt encoder reaches ``encoder`` (counts), to ``lane``."""

    parcel_id: str
    encoder: int
    lane: int = 1

    def pack(self) -> bytes:
        pid = self.parcel_id.encode("ascii")
        if not 1 <= len(pid) <= MAX_ID:
            raise ValueError(f"parcel id must be 1..{MAX_ID} ASCII characters, got "
                             f"{self.parcel_id!r}")
        return struct.pack(">qB", self.encoder, self.lane) + bytes([len(pid)]) + pid

    @classmethod
    def unpack(cls, payload: bytes) -> Divert:
        if len(payload) < 10 or len(payload) != 10 + payload[9]:
            raise ValueError(f"divert payload of {len(payload)} bytes is malformed")
        encoder, lane = struct.unpack(">qB", payload[:9])
        return cls(payload[10:].decode("ascii"), encoder, lane)


def ack(seq: int, acked: int) -> Frame:
    return Frame(seq, Kind.ACK, bytes([acked]))


def nak(seq: int, refused: int, reason: NakReason) -> Frame:
    return Frame(seq, Kind.NAK, bytes([refused, int(reason)]))


def heartbeat(seq: int, counter: int) -> Frame:
    return Frame(seq, Kind.HEARTBEAT, struct.pack(">I", counter & 0xFFFFFFFF))


def status(seq: int, watchdog_tripped: bool, diverted: int) -> Frame:
    return Frame(seq, Kind.STATUS, struct.pack(">?I", watchdog_tripped, diverted & 0xFFFFFFFF))


# --- decoding -----------------------------------------------------------------------------------

@dataclass
class Decoder:
    """Stream decoder: ``feed`` any bytes as they arrive, get the complete good frames."""

    buffer: bytearray = field(default_factory=bytearray)
    bad_crc: int = 0  # frames refused for their CRC
    skipped: int = 0  # bytes dropped while hunting for STX
    unknown: int = 0  # good CRC, unknown TYPE

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames = []
        while True:
            start = self.buffer.find(STX)
            if start < 0:
                self.skipped += len(self.buffer)
                self.buffer.clear()
                return frames
            if start:
                self.skipped += start
                del self.buffer[:start]
            if len(self.buffer) < 2:
                return frames
            length = self.buffer[1]
            if length > MAX_PAYLOAD:  # cannot be a frame start: hunt on
                self._drop_one()
                continue
            total = HEADER + length + TRAILER
            if len(self.buffer) < total:
                # Incomplete, or a noise byte that looked like STX: if a whole good frame
                # already waits behind it, the candidate was noise. Never hold a good frame
                # hostage to bytes that may not come.
                later = self._next_good_frame()
                if later is None:
                    return frames
                self.skipped += later
                del self.buffer[:later]
                continue
            if not self._good_at(0):
                self.bad_crc += 1
                self._drop_one()
                continue
            body = bytes(self.buffer[1:HEADER + length])
            del self.buffer[:total]
            try:
                frames.append(Frame(body[1], Kind(body[2]), body[3:]))
            except ValueError:
                self.unknown += 1

    def _good_at(self, start: int) -> bool:
        """A complete frame with a valid CRC starts at ``start`` of the buffer."""
        if len(self.buffer) < start + HEADER + TRAILER or self.buffer[start] != STX:
            return False
        length = self.buffer[start + 1]
        end = start + HEADER + length + TRAILER
        if length > MAX_PAYLOAD or len(self.buffer) < end:
            return False
        (crc,) = struct.unpack(">H", self.buffer[end - TRAILER:end])
        return crc == crc16(bytes(self.buffer[start + 1:end - TRAILER]))

    def _next_good_frame(self) -> int | None:
        start = self.buffer.find(STX, 1)
        while start >= 0:
            if self._good_at(start):
                return start
            start = self.buffer.find(STX, start + 1)
        return None

    def _drop_one(self) -> None:
        self.skipped += 1
        del self.buffer[:1]
