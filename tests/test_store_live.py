"""The store beside the live loop: every parcel of a run is on record with its command's fate,
and an alert on record survives the process being killed at any moment (kill -9)."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.config import EdgeConfig
from edge.store import Store
from simulator.harness import SimulatedHub

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def test_every_parcel_of_a_run_is_on_record_with_its_command_outcome(tmp_path):
    config = EdgeConfig(scanner={"seed": 5, "belt_speed_mm_s": 1500, "threat_share": 0.6},
                        plc={"type": "sim", "diverter_distance_mm": 4000},
                        pipeline={"detector": "ground-truth"},
                        faults={"at_s": 1.0, "corrupt": 0.3}, calibration_dir=tmp_path)
    hub = SimulatedHub(config, log=lambda m: None, show=lambda p, v: None)
    store = Store(tmp_path / "store")
    hub.keep_records(store)
    summary = hub.run(6.0)
    entries = {e.seq: e for e in hub.ledger.snapshot()}
    rows = {r["seq"]: r for r in Store(tmp_path / "store").search(limit=1000)}
    assert summary["parcels"] >= 4 and set(rows) == set(entries)
    for seq, entry in entries.items():
        row = rows[seq]
        assert (row["tracking"], row["action"]) == (entry.parcel_id, entry.verdict.action)
        assert (row["lane"], row["outcome"]) == (entry.lane, entry.outcome), seq
        assert (row["review"] == "pending") == (entry.verdict.action != "clear"
                                                or len(entry.verdict.detections) > 0)
        assert row["images"] is not None
    health = {h["component"] for h in Store(tmp_path / "store").health()}
    assert health == {"scanner", "detector", "failsafe", "plc", "store"}


def alerts_on_record(db: Path) -> dict[int, tuple]:
    """The alerts a reader sees committed now (a fresh read-only connection each time)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("SELECT id, tracking, action, reason FROM parcels "
                                "WHERE review != 'none'").fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError:   # not created yet
        return {}
    return {r[0]: r[1:] for r in rows}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_alert_on_record_survives_kill_9_at_any_moment(tmp_path, seed):
    store_dir = tmp_path / "store"
    env = {**os.environ, "EDGE_STORE__DIR": str(store_dir), "EDGE_DASHBOARD__ENABLED": "false",
           "EDGE_PIPELINE__DETECTOR": "ground-truth", "EDGE_SCANNER__SEED": str(seed),
           "EDGE_SCANNER__BELT_SPEED_MM_S": "1500", "EDGE_SCANNER__THREAT_SHARE": "0.7",
           "EDGE_PLC__DIVERTER_DISTANCE_MM": "4000", "EDGE_CALIBRATION_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--duration", "60"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    seen: dict[int, tuple] = {}
    try:
        deadline = time.monotonic() + 90
        while len(seen) < 3 and time.monotonic() < deadline and proc.poll() is None:
            seen.update(alerts_on_record(store_dir / "edge.db"))
            time.sleep(0.05)
        assert len(seen) >= 3, "the run put no alerts on record"
        # Then at a moment of the seed's choosing, mid-write or between writes.
        until = time.monotonic() + random.Random(seed).uniform(0.0, 1.5)
        while time.monotonic() < until:
            seen.update(alerts_on_record(store_dir / "edge.db"))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = Store(store_dir)   # reopens (and recovers the WAL) as the next run would
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = alerts_on_record(store_dir / "edge.db")
    assert {k: after.get(k) for k in seen} == seen
    run = store.begin_run("model", "v1")   # and the next run goes on over it
    assert run == 2
