"""How the store and the dashboard bear a full store: ``edge bench store`` fills a scratch
store with a hub's worth of parcels (default 100,000: a few weeks of a busy line) and times the
queries the dashboard makes, at the store and over HTTP."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge.store import Box, ParcelRow, Store

CLASSES = ("gun", "gun_part", "ammunition", "knife", "blade", "shuriken", "baton", "explosive")


def fill(store: Store, parcels: int, alert_share: float = 0.1, seed: int = 0,
         start: float = 1.79e9, per_hour: float = 2000.0) -> None:
    """``parcels`` records over consecutive hours at ``per_hour``, ``alert_share`` of them
    alerts with one to three boxes; a tenth of the alerts confirmed, half cleared."""
    rng = random.Random(seed)
    run = store.begin_run("bench", "bench", at=start)
    batch: list[ParcelRow] = []
    for seq in range(1, parcels + 1):
        at = start + seq * 3600.0 / per_hour
        alert = rng.random() < alert_share
        boxes = [Box(rng.choice(CLASSES), round(rng.uniform(0.3, 0.99), 3),
                     (10.0, 20.0, 110.0, 140.0)) for _ in range(rng.randint(1, 3))] if alert else []
        batch.append(ParcelRow(run, seq, f"VN{rng.randrange(10**11):011d}", True, at - 0.3, at,
                               rng.uniform(80, 400), "divert" if alert else "clear", "", 1100,
                               768, boxes, weapon=alert))
        if len(batch) == 5000 or seq == parcels:
            ids = store.add_parcels(batch)
            with store.transaction() as conn:
                for parcel_id, row in zip(ids, batch, strict=True):
                    if row.alert and rng.random() < 0.6:
                        kind = "confirm" if rng.random() < 1 / 6 else "clear"
                        conn.execute("UPDATE parcels SET review = ? WHERE id = ?",
                                     ("confirmed" if kind == "confirm" else "cleared",
                                      parcel_id))
            batch = []


def timed(call: Callable[[], object], repeats: int = 30) -> dict:
    """p50 and worst of ``repeats`` calls, ms (one call first, not counted: a cold cache)."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def bench_store(parcels: int = 100_000, http: bool = True) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        started = time.perf_counter()
        fill(store, parcels)
        result: dict = {"parcels": parcels, "fill_s": round(time.perf_counter() - started, 1)}
        last = store.last_parcel_id()
        newest = store.conn.execute("SELECT max(decided_at) FROM parcels").fetchone()[0]
        result["store"] = {
            "alerts(50)": timed(lambda: store.alerts(50)),
            "alerts(after_id)": timed(lambda: store.alerts(50, after_id=last - 100)),
            "search(tracking prefix)": timed(lambda: store.search(tracking="VN12")),
            "search(class, review)": timed(lambda: store.search(cls="knife", review="cleared")),
            "stats(24 h)": timed(lambda: store.stats(newest - 86400, newest + 1), repeats=10),
        }
        if http:
            result["http"] = _bench_http(store)
        return result


def _bench_http(store: Store) -> dict:
    """The dashboard's pages and API over a real socket, as a logged-in operator."""
    from fastapi.testclient import TestClient

    from edge.dashboard.app import create_app
    from edge.dashboard.auth import hash_password

    store.add_user("bench", "operator", hash_password("bench-password"))
    with TestClient(create_app(store)) as client:
        answer = client.post("/login", data={"name": "bench", "password": "bench-password"},
                             follow_redirects=False)
        if answer.status_code >= 400:
            raise RuntimeError(f"could not log in to time the dashboard: {answer.status_code}")
        paths = ["/", "/api/alerts", "/history", "/history?tracking=VN12", "/stats"]
        figures = {}
        for path in paths:
            status = client.get(path).status_code
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}")
            figures[f"GET {path}"] = timed(lambda p=path: client.get(p),
                                           repeats=10 if path == "/stats" else 30)
        return figures
