"""The live loop's way into the store: a thread of its own, fed by a queue.

The hub hands each settled parcel, and later its command's fate, to ``StoreWriter`` in a
call that only appends to a queue; rendering the pictures, writing them and committing the
rows happen on the writer's thread, in batches (one transaction for whatever has queued up
meanwhile). A parcel is on record, and shown to operators, once its batch has committed.

The queue holds the parcels' images until they are written. A writer that falls behind (a
slow disk) keeps every parcel's record but stops keeping pictures beyond ``max_pending``
parcels: the record of an alert is never dropped, pictures may be. A failing commit is retried
with the next batch, the rows kept in memory meanwhile, and the store reports itself unhealthy.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edge.detect.files import detections_as_dicts
from edge.store.db import Box, ParcelRow, Store
from edge.store.images import write_images
from edge.store.retention import Retention, prune
from edge.types import Action, Parcel, Verdict

NICE = 10   # the writer thread's nice value, above the live loop's 0
HealthSource = Callable[[], dict[str, tuple[bool, dict]]]


@dataclass
class WriterStats:
    parcels: int = 0            # records committed
    pictures_skipped: int = 0   # parcels stored without pictures (backlog or write error)
    batches: int = 0
    failures: int = 0           # commits that failed (and were retried)
    commit_s: list[float] = field(default_factory=list)   # the most recent batches'
    last_error: str = ""


class StoreWriter:
    def __init__(self, store: Store, run_id: int, classes: Sequence[str],
                 weapon_classes: Sequence[str], pictures: str = "all",
                 boundaries: tuple[float, float] | None = None, max_pending: int = 64,
                 health: HealthSource | None = None, health_every_s: float = 1.0,
                 retention: Retention | None = None, log: Callable[[str], None] = print):
        if pictures not in ("all", "alerts", "none"):
            raise ValueError(f"pictures is all, alerts or none, not {pictures!r}")
        self.store, self.run_id, self.log = store, run_id, log
        self.classes = list(classes)
        self.weapons = set(weapon_classes)
        self.pictures, self.boundaries, self.max_pending = pictures, boundaries, max_pending
        self.health_source, self.health_every_s = health, health_every_s
        self.retention = retention
        self.stats = WriterStats()
        # Monotonic times of the live loop to wall-clock times of the record.
        self._wall_offset = time.time() - time.monotonic()
        self._queue: queue.Queue = queue.Queue()
        self._pending_pictures = 0
        self._lock = threading.Lock()
        self._unwritten: list[tuple] = []    # a failed batch's operations, retried first
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store", daemon=True)
        self._next_health = 0.0
        self._next_prune = 0.0

    def start(self) -> StoreWriter:
        self._thread.start()
        return self

    # --- called by the live loop: cheap, never blocking -------------------------------------

    def settled(self, parcel: Parcel, verdict: Verdict, settled_at: float) -> None:
        """``parcel`` got ``verdict`` at ``settled_at`` (monotonic seconds)."""
        keep = self.pictures == "all" or (self.pictures == "alerts" and (
            verdict.action != Action.CLEAR or len(verdict.detections)))
        with self._lock:
            if keep and self._pending_pictures >= self.max_pending:
                keep = False
                self.stats.pictures_skipped += 1
            self._pending_pictures += keep
        found = verdict.detections
        boxes = [Box(d["label"], d["score"], tuple(d["box"]))
                 for d in detections_as_dicts(found, self.classes)]
        last_line = float(parcel.t[-1])
        decided = self._wall(settled_at)
        row = ParcelRow(
            run_id=self.run_id, seq=parcel.seq, tracking=parcel.id,
            label_read=not parcel.id.startswith("UNREAD"),
            scanned_at=decided - (settled_at - last_line), decided_at=decided,
            latency_ms=round((settled_at - last_line) * 1000, 2), action=str(verdict.action),
            reason=verdict.reason, width=parcel.shape[1], height=parcel.shape[0], boxes=boxes,
            weapon=any(b.cls in self.weapons for b in boxes))
        self._queue.put(("parcel", row, parcel if keep else None))

    def commanded(self, seq: int, lane: int, reason: str) -> None:
        self._queue.put(("commanded", seq, lane, reason))

    def sent(self, seq: int, t: float) -> None:
        self._queue.put(("sent", seq, self._wall(t)))

    def done(self, seq: int, outcome: str) -> None:
        self._queue.put(("done", seq, outcome, time.time()))

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, end the run's record and stop the thread."""
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self.log(f"store: {self._queue.qsize()} records still unwritten after "
                     f"{timeout_s:g} s")
            return
        try:
            self.store.end_run(self.run_id)
        except Exception as exc:  # noqa: BLE001 - shutting down: say so, do not raise
            self.log(f"store: could not close the run's record: {exc}")
        self.store.close()

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + len(self._unwritten)

    # --- the writer's thread ------------------------------------------------------------------

    def _wall(self, t: float) -> float:
        return self._wall_offset + t

    def _run(self) -> None:
        # Rendering and encoding pictures must never take a core from the detector: on Linux a
        # thread has its own nice value, and this one yields to the live loop's.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except (AttributeError, OSError):
            pass
        stopping = False
        while not stopping or self._unwritten:
            batch, stopping = self._collect(stopping)
            operations = self._unwritten + [self._prepare(job) for job in batch]
            self._unwritten = []
            now = time.monotonic()
            health = now >= self._next_health
            if health:
                self._next_health = now + self.health_every_s
            try:
                if operations or health:
                    self._commit(operations, health)
            except Exception as exc:  # noqa: BLE001 - keep the rows, retry, say it once
                self.stats.failures += 1
                if str(exc) != self.stats.last_error:
                    self.log(f"store: commit failed, {len(operations)} records kept to retry: "
                             f"{type(exc).__name__}: {exc}")
                self.stats.last_error = str(exc)
                self._unwritten = operations
                if stopping and self.stats.failures > 3:
                    self.log(f"store: giving up on {len(operations)} records at shutdown")
                    return
                time.sleep(0.5)
                continue
            if self.retention is not None and now >= self._next_prune:
                self._next_prune = now + self.retention.every_s
                self._prune()

    def _collect(self, stopping: bool) -> tuple[list, bool]:
        """What has queued: waits for the first job (up to the next health report), then
        takes the rest without waiting."""
        batch = []
        try:
            wait = max(0.0, self._next_health - time.monotonic()) if not stopping else 0.0
            job = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            while True:
                if job is None:
                    stopping = True
                else:
                    batch.append(job)
                if len(batch) >= 500:
                    break
                job = self._queue.get_nowait()
        except queue.Empty:
            pass
        return batch, stopping

    def _prepare(self, job: tuple) -> tuple:
        """A parcel's pictures written (outside any transaction: they are files)."""
        if job[0] != "parcel":
            return job
        _, row, parcel = job
        if parcel is not None:
            day = datetime.fromtimestamp(row.decided_at, UTC).strftime("%Y-%m-%d")
            relative = f"{day}/{row.run_id}-{row.seq}"
            try:
                row.image_bytes = write_images(parcel, self.store.images / relative,
                                               self.boundaries)
                row.images = relative
            except Exception as exc:  # noqa: BLE001 - a record without pictures, said so
                self.stats.pictures_skipped += 1
                self.log(f"store: pictures of parcel {row.tracking} not written: {exc}")
            finally:
                with self._lock:
                    self._pending_pictures -= 1
        return ("row", row)

    def _commit(self, operations: list[tuple], health: bool) -> None:
        started = time.monotonic()
        with self.store.transaction() as conn:
            for op in operations:
                kind = op[0]
                if kind == "row":
                    self.store.insert_parcel(conn, op[1])
                elif kind == "commanded":
                    conn.execute("UPDATE parcels SET lane = ?, reason = ? WHERE run_id = ? "
                                 "AND seq = ?", (op[2], op[3], self.run_id, op[1]))
                elif kind == "sent":
                    conn.execute("UPDATE parcels SET sent_at = coalesce(sent_at, ?) "
                                 "WHERE run_id = ? AND seq = ?", (op[2], self.run_id, op[1]))
                elif kind == "done":
                    conn.execute("UPDATE parcels SET outcome = ?, outcome_at = ? WHERE "
                                 "run_id = ? AND seq = ?", (op[2], op[3], self.run_id, op[1]))
            if health:
                self._write_health(conn)
        self.stats.last_error = ""
        self.stats.parcels += sum(op[0] == "row" for op in operations)
        self.stats.batches += 1
        self.stats.commit_s.append(time.monotonic() - started)
        del self.stats.commit_s[:-1000]

    def _write_health(self, conn) -> None:
        reports = {}
        if self.health_source is not None:
            try:
                reports = self.health_source()
            except Exception as exc:  # noqa: BLE001 - a broken report is itself news
                reports = {"hub": (False, {"error": f"{type(exc).__name__}: {exc}"})}
        reports["store"] = (not self._unwritten,
                            {"backlog": self.backlog, "parcels": self.stats.parcels,
                             "pictures_skipped": self.stats.pictures_skipped,
                             "failures": self.stats.failures,
                             "last_error": self.stats.last_error})
        for component, (ok, detail) in reports.items():
            Store.upsert_health(conn, component, ok, detail)

    def _prune(self) -> None:
        try:
            removed = prune(self.store, self.retention)
            if removed.parcels or removed.pictures:
                self.log(f"store: retention removed {removed.parcels} parcels and the "
                         f"pictures of {removed.pictures} ({removed.bytes / 1e6:.1f} MB)")
        except Exception as exc:  # noqa: BLE001 - retention is housekeeping, not the line
            self.log(f"store: retention failed: {type(exc).__name__}: {exc}")
