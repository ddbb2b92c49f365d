"""Every parcel's fate, kept in one place so that none is lost and none is decided twice.

A parcel is opened when segmentation cuts it, with the time by which its verdict must be out.
The first verdict to settle it wins: the detector's, or ``uninspected`` from the deadline
watcher, the overload path or a detector fault (fail closed). Anything still open at its
deadline is handed to the watcher; anything still open at shutdown is reported, not dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from edge.types import Action, Detections, Parcel, Verdict


@dataclass
class Entry:
    parcel: Parcel | None           # the images, until the verdict is out (``release``)
    deadline: float                 # monotonic seconds: verdict out by then
    divert_encoder: int             # encoder count when the leading edge reaches the diverter
    verdict: Verdict | None = None
    settled_at: float | None = None
    sent_at: float | None = None    # command frame first written to the line
    lane: int | None = None         # the command sent: 0 release, 1.. divert; None: none
    outcome: str | None = None      # how the command ended (``edge.plc.link.Outcome``)
    seq: int = 0
    parcel_id: str = ""
    last_line_t: float = 0.0
    truth_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.parcel is not None:
            self.seq, self.parcel_id = self.parcel.seq, self.parcel.id
            self.last_line_t = float(self.parcel.t[-1])
            self.truth_labels = tuple(self.parcel.truth_labels)

    def release(self) -> None:
        """Forget the parcel's images once decided: the ledger outlives thousands of parcels."""
        self.parcel = None


@dataclass
class Ledger:
    entries: dict[int, Entry] = field(default_factory=dict)
    # The watcher looks every 5 ms and the link reports every frame: both look only at the
    # few parcels in flight, never at the whole history of a long run.
    _open: dict[int, Entry] = field(default_factory=dict)
    _unsent: dict[int, Entry] = field(default_factory=dict)   # commands awaiting their frame
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, parcel: Parcel, deadline: float, divert_encoder: int) -> Entry:
        with self._lock:
            if parcel.seq in self.entries:
                raise ValueError(f"parcel seq {parcel.seq} ({parcel.id}) opened twice")
            entry = self.entries[parcel.seq] = Entry(parcel, deadline, divert_encoder)
            self._open[parcel.seq] = entry
            return entry

    def settle(self, seq: int, verdict: Verdict, now: float) -> Entry | None:
        """Record ``verdict`` unless the parcel already has one; returns the entry if it won."""
        with self._lock:
            entry = self._open.pop(seq, None)
            if entry is None:
                return None
            entry.verdict, entry.settled_at = verdict, now
            return entry

    def is_open(self, seq: int) -> bool:
        with self._lock:
            return seq in self._open

    def overdue(self, now: float) -> list[Entry]:
        with self._lock:
            return [e for e in self._open.values() if e.deadline <= now]

    def open_entries(self) -> list[Entry]:
        with self._lock:
            return list(self._open.values())

    def commanded(self, entry: Entry, lane: int) -> None:
        """``entry``'s command (lane 0 release, else divert) is queued on the PLC link."""
        with self._lock:
            entry.lane = lane
            self._unsent[entry.seq] = entry

    def mark_sent(self, seq: int, now: float) -> None:
        with self._lock:
            entry = self._unsent.pop(seq, None)
            if entry is not None:
                entry.sent_at = now

    def command_done(self, seq: int, outcome: str) -> None:
        with self._lock:
            self._unsent.pop(seq, None)
            entry = self.entries.get(seq)
            if entry is not None:
                entry.outcome = outcome

    def snapshot(self) -> list[Entry]:
        with self._lock:
            return list(self.entries.values())


def uninspected(entry: Entry, reason: str) -> Verdict:
    return Verdict(entry.parcel_id, Action.UNINSPECTED, Detections.empty(), reason=reason)


def percentiles_ms(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p99": None, "max": None}
    ms = np.asarray(seconds) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1), "max": round(float(ms.max()), 1)}
