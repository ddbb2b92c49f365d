"""Every parcel's fate, kept in one place so that none is lost and none is decided twice.

A parcel is opened when segmentation cuts it, with the time by which its verdict must be out.
The first verdict to settle it wins: the detector's, or ``uninspected`` from the deadline
watcher, the overload path or a detector fault (fail closed). Anything still open at its
deadline is handed to the watcher; anything still open at shutdown is reported, not dropped.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass

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


class Ledger:
    """The entries of the parcels of a run, by seq, and the run's totals.

    Bounded on a line that runs for weeks: ``entries`` holds every parcel still open or whose
    command awaits its outcome, and the ``keep`` most recent *finished* ones (settled, and
    their command ended or none was queued). Older finished entries are evicted, lowest seq
    first, at O(1) amortised cost per parcel. So ``entries`` and ``snapshot()`` hold the most
    recent parcels only; latencies and other figures taken from them describe those. The
    running totals count the whole run, evicted parcels included:

    - ``opened``: parcels opened;
    - ``actions``: verdict action (``Action`` value) -> parcels settled with it;
    - ``threats``: parcels opened that carry ground-truth threats;
    - ``outcomes``: (lane, outcome, carries threats) -> commands that ended so; a command
      reported twice (a late ACK after giving up) counts under its last outcome.
    """

    def __init__(self, keep: int = 10_000) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1 finished entry, got {keep}")
        self.keep = keep
        self.entries: dict[int, Entry] = {}
        self.opened = 0
        self.threats = 0
        self.actions: Counter[str] = Counter()
        self.outcomes: Counter[tuple[int, str, bool]] = Counter()
        # The watcher looks every 5 ms and the link reports every frame: both look only at
        # the few parcels in flight, never at the whole history of a long run.
        self._open: dict[int, Entry] = {}
        self._unsent: dict[int, Entry] = {}     # commands awaiting their frame
        self._awaiting: dict[int, Entry] = {}   # commands awaiting their outcome
        self._finished: deque[int] = deque()    # seqs of the finished entries kept, ascending
        self._is_finished: set[int] = set()
        self._evicted_to = 0                    # the highest seq evicted so far
        self._lock = threading.Lock()

    def released(self, threats: bool | None = None) -> int:
        """Parcels released (lane 0) with an acknowledged command, over the whole run; with
        ``threats``, only those that did (True) or did not (False) carry threats."""
        return sum(n for (lane, outcome, threat), n in self.outcomes.items()
                   if lane == 0 and outcome == "acked" and threats in (None, threat))

    @property
    def settled(self) -> int:
        """Parcels settled over the whole run."""
        return sum(self.actions.values())

    def open(self, parcel: Parcel, deadline: float, divert_encoder: int) -> Entry:
        with self._lock:
            if parcel.seq in self.entries:
                raise ValueError(f"parcel seq {parcel.seq} ({parcel.id}) opened twice")
            if parcel.seq <= self._evicted_to:
                raise ValueError(f"parcel seq {parcel.seq} ({parcel.id}) opened after seq "
                                 f"{self._evicted_to} was finished and evicted: seqs are "
                                 "opened once, in order")
            entry = self.entries[parcel.seq] = Entry(parcel, deadline, divert_encoder)
            self._open[parcel.seq] = entry
            self.opened += 1
            self.threats += bool(entry.truth_labels)
            return entry

    def settle(self, seq: int, verdict: Verdict, now: float) -> Entry | None:
        """Record ``verdict`` unless the parcel already has one; returns the entry if it won."""
        with self._lock:
            entry = self._open.pop(seq, None)
            if entry is None:
                return None
            entry.verdict, entry.settled_at = verdict, now
            self.actions[str(verdict.action)] += 1
            self._finish_if_done(entry)
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
            self._awaiting[entry.seq] = entry
            # Settled a moment ago with no command yet, it counted as finished: it is not.
            if entry.seq in self._is_finished:
                self._unfinish(entry.seq)
            elif entry.seq not in self.entries:   # and was even evicted since: keep it again
                self.entries[entry.seq] = entry

    def mark_sent(self, seq: int, now: float) -> None:
        with self._lock:
            entry = self._unsent.pop(seq, None)
            if entry is not None:
                entry.sent_at = now

    def command_done(self, seq: int, outcome: str) -> None:
        """The command for ``seq`` ended in ``outcome``; a seq evicted already is ignored."""
        with self._lock:
            self._unsent.pop(seq, None)
            entry = self._awaiting.pop(seq, None)
            if entry is None:
                entry = self.entries.get(seq)
            if entry is None:
                return
            if entry.lane is not None:
                if entry.outcome is not None:   # reported again: count it under the last
                    before = self._outcome_key(entry)
                    self.outcomes[before] -= 1
                    if not self.outcomes[before]:
                        del self.outcomes[before]
                entry.outcome = str(outcome)
                self.outcomes[self._outcome_key(entry)] += 1
            else:
                entry.outcome = str(outcome)
            self._finish_if_done(entry)

    def snapshot(self) -> list[Entry]:
        with self._lock:
            return list(self.entries.values())

    # --- bounded history (callers hold the lock) ---------------------------------------------

    @staticmethod
    def _outcome_key(entry: Entry) -> tuple[int, str, bool]:
        return entry.lane, entry.outcome, bool(entry.truth_labels)

    def _finish_if_done(self, entry: Entry) -> None:
        """Count ``entry`` finished once it is settled and no command of it awaits an outcome,
        then evict the oldest finished entries beyond ``keep``."""
        seq = entry.seq
        if entry.verdict is None or seq in self._open or seq in self._awaiting \
                or seq in self._is_finished or seq not in self.entries:
            return
        # Parcels finish nearly in seq order: the walk from the right end is a step or two
        # (at most the parcels in flight), and so is the insert there.
        finished = self._finished
        at = len(finished)
        while at and finished[at - 1] > seq:
            at -= 1
        finished.insert(at, seq)
        self._is_finished.add(seq)
        while len(finished) > self.keep:
            old = finished.popleft()
            self._is_finished.discard(old)
            del self.entries[old]
            self._evicted_to = max(self._evicted_to, old)

    def _unfinish(self, seq: int) -> None:
        finished = self._finished
        for at in range(len(finished) - 1, -1, -1):   # it was finished a moment ago: near the end
            if finished[at] == seq:
                del finished[at]
                break
        self._is_finished.discard(seq)


def uninspected(entry: Entry, reason: str) -> Verdict:
    return Verdict(entry.parcel_id, Action.UNINSPECTED, Detections.empty(), reason=reason)


def percentiles_ms(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p99": None, "max": None}
    ms = np.asarray(seconds) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1), "max": round(float(ms.max()), 1)}
