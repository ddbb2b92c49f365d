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
         per_hour: float = 2000.0) -> None:
    """``parcels`` records at ``per_hour`` up to now, ``alert_share`` of them alerts with one
    to three boxes; a tenth of the alerts confirmed, half cleared."""
    rng = random.Random(seed)
    start = time.time() - parcels * 3600.0 / per_hour
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
    """The dashboard's pages and API served by uvicorn on a local port, fetched over a real
    socket as a logged-in operator."""
    import http.cookiejar
    import re
    import socket
    import threading
    import urllib.parse
    import urllib.request

    import uvicorn

    from edge.dashboard.app import create_app
    from edge.dashboard.auth import hash_password

    store.add_user("bench", "operator", hash_password("bench-password"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(store), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.02)
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        form = browser.open(f"{base}/login").read().decode()
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        login = urllib.parse.urlencode({"name": "bench", "password": "bench-password",
                                        "csrf": token.group(1) if token else ""}).encode()
        browser.open(f"{base}/login", data=login).read()
        figures = {}
        for path in ("/", "/api/alerts", "/history", "/history?tracking=VN12", "/stats"):
            with browser.open(base + path) as answer:
                if answer.status != 200 or answer.url.split("?")[0].endswith("/login"):
                    raise RuntimeError(f"GET {path} did not serve the page ({answer.url})")
            figures[f"GET {path}"] = timed(lambda p=path: browser.open(base + p).read(),
                                           repeats=10 if path == "/stats" else 30)
        return figures
    finally:
        server.should_exit = True
        thread.join(10)
