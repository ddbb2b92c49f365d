"""Raw line blocks and photo-eye events over TCP from the scanner's acquisition PC.

Pure framing first (``pack_*`` and ``FrameReader``, no sockets), then ``ClockMap`` (the
sender's clock onto ours) and ``TcpLineSource``, the thin socket shell. docs/scanner-tcp.md
is the vendor's copy of the wire format; tests/test_tcp_source.py checks both.

    MAGIC "XRL1" | VERSION u16 | KIND u16 | LENGTH u32 | CRC-32 u32 | RESERVED u32 | PAYLOAD

Little-endian; CRC-32 (zlib's) over the payload only. A frame that fails its CRC is skipped by
its length; a header without the magic cannot be, so the reader hunts for the next magic.
"""

from __future__ import annotations

import math
import socket
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from edge.config import TcpScannerConfig
from edge.interfaces import EndOfStream, NoLinesYet, ScannerError
from edge.types import BeltEvent, LineBlock

MAGIC = b"XRL1"
VERSION = 1
MAX_PAYLOAD = 64 * 2**20  # bytes; 21,845 lines of 768 pixels, a few seconds of belt

_HEADER = struct.Struct("<4sHHIII")  # magic, version, kind, payload length, CRC-32, reserved
_LINES = struct.Struct("<II")  # rows, n_pixels; then t, encoder, hi, lo
_EVENT = struct.Struct("<dq")  # t, encoder


class Kind(IntEnum):
    LINES = 1
    EVENT = 2  # the photo-eye saw a parcel's leading edge
    END = 3  # the sender has no more lines; it closes the connection next


_KINDS = frozenset(Kind)


class FrameError(ScannerError):
    """A frame the reader refused; the message says which and why."""


@dataclass(frozen=True)
class EndFrame:
    """The sender's end-of-stream frame."""


END = EndFrame()
Item = LineBlock | BeltEvent | EndFrame


# --- packing ------------------------------------------------------------------------------------

def _frame(kind: Kind, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is over the cap of {MAX_PAYLOAD}")
    return _HEADER.pack(MAGIC, VERSION, kind, len(payload), zlib.crc32(payload), 0) + payload


def _wire(values: np.ndarray, dtype: str) -> bytes:
    # "safe" casting: float64 times or int64 counts are never silently rounded or wrapped
    return np.asarray(values).astype(dtype, casting="safe", copy=False).tobytes()


def pack_lines(block: LineBlock) -> bytes:
    rows, n_pixels = block.hi.shape
    return _frame(Kind.LINES, b"".join((
        _LINES.pack(rows, n_pixels), _wire(block.t, "<f8"), _wire(block.encoder, "<i8"),
        _wire(block.hi, "<u2"), _wire(block.lo, "<u2"))))


def pack_event(event: BeltEvent) -> bytes:
    return _frame(Kind.EVENT, _EVENT.pack(event.t, event.encoder))


def pack_end() -> bytes:
    return _frame(Kind.END, b"")


# --- decoding -----------------------------------------------------------------------------------

def _unpack_lines(payload: bytearray) -> LineBlock:
    if len(payload) < _LINES.size:
        raise FrameError(f"line frame of {len(payload)} bytes is shorter than its "
                         f"{_LINES.size}-byte head")
    rows, n_pixels = _LINES.unpack_from(payload)
    need = _LINES.size + rows * (8 + 8 + 4 * n_pixels)
    if len(payload) != need:
        raise FrameError(f"line frame says {rows} rows x {n_pixels} pixels, which is {need} "
                         f"payload bytes, but carries {len(payload)}")

    def take(dtype: str, count: int, offset: int) -> np.ndarray:
        # no copy on a little-endian host: the arrays share the frame's own payload copy
        return np.frombuffer(payload, dtype, count, offset).astype(dtype[1:], copy=False)

    t = take("<f8", rows, _LINES.size)
    encoder = take("<i8", rows, _LINES.size + 8 * rows)
    pixels = rows * n_pixels
    hi = take("<u2", pixels, _LINES.size + 16 * rows).reshape(rows, n_pixels)
    lo = take("<u2", pixels, _LINES.size + 16 * rows + 2 * pixels).reshape(rows, n_pixels)
    if not np.isfinite(t).all():
        raise FrameError(f"line frame has times that are not finite: {t[~np.isfinite(t)][:3]}")
    return LineBlock(hi, lo, t, encoder)


def _unpack(kind: Kind, payload: bytearray) -> Item:
    if kind is Kind.LINES:
        return _unpack_lines(payload)
    want = _EVENT.size if kind is Kind.EVENT else 0
    if len(payload) != want:
        raise FrameError(f"{kind.name.lower()} frame of {len(payload)} bytes, expected {want}")
    if kind is Kind.END:
        return END
    t, encoder = _EVENT.unpack(payload)
    if not math.isfinite(t):
        raise FrameError(f"event frame has a time that is not finite: {t}")
    return BeltEvent(t, encoder)


def _refuse_header(version: int, kind: int) -> str | None:
    """Why a frame with this header cannot be read, or None."""
    if version > VERSION:
        return (f"format version {version} is newer than this reader's {VERSION}: upgrade the "
                "edge software")
    if version != VERSION:
        return f"format version {version} is unknown (this reader reads {VERSION})"
    if kind not in _KINDS:
        return f"unknown frame kind {kind} (known: 1 lines, 2 event, 3 end)"
    return None


class FrameReader:
    """Incremental decoder: ``feed`` bytes as they arrive, in chunks of any size.

    A refused frame raises ``FrameError`` when the reader reaches it, after the items before
    it were yielded and after the reader stepped past it: ``feed(b"")`` then goes on with
    what is already buffered.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discard = 0  # bytes still to drop of a frame refused by its header
        self._lost: str | None = None  # why the reader is hunting for the next magic
        self._lost_bytes = 0
        self.skipped = 0  # bytes dropped while hunting, in all
        self.refused = 0  # frames refused, in all

    def feed(self, data: bytes) -> Iterator[Item]:
        self._buffer += data  # now, not when the caller first iterates
        return self._drain()

    def _drain(self) -> Iterator[Item]:
        buffer = self._buffer
        while True:
            if self._discard:
                dropped = min(self._discard, len(buffer))
                del buffer[:dropped]
                self._discard -= dropped
                if self._discard:
                    return
            if self._lost is None and not buffer.startswith(MAGIC):
                if MAGIC.startswith(buffer):
                    return  # empty, or the first bytes of a magic
                self._start_hunt(f"bad magic {bytes(buffer[:len(MAGIC)])!r}", 0)
            if self._lost is not None:
                if not self._hunt():
                    return
                why, self._lost = self._lost, None
                raise FrameError(f"{why}: skipped {self._lost_bytes} bytes to the next frame "
                                 "start")
            if len(buffer) < _HEADER.size:
                return
            _, version, kind, length, crc, _ = _HEADER.unpack_from(buffer)
            if length > MAX_PAYLOAD:  # a length this wrong cannot be trusted to skip by
                self._start_hunt(f"payload length {length} is over the cap of {MAX_PAYLOAD} "
                                 "bytes", 1)
                continue
            refusal = _refuse_header(version, kind)
            if refusal:  # the header is sound, so its length skips the frame
                self._discard = _HEADER.size + length
                self.refused += 1
                raise FrameError(refusal)
            end = _HEADER.size + length
            if len(buffer) < end:
                return
            payload = buffer[_HEADER.size:end]  # a copy the decoded arrays may keep
            del buffer[:end]
            if zlib.crc32(payload) != crc:
                self.refused += 1
                raise FrameError(f"{Kind(kind).name.lower()} frame of {length} payload bytes "
                                 f"fails its CRC (header {crc:#010x}, payload "
                                 f"{zlib.crc32(payload):#010x}); skipped it")
            try:
                item = _unpack(Kind(kind), payload)
            except FrameError:
                self.refused += 1
                raise
            yield item

    def _start_hunt(self, why: str, drop: int) -> None:
        self.refused += 1
        self._lost, self._lost_bytes = why, 0
        self._drop(drop)

    def _hunt(self) -> bool:
        """Drop bytes up to the next magic; True when one is in front."""
        start = self._buffer.find(MAGIC)
        if start < 0:  # keep a tail that may be the first bytes of the next magic
            self._drop(max(0, len(self._buffer) - len(MAGIC) + 1))
            return False
        self._drop(start)
        return True

    def _drop(self, count: int) -> None:
        del self._buffer[:count]
        self._lost_bytes += count
        self.skipped += count


# --- clock --------------------------------------------------------------------------------------

class ClockMap:
    """The sender's clock onto ours: ``t_local = t_sender + offset``, seconds.

    Each frame gives a sample: our ``time.monotonic()`` when it arrived minus the sender's time
    of its last line (or of its event). That is the clocks' offset plus the frame's delay (the
    sender's queue, the network, our read). A delay is never negative and jitter only adds to
    it, so the smallest sample of a window is the offset plus the *smallest* delay, the best
    estimate there is: mapped times err late by that delay (about a millisecond on a LAN, well
    inside the divert margin), never by the jitter. The window, rather than all samples ever,
    follows the two crystals' drift (tens of ppm).
    """

    def __init__(self, window: int = 256) -> None:
        self._samples: deque[float] = deque(maxlen=window)

    def observe(self, received_at: float, sender_t: float) -> None:
        if math.isfinite(sender_t):
            self._samples.append(received_at - sender_t)

    @property
    def offset(self) -> float | None:
        """Seconds to add to a sender's time; None before the first sample."""
        return min(self._samples) if self._samples else None

    def to_local(self, t: float | np.ndarray) -> float | np.ndarray:
        offset = self.offset
        if offset is None:
            raise ValueError("no frame observed yet, so the sender's clock offset is unknown")
        return t + offset

    def reset(self) -> None:
        """Forget every sample: a sender that reconnects may have restarted its clock."""
        self._samples.clear()


# --- the source ---------------------------------------------------------------------------------

def _keep_alive(sock: socket.socket) -> None:
    """A vanished acquisition PC (power cut, pulled cable) sends no FIN. Keepalive probes find
    it in about 5 s, so ``read`` raises instead of waiting for ever."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 2), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):  # Linux names; elsewhere the system's defaults apply
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class TcpLineSource:
    """The ``Scanner`` on a TCP connection to the acquisition PC, which is the server.

    Connects in the constructor, so a scanner that is not there fails start-up loudly. A lost
    connection raises ``ScannerError`` from ``read``; the next ``read`` connects again (at most
    one try per ``retry_s``, so a live loop that reads on after each error does not spin).
    Line and event times come out on our ``time.monotonic()`` clock (``ClockMap``).
    """

    def __init__(self, config: TcpScannerConfig, *, retry_s: float = 0.5,
                 window: int = 256) -> None:
        self.config = config
        self.address = f"{config.host}:{config.port}"
        self.clock = ClockMap(window)
        self._retry_s = retry_s
        self._sock: socket.socket | None = None
        self._reader = FrameReader()
        self._items: deque[Item] = deque()  # decoded, not yet handed out
        self._held: list[BeltEvent] = []  # read past, on the sender's clock
        self._events: list[BeltEvent] = []  # on ours, for the next poll_events
        self._received_at = 0.0  # our time of the recv that brought the buffered bytes
        self._last_try = -math.inf
        self._ended = self._closed = False
        self._connect()

    def read(self) -> LineBlock:
        while True:
            while self._items and not self._ended:
                item = self._items.popleft()
                if isinstance(item, BeltEvent):
                    self._held.append(item)
                elif isinstance(item, EndFrame):
                    self._ended = True
                    self._disconnect()
                elif len(item):  # a block of no lines carries nothing
                    self._release_held()
                    return self._local(item)
            if self._ended:
                raise EndOfStream(f"the scanner at {self.address} sent its end-of-stream frame")
            self._fill()

    def poll_events(self) -> list[BeltEvent]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        """Disconnect; safe from another thread, where it wakes a ``read`` that waits."""
        self._closed = True
        self._disconnect()

    def _release_held(self) -> None:
        """Map the events read past with the offset of the block after them: the offset moves
        as frames arrive, and an event must stay where it was among that block's lines."""
        self._events += [BeltEvent(self.clock.to_local(e.t), e.encoder) for e in self._held]
        self._held.clear()

    def _local(self, block: LineBlock) -> LineBlock:
        if block.n_pixels != self.config.n_pixels:
            raise ScannerError(f"the scanner at {self.address} sends lines of {block.n_pixels} "
                               f"pixels but scanner.n_pixels is {self.config.n_pixels}")
        return LineBlock(block.hi, block.lo, self.clock.to_local(block.t), block.encoder)

    def _fill(self) -> None:
        """Decode what is buffered or else wait for more bytes, (re)connecting first."""
        if self._closed:
            raise ScannerError(f"the source for {self.address} is closed")
        if self._decode(b""):
            return
        sock = self._sock or self._connect()
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            raise NoLinesYet(f"no bytes from the scanner at {self.address} for "
                             f"{self.config.read_wait_s:g} s") from None
        except OSError as error:
            data, why = b"", f"lost the scanner at {self.address}: {error}"
        else:
            why = f"the scanner at {self.address} closed the connection"
        if not data:
            self._disconnect()
            raise ScannerError(f"the source for {self.address} is closed" if self._closed
                               else why)
        self._received_at = time.monotonic()
        self._decode(data)

    def _decode(self, data: bytes) -> bool:
        """Decode into the queue (a refused frame raises after the good ones before it)."""
        count = len(self._items)
        for item in self._reader.feed(data):
            if isinstance(item, LineBlock) and len(item):
                self.clock.observe(self._received_at, float(item.t[-1]))
            elif isinstance(item, BeltEvent):
                self.clock.observe(self._received_at, item.t)
            self._items.append(item)
        return len(self._items) > count

    def _connect(self) -> socket.socket:
        wait = self._last_try + self._retry_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_try = time.monotonic()
        try:
            sock = socket.create_connection((self.config.host, self.config.port),
                                            timeout=self.config.connect_timeout_s)
        except OSError as error:
            raise ScannerError(f"cannot connect to the scanner at {self.address}: "
                               f"{error}") from error
        # A read waits a while for lines, then lets the live loop look up; keepalive finds a
        # sender that vanished without a word.
        sock.settimeout(self.config.read_wait_s)
        _keep_alive(sock)
        self._sock, self._reader = sock, FrameReader()  # a half frame of the last one is void
        self.clock.reset()
        return sock

    def _disconnect(self) -> None:
        self._release_held()  # while their connection's clock offset is still known
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone
            sock.close()
