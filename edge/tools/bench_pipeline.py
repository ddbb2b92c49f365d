"""Benchmarks that print measured figures (never timed assertions)."""

from __future__ import annotations

import time

from edge.config import SimScannerConfig
from simulator.scanner import SimScanner


def bench_sim(config: SimScannerConfig, parcels: int = 20) -> dict:
    """Render the simulated stream as fast as possible until ``parcels`` have passed the scan
    plane; compare with the rate at which the simulated scanner itself delivers them."""
    scanner = SimScanner(config.model_copy(update={"realtime": False}))
    scanner.read(1)  # place the first parcels before the clock starts
    start_line = scanner.line
    t0 = time.perf_counter()
    while True:
        scanner.read()
        passed = [p for p in scanner.placed
                  if p.end_mm(config.pitch_mm) < scanner.belt_mm([scanner.line])[0]]
        if passed and passed[-1].seq >= parcels:
            break
    wall_s = time.perf_counter() - t0
    lines = scanner.line - start_line
    belt_s = lines / config.line_rate_hz
    return {
        "parcels": parcels,
        "lines": lines,
        "wall_s": round(wall_s, 3),
        "belt_s": round(belt_s, 3),
        "parcels_per_s": round(parcels / wall_s, 3),
        "scanner_parcels_per_s": round(parcels / belt_s, 3),
        "realtime_ratio": round(belt_s / wall_s, 2),
        "belt_speed_mm_s": config.belt_speed_mm_s,
        "n_pixels": config.n_pixels,
        "pitch_mm": config.pitch_mm,
    }


def bench_pipeline(config_path=None, speeds=(500, 1000, 1500, 2000, 2500),
                   seconds: float = 12.0, env: dict | None = None,
                   stores: tuple[bool, ...] = (True,), repeats: int = 1) -> dict:
    """Run ``edge run`` (real-time scanner, simulated PLC on a pseudo-terminal) at each belt
    speed, each in its own process so its peak memory is its own. A speed is sustained when
    every parcel got a real verdict in time (none uninspected) and no command was lost. Reports
    parcels per second of scanning, the decision latency (last scan line to divert frame
    written, or to the verdict for a clear parcel) and each process's peak memory.

    ``stores``: run each speed with the parcel store on (True, in a scratch folder) and / or
    off (False). With both, the runs alternate ``repeats`` times, so that a machine growing
    busier or quieter weighs on both alike, and ``store_cost`` gives, per speed, the median
    p99 latency with the store over the median without."""
    rows, detector = [], None
    for speed in speeds:
        for _ in range(repeats):
            for store in stores:
                summary, usage = _run_once(config_path, speed, seconds, store, env)
                detector = summary["detector"]
                rows.append(_row(speed, store, summary, usage))
    sustained = [r["belt_speed_mm_s"] for r in rows if r["sustained"]]
    result = {"detector": detector, "seconds_per_speed": seconds, "rows": rows,
              "highest_sustained_mm_s": max(sustained, default=None),
              "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)}
    if set(stores) == {True, False}:
        result["store_cost"] = {speed: _p99_ratio([r for r in rows
                                                   if r["belt_speed_mm_s"] == speed])
                                for speed in speeds}
    return result


def _run_once(config_path, speed: float, seconds: float, store: bool, env: dict | None):
    """(summary, resource usage) of one ``edge run`` in its own process."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "edge.cli",
               *(["--config", str(config_path)] if config_path else []),
               "run", "--duration", str(seconds), "--summary", str(out), "--no-dashboard"]
        run_env = {**os.environ, **(env or {}), "EDGE_SCANNER__BELT_SPEED_MM_S": str(speed),
                   "EDGE_SCANNER__REALTIME": "true", "EDGE_STORE__ENABLED": str(store).lower(),
                   "EDGE_STORE__DIR": str(Path(tmp) / "store")}
        proc = subprocess.Popen(cmd, env=run_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        if status != 0 or not out.exists():
            raise RuntimeError(f"edge run at {speed} mm/s failed: "
                               f"{proc.stderr.read().decode()[-2000:]}")
        return json.loads(out.read_text()), usage


def _row(speed: float, store: bool, s: dict, usage) -> dict:
    return {"belt_speed_mm_s": speed, "store": store, "parcels": s["parcels"],
            "parcels_per_s": round(s["parcels"] / s["capture_s"], 2),
            "uninspected": s["uninspected"], "missed_threats": s["missed_threats"],
            "lost_commands": s["lost_commands"],
            "latency_p50_ms": s["latency_ms"]["p50"],
            "latency_p99_ms": s["latency_ms"]["p99"],
            "detect_p50_ms": s["stages"]["detect_ms"]["p50"],
            "capture_p50_ms": s["stages"]["capture_block_ms"]["p50"],
            "queue_max": s["stages"]["queue_max"],
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            # Keeping up is about time: every parcel got a real verdict before its deadline
            # and every command arrived. Missed threats are the detector's accuracy, reported
            # beside it.
            "sustained": s["uninspected"] == 0 and s["undecided"] == 0
            and s["lost_commands"] == 0}


def _p99_ratio(rows: list[dict]) -> dict:
    """Median decision latency p99 with the store and without, and their ratio."""
    import statistics
    on = statistics.median(r["latency_p99_ms"] for r in rows if r["store"])
    off = statistics.median(r["latency_p99_ms"] for r in rows if not r["store"])
    return {"p99_ms_with_store": on, "p99_ms_without": off, "ratio": round(on / off, 3)}
