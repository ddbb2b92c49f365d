"""Capture helpers: flat-field tables for the scanner, and parcels named by the top camera.

Shared by the live loop (``edge.pipeline``), the dataset writer and the calibration command.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edge.config import EdgeConfig
from edge.imaging.barcode import read_label
from edge.imaging.correct import FlatField
from edge.imaging.segment import Segment
from edge.interfaces import Calibrates
from edge.types import Parcel, Photo

FLATFIELD_FILE = "flatfield.npz"
MAX_READING = 3  # photos queued for the label reader at most


def encoder_break(last: int | None, encoder: np.ndarray, counts_per_line: float) -> str:
    """Why ``encoder`` (int64 ``[rows]``, one block) cannot follow ``last`` (the previous
    block's last count), or "" when it can: every line must move the belt forward by about
    ``counts_per_line`` (a quarter of it, plus two counts of rounding, either way)."""
    steps = np.diff(encoder if last is None else np.concatenate([[last], encoder]))
    if not steps.size:
        return ""
    worst = int(np.abs(steps - counts_per_line).argmax())
    if abs(steps[worst] - counts_per_line) <= 0.25 * counts_per_line + 2:
        return ""
    return (f"encoder moved {int(steps[worst])} counts in one line, expected about "
            f"{counts_per_line:g}")


def flatfield_path(config: EdgeConfig) -> Path:
    return Path(config.calibration_dir) / FLATFIELD_FILE


def capture_flatfield(scanner: Calibrates, lines: int = 512) -> FlatField:
    dark = scanner.capture_calibration(lines, source_on=False)
    air = scanner.capture_calibration(lines, source_on=True)
    return FlatField.from_lines(dark.hi, dark.lo, air.hi, air.lo)


def load_or_capture_flatfield(config: EdgeConfig, scanner: Calibrates | None,
                              log: Callable[[str], None] = print) -> FlatField:
    """The stored tables when they fit this scanner, else a fresh capture (as scanners do at
    power-up on an empty belt) from a scanner that can take one. A scanner that cannot (one
    streaming over TCP) needs the stored tables: without them this raises ValueError."""
    path = flatfield_path(config)
    if path.exists():
        try:
            flat = FlatField.load(path)
            if flat.dark_hi.shape[0] == config.scanner.n_pixels:
                return flat
            log(f"{path} is for {flat.dark_hi.shape[0]} pixels, scanner has "
                f"{config.scanner.n_pixels}: recalibrating")
        except ValueError as exc:
            log(f"{exc}: recalibrating")
    elif scanner is not None:
        log(f"no {path}: calibrating dark and air on the empty belt")
    if scanner is None:
        raise ValueError(f"no usable flat-field tables at {path}: this scanner source cannot "
                         "capture dark and air lines itself; write them there first "
                         "(docs/scanner-tcp.md)")
    return capture_flatfield(scanner)


class PhotoMatcher:
    """Names parcels by the label read from the top camera's photo of them.

    A photo taken when a parcel's leading edge passed the camera belongs to the parcel whose
    scan starts ``offset_counts`` encoder counts later. Labels are read on a thread of their
    own: an unreadable photo can take a second to give up on, and the capture loop must not
    wait for it. The camera sits upstream, so the label is normally read long before the
    parcel has been scanned; ``match`` waits at most ``wait_s`` for one still being read.
    ``read`` reads the label from a photo's image (tests put a fake in its place)."""

    def __init__(self, offset_counts: int, tolerance_counts: int, wait_s: float = 0.2, *,
                 read: Callable[[np.ndarray], str | None] = read_label):
        self.offset = offset_counts
        self.tolerance = tolerance_counts
        self.wait_s = wait_s
        self.read = read
        # A photo waits for its parcel a metre of belt at most: a few parcels, not hundreds
        # of full-HD frames.
        self.photos: deque[tuple[Photo, Future]] = deque(maxlen=8)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="labels")

    def add(self, photo: Photo) -> None:
        if len(self.photos) == self.photos.maxlen:
            # A photo nobody claimed: stop reading it too, or a slow reader's backlog of
            # full-HD frames would grow without bound.
            self.photos.popleft()[1].cancel()
        if sum(not f.done() for _, f in self.photos) >= MAX_READING:
            # The reader is behind (unreadable labels take longest): this parcel goes by its
            # sequence number rather than queue another frame behind them.
            skipped: Future = Future()
            skipped.set_result(None)
            self.photos.append((photo, skipped))
            return
        self.photos.append((photo, self._reader.submit(self.read, photo.image)))

    def match(self, encoder_start: int, encoder_end: int) -> tuple[Photo | None, str | None]:
        for index, (photo, label) in enumerate(self.photos):
            lead = photo.encoder + self.offset
            if encoder_start - self.tolerance <= lead <= encoder_end:
                # By position: ``remove`` would compare photos (their pixel arrays) to find it.
                del self.photos[index]
                try:
                    return photo, label.result(timeout=self.wait_s)
                except Exception:  # noqa: BLE001 - too slow (TimeoutError) or the reader failed
                    label.cancel()
                    return photo, None   # named by sequence; the photo stays attached
        return None, None


def to_parcel(seg: Segment, seq: int, matcher: PhotoMatcher,
              reread: Callable[[str | None], str | None] = lambda label: label) -> Parcel:
    """The parcel of ``seg``, named by its photo's label as ``reread`` returns it (the fault
    injector's hook), else by its sequence number."""
    photo, label = matcher.match(int(seg.encoder[0]), int(seg.encoder[-1]))
    label = reread(label)
    return Parcel(label or f"UNREAD{seq:06d}", seq, seg.hi, seg.lo, seg.encoder, seg.t,
                  photo=photo)
