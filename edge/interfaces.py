"""The seams of the live loop: each external thing behind a small Protocol.

``Hub`` (``edge.pipeline``) talks to these and to nothing else of a source's, so a simulated
scanner, a scanner's acquisition PC over TCP and a recording plug in alike, as do a simulated
camera and a real one, the ONNX model and a stand-in, the framed serial link and Modbus RTU.
Which implementation runs is chosen by the ``type`` of its section in the config.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from edge.plc.frames import Command
from edge.plc.link import LinkStats
from edge.types import BeltEvent, Detections, LineBlock, Parcel, Photo


class EndOfStream(Exception):
    """A finite line source (a recording, a sender that said goodbye) has no more lines."""


class NoLinesYet(Exception):
    """``read`` waited its limit and no line came (a belt at rest, a sender that paused). Not
    a fault of itself: the live loop reads again, and its stall watcher judges the silence."""


class ScannerError(RuntimeError):
    """The line source failed (connection lost, a corrupt frame); the message says how. The
    live loop counts it as a fault, so the line fails closed, and reads on."""


class Scanner(Protocol):
    """A dual-energy line-scan source: raw line blocks and the photo-eye's belt events."""

    def read(self) -> LineBlock:
        """The next block of lines, waiting for it; raises ``EndOfStream`` when a finite
        source is done, ``ScannerError`` when the source fails, and may raise
        ``NoLinesYet`` after a bounded wait, so that the caller can stop a run."""
        ...

    def poll_events(self) -> list[BeltEvent]:
        """Photo-eye events up to the last block read, oldest first, each returned once."""
        ...

    def close(self) -> None: ...


class Calibrates(Protocol):
    """A scanner that can take its own dark (source off) and air (empty belt) lines."""

    def capture_calibration(self, lines: int, source_on: bool) -> LineBlock: ...


class Camera(Protocol):
    """The top camera, triggered by the photo-eye."""

    def photograph(self, event: BeltEvent) -> Photo | None:
        """The photo taken at ``event``, or None when the camera gave none."""
        ...

    def close(self) -> None: ...


class Detector(Protocol):
    """A parcel in, detections in the parcel's own pixels out."""

    name: str                   # said in every summary and in `edge run`'s first line
    version: str | None         # the model's version (None: not a model, a stand-in)
    classes: tuple[str, ...]    # what ``Detections.class_id`` indexes

    def __call__(self, parcel: Parcel) -> Detections: ...


class DivertLink(Protocol):
    """The host end of the belt-PLC link: commands out, their outcomes back by callback."""

    url: str
    epoch: int   # this host session's name on the link
    on_done: Callable[[Command, str], None] | None    # a command's one outcome
    on_sent: Callable[[Command, float], None] | None  # a command's first frame is on the wire
    on_fault: Callable[[str, str], None] | None       # (kind, detail) of a link fault
    fail_closed: bool   # told to the PLC: divert every parcel while set
    stats: LinkStats

    def start(self) -> DivertLink: ...

    def stop(self) -> None:
        """Stop; commands still queued end as ``unsent`` (lost)."""
        ...

    def send(self, key: int, encoder: int, lane: int, label: str = "",
             expires_at: float = math.inf) -> Command: ...

    @property
    def unacked(self) -> int: ...

    @property
    def silent_for_s(self) -> float:
        """Seconds since the PLC was last heard (a status frame, an ACK, an answer)."""
        ...
