"""Recordings of a scanner's stream, and a recording as a scanner source.

A recording is a folder (docs/recording-format.md): ``manifest.json``, the flat-field tables
in force (``flatfield.npz``), the config in force (``config.yaml``), numbered chunks of line
blocks and photo-eye events (``chunks/000000.npz``), the top-camera photos (``photos/``,
lossless PNG) and, from the simulator, the ground truth of every parcel cut
(``truth.jsonl``). ``Recorder`` writes one beside the live loop on a thread of its own, a
chunk at a time, each renamed into place only when whole, so a recording cut off by a power
loss replays up to its last complete chunk. ``RecordingSource`` plays one back as the live
loop's ``Scanner`` and ``RecordedCamera`` as its ``Camera``.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.imaging.correct import FlatField
from edge.interfaces import EndOfStream
from edge.types import BeltEvent, LineBlock, Parcel, Photo

FORMAT = "edge-recording"
VERSION = 1
CHUNK_S = 2.0            # seconds of belt per chunk: what a power loss can cost at most
WRITE_QUEUE = 256        # blocks, photos and truths waiting for the writer thread


class RecordingError(ValueError):
    """A folder that is not a recording this version can read; the message says why."""


class RecordingTruncated(UserWarning):
    """The recording was cut off (a power loss, a killed process), or one of its chunks is
    unreadable: it replays up to what is whole, and this warning says what was lost."""


@dataclass
class _Chunk:
    blocks: list[LineBlock] = field(default_factory=list)
    events: list[BeltEvent] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return float(self.blocks[-1].t[-1] - self.blocks[0].t[0]) if self.blocks else 0.0


class Recorder:
    """Writes a recording beside the live loop (module docstring).

    ``lines``, ``event``, ``photo`` and ``truth`` are called by the live loop and never block
    it: they queue for the writer thread. When the queue is full (the disk cannot keep up) or
    ``max_bytes`` is reached, recording stops, ``stopped`` says why, and inspection goes on.
    """

    def __init__(self, folder: Path | str, config_yaml: str, flat: FlatField,
                 max_bytes: int | None = None):
        self.folder = Path(folder)
        if self.folder.exists() and any(self.folder.iterdir()):
            raise RecordingError(f"{self.folder} is not empty: a recording needs a folder of "
                                 "its own")
        (self.folder / "chunks").mkdir(parents=True)
        (self.folder / "photos").mkdir()
        self.max_bytes = max_bytes
        self.written = 0
        self.chunks = 0
        self.photos = 0
        self.stopped = ""
        flat.save(self.folder / "flatfield.npz")
        (self.folder / "config.yaml").write_text(config_yaml)
        self._write_manifest(complete=False)
        self._queue: queue.Queue = queue.Queue(WRITE_QUEUE)
        self._chunk = _Chunk()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    # --- the live loop's side ------------------------------------------------------------------

    def lines(self, block: LineBlock) -> None:
        self._put(("lines", block))

    def event(self, event: BeltEvent) -> None:
        self._put(("event", BeltEvent(float(event.t), int(event.encoder))))

    def photo(self, event: BeltEvent, photo: Photo) -> None:
        self._put(("photo", (int(event.encoder), photo)))

    def truth(self, parcel: Parcel) -> None:
        """The ground truth of a parcel just cut (a simulated line knows it)."""
        if parcel.truth is None:
            return
        self._put(("truth", {"encoder": list(parcel.encoder_range),
                             "labels": list(parcel.truth_labels),
                             "boxes": np.round(parcel.truth.xyxy, 2).tolist()}))

    def close(self) -> None:
        """Write what is queued, the last chunk and the manifest that says it is complete."""
        self._put(None, block=True)
        self._thread.join()

    def _put(self, item, block: bool = False) -> None:
        if self.stopped and item is not None:
            return
        try:
            self._queue.put(item, block=block)
        except queue.Full:
            self.stopped = "the disk fell behind the scanner"

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        truth = open(self.folder / "truth.jsonl", "a")  # noqa: SIM115 - open for the run
        try:
            while (item := self._queue.get()) is not None:
                if self.stopped:
                    continue
                kind, value = item
                if kind == "lines":
                    # Cut before a block, never after: the events polled after a block go
                    # into its chunk, so a replay hands them out after the same block.
                    if self._chunk.seconds >= CHUNK_S:
                        self._flush()
                    self._chunk.blocks.append(value)
                elif kind == "event":
                    self._chunk.events.append(value)
                elif kind == "photo":
                    self._write_photo(*value)
                else:
                    truth.write(json.dumps(value) + "\n")
                    truth.flush()
            if not self.stopped:
                self._flush()
        except OSError as exc:
            self.stopped = f"the recording cannot be written: {exc}"
        finally:
            truth.close()
            self._write_manifest(complete=True)

    def _flush(self) -> None:
        chunk, self._chunk = self._chunk, _Chunk()
        if not chunk.blocks and not chunk.events:
            return
        arrays = chunk_arrays(chunk.blocks, chunk.events)
        size = sum(a.nbytes for a in arrays.values())
        if self.max_bytes is not None and self.written + size > self.max_bytes:
            self.stopped = f"the size limit ({self.max_bytes / 1e6:.0f} MB) is reached"
            return
        final = self.folder / "chunks" / f"{self.chunks:06d}.npz"
        partial = final.with_suffix(".part")
        with open(partial, "wb") as f:   # a file object: numpy would append .npz to the name
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        partial.rename(final)   # a chunk is in place whole, or not at all
        self.written += size
        self.chunks += 1

    def _write_photo(self, encoder: int, photo: Photo) -> None:
        path = self.folder / "photos" / f"{encoder}.png"
        ok, data = cv2.imencode(".png", photo.image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if ok:
            path.write_bytes(data.tobytes())
            self.written += data.size
            self.photos += 1

    def _write_manifest(self, complete: bool) -> None:
        manifest = {"format": FORMAT, "version": VERSION, "complete": complete,
                    "chunks": self.chunks, "photos": self.photos,
                    "stopped": self.stopped or None,
                    "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        partial = self.folder / "manifest.json.part"
        partial.write_text(json.dumps(manifest, indent=1) + "\n")
        partial.rename(self.folder / "manifest.json")


def chunk_arrays(blocks: list[LineBlock], events: list[BeltEvent]) -> dict[str, np.ndarray]:
    """One chunk's arrays: the blocks' lines end to end (``block_rows`` cuts them again)."""
    return {"hi": np.concatenate([b.hi for b in blocks]) if blocks else np.zeros((0, 0), np.uint16),
            "lo": np.concatenate([b.lo for b in blocks]) if blocks else np.zeros((0, 0), np.uint16),
            "t": np.concatenate([b.t for b in blocks]) if blocks else np.zeros(0),
            "encoder": np.concatenate([b.encoder for b in blocks]) if blocks
            else np.zeros(0, np.int64),
            "block_rows": np.array([len(b) for b in blocks], np.int64),
            "event_t": np.array([e.t for e in events], np.float64),
            "event_encoder": np.array([e.encoder for e in events], np.int64)}


@dataclass(frozen=True)
class TruthRecord:
    """A recorded parcel's ground truth: the encoder range it was cut at, its threats."""

    encoder: tuple[int, int]
    labels: tuple[str, ...]
    boxes: np.ndarray   # float32 [N, 4] xyxy in the parcel's pixels


class Recording:
    """A recording folder, opened for reading (checks its format and version)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        path = self.folder / "manifest.json"
        try:
            self.manifest = json.loads(path.read_text())
        except FileNotFoundError:
            raise RecordingError(f"{self.folder} is not a recording: no manifest.json") from None
        except ValueError as exc:
            raise RecordingError(f"{path} is not valid JSON: {exc}") from None
        if self.manifest.get("format") != FORMAT:
            raise RecordingError(f"{self.folder} is not an edge recording (format "
                                 f"{self.manifest.get('format')!r})")
        version = self.manifest.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise RecordingError(f"{self.folder} is a recording of format version {version}, "
                                 f"newer than this edge's {VERSION}: replay it with a newer "
                                 "edge")
        self.chunk_paths = sorted((self.folder / "chunks").glob("*.npz"))
        self.complete = bool(self.manifest.get("complete"))
        if not self.complete:
            warnings.warn(f"{self.folder} was cut off while recording: it replays up to its "
                          f"last complete chunk ({len(self.chunk_paths)} chunks)",
                          RecordingTruncated, stacklevel=2)
        elif self.manifest.get("stopped"):
            warnings.warn(f"{self.folder}: recording stopped early: "
                          f"{self.manifest['stopped']}", RecordingTruncated, stacklevel=2)

    def flat(self) -> FlatField:
        return FlatField.load(self.folder / "flatfield.npz")

    def truths(self) -> list[TruthRecord]:
        path = self.folder / "truth.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                out.append(TruthRecord(tuple(row["encoder"]), tuple(row["labels"]),
                                       np.asarray(row["boxes"], np.float32).reshape(-1, 4)))
            except (ValueError, KeyError, TypeError):
                break   # a line half written when the recording was cut off
        return out

    def chunks(self):
        """(line blocks, events) of every readable chunk, in order; an unreadable chunk is
        named in a warning and skipped."""
        for path in self.chunk_paths:
            try:
                with np.load(path, allow_pickle=False) as data:
                    arrays = {k: data[k] for k in data.files}
                rows = arrays["block_rows"]
                cuts = np.cumsum(rows)[:-1]
                blocks = [LineBlock(hi, lo, t, enc) for hi, lo, t, enc in zip(
                    np.split(arrays["hi"], cuts), np.split(arrays["lo"], cuts),
                    np.split(arrays["t"], cuts), np.split(arrays["encoder"], cuts),
                    strict=True)] if rows.size else []
                events = [BeltEvent(float(t), int(e)) for t, e in
                          zip(arrays["event_t"], arrays["event_encoder"], strict=True)]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                warnings.warn(f"{path} is unreadable and skipped: {exc}", RecordingTruncated,
                              stacklevel=2)
                continue
            yield blocks, events


class RecordingSource:
    """A recording as the live loop's ``Scanner``.

    ``speed`` is how fast the recorded belt plays: 1 real time, 2 twice as fast, None as fast
    as the live loop takes the blocks. Line times come out on our clock: each block is
    stamped so that its last line is read now, so deadlines measured from them stay what the
    belt gave the live run, whatever the speed."""

    def __init__(self, recording: Recording, speed: float | None = 1.0,
                 on_chunk: Callable[[], None] | None = None):
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be above 0, got {speed}")
        self.recording, self.speed, self.on_chunk = recording, speed, on_chunk
        self._chunks = recording.chunks()
        self._blocks: list[LineBlock] = []
        self._events: list[BeltEvent] = []
        self._pending: list[BeltEvent] = []
        self._offset = 0.0       # our clock minus the recording's, at the last block
        self._started: tuple[float, float] | None = None   # (our time, recorded time)
        self._first: float | None = None   # recorded time of the first line played
        self.played_s = 0.0                # recorded belt time played so far
        # (our time, encoder count) of the last line played, and the belt's counts per second
        self._belt: tuple[float, int, float] | None = None

    def read(self) -> LineBlock:
        while not self._blocks:
            try:
                self._blocks, events = next(self._chunks)
            except StopIteration:
                raise EndOfStream(f"the recording {self.recording.folder} is played out") \
                    from None
            self._pending += events
            if self.on_chunk is not None:
                self.on_chunk()
        block = self._blocks.pop(0)
        last = float(block.t[-1])
        if self._first is None:
            self._first = float(block.t[0])
        self.played_s = last - self._first
        if self.speed is not None:
            if self._started is None:
                self._started = (time.monotonic(), last)
            ours, theirs = self._started
            delay = ours + (last - theirs) / self.speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self._offset = time.monotonic() - last
        span = float(block.t[-1] - block.t[0])
        rate = (float(block.encoder[-1] - block.encoder[0]) / span if span > 0 else
                self._belt[2] if self._belt is not None else 0.0)
        self._belt = (time.monotonic(), int(block.encoder[-1]), rate * (self.speed or 1.0))
        due = [e for e in self._pending if e.t <= last]
        self._pending = [e for e in self._pending if e.t > last]
        self._events += [BeltEvent(e.t + self._offset, e.encoder) for e in due]
        return LineBlock(block.hi, block.lo, block.t + self._offset, block.encoder)

    def poll_events(self) -> list[BeltEvent]:
        events, self._events = self._events, []
        return events

    def encoder_now(self) -> int:
        """The played belt's encoder count at this instant: the last line played, moved on
        at the belt's last speed (after the recording ends the belt runs on, as a real one
        carries its last parcels to the diverter)."""
        if self._belt is None:
            return 0
        since, count, rate = self._belt
        return count + int((time.monotonic() - since) * rate)

    def close(self) -> None:
        self._chunks.close()


class RecordedCamera:
    """The recorded photos as the live loop's ``Camera``: the photo taken at an event's
    encoder count, if one was recorded."""

    def __init__(self, recording: Recording):
        self.folder = recording.folder / "photos"

    def photograph(self, event: BeltEvent) -> Photo | None:
        path = self.folder / f"{int(event.encoder)}.png"
        if not path.is_file():
            return None
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return None if image is None else Photo(image, event.t, int(event.encoder))

    def close(self) -> None:
        pass
