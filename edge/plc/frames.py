"""The belt-PLC serial protocol: pure encoding and decoding of frames (see docs/plc-protocol.md).

Every parcel gets a command: release it (lane 0) or divert it. The PLC diverts every parcel
for which it holds no release, so a lost, late or garbled command, a silent host and a
restarted host all end in a divert, never in a pass.

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


class Kind(IntEnum):
    COMMAND = 0x01  # host -> PLC: release or divert the parcel at this encoder position
    ACK = 0x02  # both ways: frame SEQ received and applied (or a duplicate, not re-applied)
    NAK = 0x03  # both ways: frame SEQ refused, with a reason
    HEARTBEAT = 0x04  # both ways, every heartbeat period: session epoch and state
    STATUS = 0x05  # PLC -> host: divert-all state and counters


class NakReason(IntEnum):
    BAD_PAYLOAD = 1
    TOO_LATE = 2  # the parcel reached the diverter before the command arrived
    BUSY = 3


class HostState(IntEnum):
    """What the host's heartbeats say of it."""

    INSPECTING = 0
    FAIL_CLOSED = 1  # a fault in the output path: the PLC diverts every parcel


class DivertAll(IntEnum):
    """Why the PLC is diverting every parcel (STATUS), if it is."""

    NO = 0
    WATCHDOG = 1  # no valid frame from the host within the watchdog time
    HOST_FAIL_CLOSED = 2  # the host's heartbeats say FAIL_CLOSED


RELEASE = 0  # the lane that means "let the parcel go on"; lanes 1..255 are divert lanes
MAX_LABEL = 40  # bytes of the tracking number carried for the PLC's display


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

def wire_label(label: str) -> bytes:
    """``label`` as UTF-8, cut at a character boundary to ``MAX_LABEL`` bytes. Never raises:
    a label the camera misread into lone surrogates is carried with replacement characters."""
    data = label.encode("utf-8", "replace")[:MAX_LABEL]
    return data.decode("utf-8", "ignore").encode("utf-8")


_COMMAND = struct.Struct(">qBIIB")  # encoder, lane, epoch, key, label length


@dataclass(frozen=True)
class Command:
    """Release (``lane`` 0) or divert (``lane`` 1..255) the parcel whose leading edge reaches
    the diverter at encoder count ``encoder``.

    ``(epoch, key)`` names the command for ever: ``epoch`` is the host session, ``key`` the
    parcel's sequence number in it. ``label`` is the tracking number, for display only: any
    length and any characters are accepted; the wire carries its first ``MAX_LABEL`` bytes
    of UTF-8, and the host keeps the whole number.
    """

    key: int
    encoder: int
    lane: int = 1
    epoch: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        for name, value, low, high in (("key", self.key, 0, 2**32 - 1),
                                       ("epoch", self.epoch, 0, 2**32 - 1),
                                       ("lane", self.lane, 0, 255),
                                       ("encoder", self.encoder, -(2**63), 2**63 - 1)):
            if not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")

    @property
    def releases(self) -> bool:
        return self.lane == RELEASE

    def pack(self) -> bytes:
        label = wire_label(self.label)
        return _COMMAND.pack(self.encoder, self.lane, self.epoch, self.key, len(label)) + label

    @classmethod
    def unpack(cls, payload: bytes) -> Command:
        head = _COMMAND.size
        if len(payload) < head or len(payload) != head + payload[head - 1] \
                or payload[head - 1] > MAX_LABEL:
            raise ValueError(f"command payload of {len(payload)} bytes is malformed")
        encoder, lane, epoch, key, _ = _COMMAND.unpack(payload[:head])
        return cls(key, encoder, lane, epoch, payload[head:].decode("utf-8", "replace"))


_HEARTBEAT = struct.Struct(">IIB")  # counter, epoch, state
_STATUS = struct.Struct(">BBIII")  # divert-all (0/1), why, diverted, epoch followed, trips


@dataclass(frozen=True)
class Heartbeat:
    counter: int
    epoch: int = 0
    state: int = HostState.INSPECTING

    @classmethod
    def unpack(cls, payload: bytes) -> Heartbeat:
        if len(payload) != _HEARTBEAT.size:
            raise ValueError(f"heartbeat payload of {len(payload)} bytes is malformed")
        return cls(*_HEARTBEAT.unpack(payload))


@dataclass(frozen=True)
class Status:
    divert_all: bool
    why: int  # DivertAll
    diverted: int  # parcels diverted since power-up
    epoch: int  # the host session the PLC last heard
    trips: int = 0  # watchdog trips since power-up: a trip the host could not hear still counts

    @classmethod
    def unpack(cls, payload: bytes) -> Status:
        if len(payload) != _STATUS.size:
            raise ValueError(f"status payload of {len(payload)} bytes is malformed")
        divert_all, why, diverted, epoch, trips = _STATUS.unpack(payload)
        return cls(bool(divert_all), why, diverted, epoch, trips)


def ack(seq: int, acked: int) -> Frame:
    return Frame(seq, Kind.ACK, bytes([acked]))


def nak(seq: int, refused: int, reason: NakReason) -> Frame:
    return Frame(seq, Kind.NAK, bytes([refused, int(reason)]))


def heartbeat(seq: int, counter: int, epoch: int = 0,
              state: HostState = HostState.INSPECTING) -> Frame:
    return Frame(seq, Kind.HEARTBEAT, _HEARTBEAT.pack(counter & 0xFFFFFFFF, epoch, int(state)))


def status(seq: int, why: DivertAll, diverted: int, epoch: int = 0, trips: int = 0) -> Frame:
    return Frame(seq, Kind.STATUS, _STATUS.pack(why != DivertAll.NO, int(why),
                                                diverted & 0xFFFFFFFF, epoch,
                                                trips & 0xFFFFFFFF))


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
