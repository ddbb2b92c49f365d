"""Benchmarks that print measured figures (never timed assertions)."""

from __future__ import annotations

import time

from edge.config import SimScannerConfig
from edge.scanner.sim import SimScanner


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
