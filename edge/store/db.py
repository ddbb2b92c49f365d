"""The parcel store: one SQLite file in WAL mode, the parcels' images as files beside it.

Any number of readers (the dashboard's request threads, ``edge dashboard`` in another process)
work beside the one writer (``edge.store.writer``) without blocking it. Every connection is
made by ``Store.connect`` with the same pragmas; ``synchronous=FULL`` makes each commit
durable through a power loss, not just a crash of the process.

Operator actions (``decide``) and the audit rows that go with them commit together: the audit
log never says something happened that the tables do not show, nor the reverse.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edge.store.schema import migrate

DB_FILE = "edge.db"
IMAGES = "images"
ROLES = ("operator", "engineer", "admin")
REVIEWS = ("none", "pending", "confirmed", "cleared")
DECISIONS = {"confirm": "confirmed", "clear": "cleared", "note": None}


@dataclass(frozen=True)
class Box:
    cls: str
    score: float
    xyxy: tuple[float, float, float, float]


@dataclass
class ParcelRow:
    """One settled parcel as the writer stores it."""

    run_id: int
    seq: int
    tracking: str
    label_read: bool
    scanned_at: float
    decided_at: float
    latency_ms: float
    action: str
    reason: str
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    weapon: bool = False
    images: str | None = None
    image_bytes: int = 0

    @property
    def alert(self) -> bool:
        """An operator looks at it: diverted, uninspected, or any detection shown."""
        return self.action != "clear" or bool(self.boxes)


class StoreError(ValueError):
    """An action the store refuses (an unknown parcel, user or role, a bad decision)."""


class Store:
    """The store in ``root`` (created when missing): ``root/edge.db`` and ``root/images/``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.images = self.root / IMAGES
        self.images.mkdir(exist_ok=True)
        self.path = self.root / DB_FILE
        self._local = threading.local()
        with self.connect() as conn:
            self.schema_version = migrate(conn)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not shared between threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- what the live loop writes ------------------------------------------------------------

    def begin_run(self, detector: str, model_version: str | None, thresholds: str = "",
                  config: str = "", at: float | None = None) -> int:
        with self.transaction() as conn:
            return conn.execute(
                "INSERT INTO runs (started_at, detector, model_version, thresholds, config) "
                "VALUES (?, ?, ?, ?, ?)",
                (time.time() if at is None else at, detector, model_version, thresholds,
                 config)).lastrowid

    def end_run(self, run_id: int, at: float | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET ended_at = ? WHERE id = ?",
                         (time.time() if at is None else at, run_id))

    @staticmethod
    def insert_parcel(conn: sqlite3.Connection, row: ParcelRow) -> int:
        """Insert ``row`` inside the caller's transaction; returns its id. An alert gets an
        audit row in the same transaction."""
        top = max(row.boxes, key=lambda b: b.score, default=None)
        classes = "".join(sorted({f",{b.cls}," for b in row.boxes}))
        parcel_id = conn.execute(
            "INSERT INTO parcels (run_id, seq, tracking, label_read, scanned_at, decided_at, "
            "latency_ms, action, reason, classes, top_class, top_score, weapon, review, width, "
            "height, images, image_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?)",
            (row.run_id, row.seq, row.tracking, int(row.label_read), row.scanned_at,
             row.decided_at, row.latency_ms, row.action, row.reason, classes,
             top.cls if top else None, top.score if top else None, int(row.weapon),
             "pending" if row.alert else "none", row.width, row.height, row.images,
             row.image_bytes)).lastrowid
        conn.executemany(
            "INSERT INTO detections (parcel_id, class, score, x1, y1, x2, y2) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(parcel_id, b.cls, b.score, *b.xyxy) for b in row.boxes])
        if row.alert:
            conn.execute("INSERT INTO audit (at, user, event, parcel_id, detail) "
                         "VALUES (?, 'system', 'alert', ?, ?)",
                         (row.decided_at, parcel_id,
                          json.dumps({"action": row.action, "reason": row.reason,
                                      "tracking": row.tracking})))
        return parcel_id

    def add_parcels(self, rows: Sequence[ParcelRow]) -> list[int]:
        with self.transaction() as conn:
            return [self.insert_parcel(conn, row) for row in rows]

    def set_health(self, component: str, ok: bool, detail: dict, at: float | None = None
                   ) -> None:
        with self.transaction() as conn:
            self.upsert_health(conn, component, ok, detail, at)

    @staticmethod
    def upsert_health(conn: sqlite3.Connection, component: str, ok: bool, detail: dict,
                      at: float | None = None) -> None:
        conn.execute("INSERT INTO health (component, ok, detail, at) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT (component) DO UPDATE SET ok = excluded.ok, "
                     "detail = excluded.detail, at = excluded.at",
                     (component, int(ok), json.dumps(detail),
                      time.time() if at is None else at))

    # --- what operators do --------------------------------------------------------------------

    def decide(self, parcel_id: int, user: str, kind: str, note: str = "",
               at: float | None = None) -> int:
        """Record an operator's ``kind`` (confirm, clear or note) on a parcel, with its audit
        row; confirm and clear set the parcel's review. Returns the decision's id."""
        if kind not in DECISIONS:
            raise StoreError(f"a decision is one of {', '.join(DECISIONS)}, not {kind!r}")
        if kind == "note" and not note.strip():
            raise StoreError("a note needs some text")
        at = time.time() if at is None else at
        with self.transaction() as conn:
            found = conn.execute("SELECT review FROM parcels WHERE id = ?",
                                 (parcel_id,)).fetchone()
            if found is None:
                raise StoreError(f"no parcel {parcel_id}")
            if kind != "note" and found["review"] == "none":
                raise StoreError(f"parcel {parcel_id} raised no alert: there is nothing to "
                                 f"{kind}")
            decision = conn.execute(
                "INSERT INTO decisions (parcel_id, user, kind, note, at) VALUES (?, ?, ?, ?, ?)",
                (parcel_id, user, kind, note, at)).lastrowid
            if DECISIONS[kind]:
                conn.execute("UPDATE parcels SET review = ? WHERE id = ?",
                             (DECISIONS[kind], parcel_id))
            conn.execute("INSERT INTO audit (at, user, event, parcel_id, detail) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (at, user, kind, parcel_id, json.dumps({"note": note})))
            return decision

    def audit(self, user: str, event: str, parcel_id: int | None = None,
              detail: dict | None = None, at: float | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO audit (at, user, event, parcel_id, detail) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (time.time() if at is None else at, user, event, parcel_id,
                          json.dumps(detail or {})))

    # --- users and sessions -------------------------------------------------------------------

    def add_user(self, name: str, role: str, password_hash: str, language: str = "en",
                 by: str = "system") -> None:
        if role not in ROLES:
            raise StoreError(f"a role is one of {', '.join(ROLES)}, not {role!r}")
        if not name or not name.isprintable() or len(name) > 64 or name.strip() != name:
            raise StoreError(f"a user name is 1 to 64 printable characters without spaces "
                             f"around them, not {name!r}")
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise StoreError(f"user {name!r} exists already")
            conn.execute("INSERT INTO users (name, role, password_hash, language, created_at) "
                         "VALUES (?, ?, ?, ?, ?)", (name, role, password_hash, language,
                                                    time.time()))
            conn.execute("INSERT INTO audit (at, user, event, detail) VALUES (?, ?, ?, ?)",
                         (time.time(), by, "user-added",
                          json.dumps({"name": name, "role": role})))

    def user(self, name: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM users WHERE name = ? AND disabled = 0",
                                 (name,)).fetchone()

    def users(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT name, role, language, created_at, disabled FROM users "
                                 "ORDER BY name").fetchall()

    def set_password_hash(self, name: str, password_hash: str) -> None:
        """A new password ends the user's sessions: whoever knew the old one is logged out."""
        with self.transaction() as conn:
            conn.execute("UPDATE users SET password_hash = ? WHERE name = ?",
                         (password_hash, name))
            conn.execute("DELETE FROM sessions WHERE user = ?", (name,))

    def set_language(self, name: str, language: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE users SET language = ? WHERE name = ?", (language, name))

    # --- what the dashboard reads -------------------------------------------------------------

    PARCEL_COLUMNS = ("id, run_id, seq, tracking, label_read, scanned_at, decided_at, latency_ms, "
                      "action, reason, classes, top_class, top_score, weapon, review, lane, "
                      "sent_at, outcome, outcome_at, width, height, images")

    def alerts(self, limit: int = 50, after_id: int = 0, review: str | None = None
               ) -> list[sqlite3.Row]:
        """Alerts newest first; with ``after_id`` only those stored after that parcel id."""
        where = "review != 'none' AND id > ?"
        args: list = [after_id]
        if review is not None:
            where += " AND review = ?"
            args.append(review)
        return self.conn.execute(f"SELECT {self.PARCEL_COLUMNS} FROM parcels "
                                 f"INDEXED BY parcels_alerts WHERE {where} "
                                 "ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()

    def parcel(self, parcel_id: int) -> sqlite3.Row | None:
        return self.conn.execute(f"SELECT {self.PARCEL_COLUMNS} FROM parcels WHERE id = ?",
                                 (parcel_id,)).fetchone()

    def boxes(self, parcel_id: int) -> list[Box]:
        rows = self.conn.execute("SELECT class, score, x1, y1, x2, y2 FROM detections "
                                 "WHERE parcel_id = ? ORDER BY score DESC", (parcel_id,))
        return [Box(r[0], r[1], (r[2], r[3], r[4], r[5])) for r in rows]

    def decisions(self, parcel_id: int) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT id, user, kind, note, at FROM decisions "
                                 "WHERE parcel_id = ? ORDER BY id", (parcel_id,)).fetchall()

    def audit_log(self, limit: int = 200, parcel_id: int | None = None,
                  before_id: int | None = None) -> list[sqlite3.Row]:
        clause, args = _where(("parcel_id = ?", parcel_id), ("id < ?", before_id))
        return self.conn.execute(f"SELECT id, at, user, event, parcel_id, detail FROM audit "
                                 f"{clause}ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()

    def search(self, tracking: str | None = None, since: float | None = None,
               until: float | None = None, cls: str | None = None,
               review: str | None = None, action: str | None = None, limit: int = 100,
               before_id: int | None = None) -> list[sqlite3.Row]:
        """Parcels newest first, narrowed by any of: tracking number (a prefix, case
        ignored), decision time range, a detected class, review state, verdict action."""
        prefix = tracking.upper() if tracking else None
        clause, args = _where(
            # A range over the index of upper(tracking): a prefix search at any store size.
            ("upper(tracking) >= ?", prefix),
            ("upper(tracking) < ?", prefix + "\U0010ffff" if prefix else None),
            ("decided_at >= ?", since), ("decided_at < ?", until),
            ("instr(classes, ?) > 0", f",{cls}," if cls else None),
            ("review = ?", review or None), ("action = ?", action or None),
            ("id < ?", before_id))
        return self.conn.execute(f"SELECT {self.PARCEL_COLUMNS} FROM parcels {clause}"
                                 "ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()

    def stats(self, since: float, until: float) -> dict:
        """Figures over parcels decided in [since, until): parcels per hour, alarm rate,
        confirm rate (of the alerts reviewed), decision latency p50 / p99, by verdict."""
        conn = self.conn
        row = conn.execute(
            "SELECT count(*) AS parcels, sum(review != 'none') AS alerts, "
            "sum(review = 'confirmed') AS confirmed, sum(review = 'cleared') AS cleared, "
            "sum(review = 'pending') AS pending, sum(action = 'divert') AS diverted, "
            "sum(action = 'uninspected') AS uninspected, "
            "sum(outcome IS NOT NULL AND outcome != 'acked') AS commands_lost "
            "FROM parcels WHERE decided_at >= ? AND decided_at < ?", (since, until)).fetchone()
        figures = {k: row[k] or 0 for k in row.keys()}
        n = figures["parcels"]
        hours = max(until - since, 1e-9) / 3600
        reviewed = figures["confirmed"] + figures["cleared"]
        figures.update(
            parcels_per_hour=n / hours,
            alarm_rate=figures["alerts"] / n if n else None,
            confirm_rate=figures["confirmed"] / reviewed if reviewed else None,
            latency_p50_ms=self._latency_percentile(since, until, n, 50),
            latency_p99_ms=self._latency_percentile(since, until, n, 99))
        return figures

    def _latency_percentile(self, since: float, until: float, n: int, q: float
                            ) -> float | None:
        """The ``q``-th percentile of the decision latency, interpolated between the two
        ranks around it (fetched by offset: the store never hands a day's rows to Python)."""
        if not n:
            return None
        rank = (n - 1) * q / 100
        pair = [r[0] for r in self.conn.execute(
            "SELECT latency_ms FROM parcels WHERE decided_at >= ? AND decided_at < ? "
            "ORDER BY latency_ms LIMIT 2 OFFSET ?", (since, until, int(rank)))]
        if len(pair) == 1:
            return pair[0]
        return pair[0] + (pair[1] - pair[0]) * (rank - int(rank))

    def hourly(self, since: float, until: float) -> list[sqlite3.Row]:
        """Parcels and alerts per hour (UTC hour start, seconds) in [since, until)."""
        return self.conn.execute(
            "SELECT CAST(decided_at / 3600 AS INTEGER) * 3600 AS hour, count(*) AS parcels, "
            "sum(review != 'none') AS alerts FROM parcels WHERE decided_at >= ? AND "
            "decided_at < ? GROUP BY hour ORDER BY hour", (since, until)).fetchall()

    def health(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT component, ok, detail, at FROM health "
                                 "ORDER BY component").fetchall()

    def last_parcel_id(self) -> int:
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM parcels").fetchone()[0]

    def image_path(self, parcel_id: int, name: str) -> Path | None:
        """The file ``name`` of a parcel's images, or None. Only names the writer writes are
        served, and only inside the store's image folder: a request cannot walk out of it."""
        from edge.store.images import IMAGE_FILES
        if name not in IMAGE_FILES:
            return None
        row = self.conn.execute("SELECT images FROM parcels WHERE id = ?",
                                (parcel_id,)).fetchone()
        if row is None or not row["images"]:
            return None
        root = self.images.resolve()
        path = (root / row["images"] / name).resolve()
        if root not in path.parents or not path.is_file():
            return None
        return path


def _where(*conditions: tuple[str, object]) -> tuple[str, list]:
    """The WHERE clause (with a trailing space, or "") and its arguments, of the conditions
    ``(sql with one ?, value)`` whose value is not None."""
    kept = [(sql, value) for sql, value in conditions if value is not None]
    if not kept:
        return "", []
    return "WHERE " + " AND ".join(sql for sql, _ in kept) + " ", [v for _, v in kept]
