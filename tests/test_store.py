"""The parcel store on a real SQLite file: migrations, the append-only audit log, operator
decisions, search, retention, safe picture paths, and the writer thread."""

import os
import sqlite3
import threading
import time

import numpy as np
import pytest

from edge.store import Box, ParcelRow, Retention, SchemaError, Store, StoreError, StoreWriter, prune
from edge.store.schema import MIGRATIONS
from edge.store.writer import NICE
from edge.types import Action, Detections, Parcel, Photo, Verdict

CLASSES = ["gun", "knife", "explosive"]


def row(run: int, seq: int, action="clear", boxes=(), at=1_000_000.0, tracking=None, **kw):
    return ParcelRow(run, seq, tracking or f"EDG{seq:09d}", True, at - 0.2, at, 200.0, action,
                     "", 120, 64, list(boxes), **kw)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store")
    yield s
    s.close()


def test_a_new_store_is_migrated_and_reopening_changes_nothing(tmp_path):
    first = Store(tmp_path)
    assert first.schema_version == len(MIGRATIONS)
    run = first.begin_run("model", "v1")
    first.add_parcels([row(run, 1)])
    first.close()
    again = Store(tmp_path)
    assert again.schema_version == len(MIGRATIONS) and again.last_parcel_id() == 1
    assert again.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    Store(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "edge.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="upgrade"):
        Store(tmp_path)


def test_the_audit_log_is_append_only(store):
    store.audit("ann", "login")
    for statement in ("UPDATE audit SET user = 'eve'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.conn.execute(statement)
    assert [r["user"] for r in store.audit_log()] == ["ann"]


def test_an_alert_is_pending_until_an_operator_decides(store):
    run = store.begin_run("model", "v1")
    gun = Box("gun", 0.9, (1, 2, 30, 40))
    alert, clear = store.add_parcels([row(run, 1, "divert", [gun], weapon=True), row(run, 2)])
    assert [r["id"] for r in store.alerts()] == [alert]
    assert store.parcel(alert)["review"] == "pending" and store.parcel(clear)["review"] == "none"
    store.decide(alert, "ann", "note", "bag opened at desk 2")
    store.decide(alert, "ann", "confirm")
    assert store.parcel(alert)["review"] == "confirmed"
    assert [(d["user"], d["kind"]) for d in store.decisions(alert)] == [("ann", "note"),
                                                                        ("ann", "confirm")]
    events = [r["event"] for r in store.audit_log(parcel_id=alert)]
    assert events == ["confirm", "note", "alert"]
    with pytest.raises(StoreError, match="nothing to clear"):
        store.decide(clear, "ann", "clear")
    with pytest.raises(StoreError, match="needs some text"):
        store.decide(alert, "ann", "note", "  ")
    with pytest.raises(StoreError, match="no parcel"):
        store.decide(999, "ann", "confirm")
    with pytest.raises(StoreError, match="one of"):
        store.decide(alert, "ann", "delete")
    # A refused decision left nothing behind: not in the decisions, not in the audit log.
    assert len(store.decisions(alert)) == 2 and len(store.audit_log(parcel_id=alert)) == 3


def test_an_uninspected_parcel_is_an_alert_and_so_is_a_shown_detection_on_a_clear_one(store):
    run = store.begin_run("model", "v1")
    ids = store.add_parcels([row(run, 1, "uninspected"),
                             row(run, 2, "clear", [Box("knife", 0.4, (0, 0, 5, 5))]),
                             row(run, 3, "clear")])
    assert [r["id"] for r in store.alerts()] == [ids[1], ids[0]]
    assert [r["id"] for r in store.alerts(after_id=ids[0])] == [ids[1]]


def test_search_by_tracking_prefix_class_time_and_review(store):
    run = store.begin_run("model", "v1")
    ids = store.add_parcels([
        row(run, 1, "divert", [Box("gun", 0.9, (0, 0, 9, 9))], at=100.0, tracking="VN1_A%"),
        row(run, 2, "divert", [Box("knife", 0.8, (0, 0, 9, 9))], at=200.0, tracking="VN1XA"),
        row(run, 3, at=300.0, tracking="US77")])
    store.decide(ids[1], "ann", "clear")
    assert [r["id"] for r in store.search(tracking="vn1")] == [ids[1], ids[0]]
    # % and _ are letters of a tracking number here, not wildcards.
    assert [r["id"] for r in store.search(tracking="VN1_")] == [ids[0]]
    assert [r["id"] for r in store.search(cls="knife")] == [ids[1]]
    assert [r["id"] for r in store.search(since=150, until=300)] == [ids[1]]
    assert [r["id"] for r in store.search(review="cleared")] == [ids[1]]
    assert [r["id"] for r in store.search(action="clear")] == [ids[2]]
    assert [r["id"] for r in store.search(limit=1, before_id=ids[2])] == [ids[1]]


def test_stats_over_a_time_range(store):
    run = store.begin_run("model", "v1")
    rows = [row(run, k, "divert" if k % 4 == 0 else "clear", at=3600.0 + k) for k in range(1, 21)]
    for k, r in enumerate(rows):
        r.latency_ms = float(k + 1)
    ids = store.add_parcels(rows)
    store.decide(ids[3], "ann", "confirm")
    store.decide(ids[7], "ann", "clear")
    figures = store.stats(3600.0, 7200.0)
    assert figures["parcels"] == 20 and figures["alerts"] == 5 and figures["diverted"] == 5
    assert figures["alarm_rate"] == pytest.approx(0.25)
    assert figures["confirm_rate"] == pytest.approx(0.5)
    assert figures["parcels_per_hour"] == pytest.approx(20.0)
    assert figures["latency_p50_ms"] == pytest.approx(10.5)
    assert figures["latency_p99_ms"] == pytest.approx(19.81)
    assert [(h["hour"], h["parcels"]) for h in store.hourly(0, 10_000)] == [(3600, 20)]


def write_pictures(store: Store, parcel_id: int, size: int) -> None:
    folder = f"day/{parcel_id}"
    (store.images / folder).mkdir(parents=True)
    (store.images / folder / "xray.jpg").write_bytes(b"x" * size)
    with store.transaction() as conn:
        conn.execute("UPDATE parcels SET images = ?, image_bytes = ? WHERE id = ?",
                     (folder, size, parcel_id))


def test_retention_removes_old_records_and_then_the_oldest_pictures_but_keeps_evidence(store):
    run = store.begin_run("model", "v1")
    day = 86400.0
    now = 100 * day
    gun = Box("gun", .9, (0, 0, 1, 1))
    ids = store.add_parcels([row(run, 1, "divert", [gun], at=now - 40 * day),
                             row(run, 2, at=now - 40 * day),
                             row(run, 3, at=now - 3 * day), row(run, 4, at=now - 2 * day),
                             row(run, 5, at=now - day)])
    for parcel_id in ids:
        write_pictures(store, parcel_id, 1000)
    store.decide(ids[0], "ann", "confirm")
    removed = prune(store, Retention(keep_days=30, max_picture_bytes=2500), now=now)
    # The second parcel is too old: its record goes, and its pictures. Then pictures go oldest
    # first until at most 2,500 bytes are left; the confirmed threat keeps its record and its
    # pictures whatever their age.
    assert (removed.parcels, removed.pictures, removed.bytes) == (1, 3, 3000)
    assert store.parcel(ids[1]) is None and not (store.images / f"day/{ids[1]}").exists()
    assert store.image_path(ids[0], "xray.jpg") is not None
    for gone in ids[2:4]:
        assert store.parcel(gone)["images"] is None
        assert not (store.images / f"day/{gone}").exists()
    assert store.image_path(ids[4], "xray.jpg") is not None


def test_picture_paths_cannot_leave_the_image_folder(store, tmp_path):
    run = store.begin_run("model", "v1")
    [parcel_id] = store.add_parcels([row(run, 1)])
    write_pictures(store, parcel_id, 10)
    assert store.image_path(parcel_id, "xray.jpg") is not None
    for name in ("../edge.db", "/etc/passwd", "xray.jpg/../../edge.db", "photo.jpg", ""):
        assert store.image_path(parcel_id, name) is None
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "xray.jpg").write_bytes(b"s")
    with store.transaction() as conn:   # a tampered row may not lead out of the folder either
        conn.execute("UPDATE parcels SET images = ? WHERE id = ?", ("../../secret", parcel_id))
    assert store.image_path(parcel_id, "xray.jpg") is None


def parcel(seq: int, width: int = 160, photo: bool = True) -> Parcel:
    rng = np.random.default_rng(seq)
    hi = rng.uniform(0, 2, (96, width)).astype(np.float32)
    t = 10.0 + np.arange(width) / 500
    image = np.full((48, 64, 3), 200, np.uint8)
    return Parcel(f"EDG{seq:09d}", seq, hi, hi * 1.8, np.arange(width) * 4, t,
                  photo=Photo(image, 9.0, 0) if photo else None)


def verdict(p: Parcel, action: Action, boxes: list[tuple[int, float]]) -> Verdict:
    found = Detections(np.array([[5, 6, 50, 60]] * len(boxes), np.float32),
                       np.array([s for _, s in boxes], np.float32),
                       np.array([c for c, _ in boxes], np.int64))
    return Verdict(p.id, action, found, reason="test")


def test_the_writer_stores_records_pictures_and_command_outcomes(store):
    writer = StoreWriter(store, store.begin_run("model", "v1"), CLASSES, ["gun", "knife"],
                         health=lambda: {"plc": (True, {"last_heard_s": 0.01})},
                         log=lambda m: None).start()
    a, b = parcel(1), parcel(2, photo=False)
    writer.settled(a, verdict(a, Action.DIVERT, [(0, 0.91), (2, 0.5)]), settled_at=12.0)
    writer.commanded(1, 1, "gun, explosive")
    writer.sent(1, 12.01)
    writer.settled(b, verdict(b, Action.CLEAR, []), settled_at=12.5)
    writer.commanded(2, 0, "")
    writer.done(1, "acked")
    writer.done(2, "expired")
    writer.close()
    first, second = store.search()[::-1]
    assert (first["tracking"], first["action"], first["review"], first["weapon"]) == \
        (a.id, "divert", "pending", 1)
    assert (first["lane"], first["outcome"], first["reason"]) == (1, "acked", "gun, explosive")
    assert first["latency_ms"] == pytest.approx((12.0 - a.t[-1]) * 1000, abs=0.01)
    assert first["sent_at"] - first["decided_at"] == pytest.approx(0.01, abs=1e-6)
    assert [(b.cls, b.score) for b in store.boxes(first["id"])] == [("gun", 0.91),
                                                                    ("explosive", 0.5)]
    assert (second["review"], second["lane"], second["outcome"]) == ("none", 0, "expired")
    for name in ("xray.jpg", "grey.jpg", "material.png", "photo.jpg"):
        assert store.image_path(first["id"], name) is not None, name
    assert store.image_path(second["id"], "photo.jpg") is None
    assert store.image_path(second["id"], "xray.jpg") is not None
    health = {h["component"]: h["ok"] for h in store.health()}
    assert health == {"plc": 1, "store": 1}
    assert store.conn.execute("SELECT ended_at FROM runs").fetchone()[0] is not None


def test_a_writer_behind_keeps_every_record_but_not_every_picture(store):
    writer = StoreWriter(store, store.begin_run("model", "v1"), CLASSES, [], max_pending=2,
                         log=lambda m: None)   # not started: everything waits in the queue
    for seq in range(1, 6):
        p = parcel(seq)
        writer.settled(p, verdict(p, Action.DIVERT, [(1, 0.7)]), settled_at=12.0)
    writer.start().close()
    rows = store.search()
    assert len(rows) == 5 and writer.stats.pictures_skipped == 3
    assert sum(r["images"] is not None for r in rows) == 2


def test_a_failed_commit_is_retried_and_loses_nothing(tmp_path):
    store = Store(tmp_path)
    logged = []
    writer = StoreWriter(store, store.begin_run("model", "v1"), CLASSES, [], log=logged.append)
    blocker = store.connect()
    blocker.execute("PRAGMA busy_timeout = 0")
    blocker.execute("BEGIN EXCLUSIVE")   # another writer holds the database
    original = store.connect

    def impatient():
        conn = original()
        conn.execute("PRAGMA busy_timeout = 50")
        return conn
    store.connect = impatient
    writer.start()
    p = parcel(1)
    writer.settled(p, verdict(p, Action.DIVERT, [(0, 0.9)]), settled_at=12.0)
    deadline = time.monotonic() + 10
    while writer.stats.failures == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.stats.failures >= 1 and any("commit failed" in m for m in logged)
    blocker.execute("ROLLBACK")
    writer.close()
    assert [r["tracking"] for r in Store(tmp_path).search()] == [p.id]


def test_the_live_loop_is_not_blocked_by_a_slow_writer(store, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr("edge.store.writer.write_images",
                        lambda *a, **k: release.wait(5) and 0)
    writer = StoreWriter(store, store.begin_run("model", "v1"), CLASSES, [],
                         log=lambda m: None).start()
    started = time.monotonic()
    for seq in range(1, 41):
        p = parcel(seq)
        writer.settled(p, verdict(p, Action.CLEAR, []), settled_at=12.0)
    handed_over = time.monotonic() - started
    release.set()
    writer.close()
    assert handed_over < 1.0 and len(store.search()) == 40


def test_the_writer_thread_yields_the_cores_to_the_live_loop(store):
    writer = StoreWriter(store, store.begin_run("model", "v1"), CLASSES, [],
                         log=lambda m: None).start()
    try:
        deadline = time.monotonic() + 5
        ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        while time.monotonic() < deadline:
            theirs = os.getpriority(os.PRIO_PROCESS, writer._thread.native_id)
            if theirs != ours:
                break
            time.sleep(0.01)
        assert theirs == min(ours + NICE, 19)
    finally:
        writer.close()


def test_a_new_password_ends_the_users_sessions(store):
    store.add_user("ann", "operator", "hash-1")
    store.add_user("bob", "operator", "hash-2")
    with store.transaction() as conn:
        for user in ("ann", "bob"):
            conn.execute("INSERT INTO sessions (token_hash, user, csrf, created_at, expires_at) "
                         "VALUES (?, ?, 'c', 0, 1e12)", (f"t-{user}", user))
    store.set_password_hash("ann", "hash-3")
    left = [r[0] for r in store.conn.execute("SELECT user FROM sessions")]
    assert left == ["bob"] and store.user("ann")["password_hash"] == "hash-3"
