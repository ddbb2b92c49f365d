"""The store's tables, as a list of migrations. ``PRAGMA user_version`` holds how many have
been applied; opening a store applies the rest in one transaction each, and refuses a store
written by a newer version of the software (it would not know that store's tables).

Times are wall-clock seconds since the epoch (UTC), as operators and the authorities read
them. The audit log is append-only: triggers refuse any UPDATE or DELETE of it.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        ended_at REAL,
        detector TEXT NOT NULL,
        model_version TEXT,
        thresholds TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE parcels (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        seq INTEGER NOT NULL,
        tracking TEXT NOT NULL,
        label_read INTEGER NOT NULL,
        scanned_at REAL NOT NULL,
        decided_at REAL NOT NULL,
        latency_ms REAL NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('clear', 'divert', 'uninspected')),
        reason TEXT NOT NULL DEFAULT '',
        classes TEXT NOT NULL DEFAULT '',
        top_class TEXT,
        top_score REAL,
        weapon INTEGER NOT NULL DEFAULT 0,
        review TEXT NOT NULL CHECK (review IN ('none', 'pending', 'confirmed', 'cleared')),
        lane INTEGER,
        sent_at REAL,
        outcome TEXT,
        outcome_at REAL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        images TEXT,
        image_bytes INTEGER NOT NULL DEFAULT 0,
        UNIQUE (run_id, seq)
    );
    CREATE INDEX parcels_alerts ON parcels (id) WHERE review != 'none';
    CREATE INDEX parcels_tracking ON parcels (upper(tracking));
    CREATE INDEX parcels_decided ON parcels (decided_at, review, action, outcome, latency_ms);
    CREATE TABLE detections (
        parcel_id INTEGER NOT NULL REFERENCES parcels(id) ON DELETE CASCADE,
        class TEXT NOT NULL,
        score REAL NOT NULL,
        x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL
    );
    CREATE INDEX detections_parcel ON detections (parcel_id);
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        parcel_id INTEGER NOT NULL REFERENCES parcels(id) ON DELETE CASCADE,
        user TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('confirm', 'clear', 'note')),
        note TEXT NOT NULL DEFAULT '',
        at REAL NOT NULL
    );
    CREATE INDEX decisions_parcel ON decisions (parcel_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        user TEXT NOT NULL,
        event TEXT NOT NULL,
        parcel_id INTEGER,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_parcel ON audit (parcel_id);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('operator', 'engineer', 'admin')),
        password_hash TEXT NOT NULL,
        language TEXT NOT NULL DEFAULT 'en',
        created_at REAL NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE health (
        component TEXT PRIMARY KEY,
        ok INTEGER NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}',
        at REAL NOT NULL
    );
    """,
)


class SchemaError(RuntimeError):
    """A store this software cannot use (written by a newer version, or not a store)."""


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations ``conn``'s database lacks, each in its own transaction; returns
    the schema version now in force. ``conn`` must be in autocommit mode."""
    have = version(conn)
    if have > len(MIGRATIONS):
        raise SchemaError(f"the store has schema version {have}; this software knows versions "
                          f"up to {len(MIGRATIONS)}: upgrade it before opening this store")
    for number in range(have + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version(conn) < number:   # another process may have migrated meanwhile
                for statement in _statements(MIGRATIONS[number - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version(conn)


def _statements(script: str) -> list[str]:
    """The statements of ``script``, a trigger's body kept whole (``executescript`` would
    commit on its own, outside the migration's transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {current.strip()[:80]}")
    return statements
