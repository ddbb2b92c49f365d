"""How well does segmentation split touching parcels, and how often does it cut one parcel?

    .venv/bin/python scripts/touch_split_audit.py                  # seeds 1-40, 12,000 lines
    .venv/bin/python scripts/touch_split_audit.py --seeds 1 10 --jobs 2 --verbose

Each seed's simulated stream goes the way ``tests/test_chain.py`` sends it: the default
scanner (realtime off), a flat field of 256 lines, ``correct`` and the default ``Segmenter``,
block by block. Two passes per seed: ``touch_share`` 0 (every parcel alone on the belt, as in
test_chain) and ``--touch-share`` (default 0.5: many parcels pushed against the one before).

A *cut* is a border between two segments that follow each other without a line between (a touch
split, or a max_length chunk). A cut within ``TOL`` lines of the line where a parcel touches
the one before it (the simulator's placed parcels) splits that pair; any other cut splits one
parcel wrongly. A touching pair with no cut near its junction is missed. Only parcels that have
fully passed the scan plane, with a trailing belt, count.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.capture import capture_flatfield  # noqa: E402
from edge.config import SegmentConfig, SimScannerConfig  # noqa: E402
from edge.imaging.correct import correct  # noqa: E402
from edge.imaging.segment import Segmenter  # noqa: E402
from simulator.scanner import SimScanner  # noqa: E402

TOL = 20  # lines between a cut and the junction of a touching pair (blur, canvas borders)


def audit_seed(seed: int, touch_share: float, lines: int) -> dict:
    """Counts for one stream; ``false`` lists (parcel kind, parcel id, cut line)."""
    cfg = SimScannerConfig(realtime=False, seed=seed, touch_share=touch_share)
    sim = SimScanner(cfg)
    flat = capture_flatfield(sim, lines=256)
    seg = Segmenter(SegmentConfig(), cfg.pitch_mm)
    segments = []
    while sim.line < lines:
        block = sim.read()
        segments += seg.feed(*correct(block.hi, block.lo, flat), block.t, block.encoder)
    cuts = [a.stop_line for a, b in pairwise(segments) if a.stop_line == b.start_line]
    end = segments[-1].stop_line if segments else 0
    pitch = cfg.pitch_mm
    parcels = sorted(sim.placed, key=lambda p: p.seq)
    spans = {p.id: (sim.line_at_mm(p.start_mm), sim.line_at_mm(p.end_mm(pitch)))
             for p in parcels}
    passed = [p for p in parcels if spans[p.id][1] < min(sim.line - 200, end)]
    pairs = [(a.id, b.id) for a, b in pairwise(parcels)
             if b.start_mm - a.end_mm(pitch) < 1]
    touches = {b for _, b in pairs}  # parcels pushed against the one before
    in_pair = touches | {a for a, _ in pairs}
    every = [spans[p.id][0] for p in parcels if p.id in touches]  # a cut there is right
    junctions = [spans[p.id][0] for p in passed[1:] if p.id in touches]
    hit = [any(abs(c - j) <= TOL for c in cuts) for j in junctions]
    false = []
    for c in cuts:
        if any(abs(c - j) <= TOL for j in every):
            continue
        owner = next((p for p in parcels if spans[p.id][0] <= c <= spans[p.id][1]), None)
        false.append((owner.scene.kind if owner else "-", owner.id if owner else "-", c))
    alone = [p for p in passed if p.id not in in_pair]
    alone_ids = {p.id for p in alone}
    return {"seed": seed, "touch_share": touch_share, "parcels": len(passed),
            "alone": len(alone), "alone_kinds": Counter(p.scene.kind for p in alone),
            "pairs": len(junctions), "split": sum(hit), "missed": len(hit) - sum(hit),
            "false": false, "false_alone": [f for f in false if f[1] in alone_ids]}


def _row(name: str, rs: list[dict]) -> str:
    alone_kinds = sum((r["alone_kinds"] for r in rs), Counter())
    false = [f for r in rs for f in r["false"]]
    false_alone = Counter(f[0] for r in rs for f in r["false_alone"])
    split_parcels = len({(r["seed"], f[1]) for r in rs for f in r["false"]})
    return (f"{name:<14}{sum(r['parcels'] for r in rs):>8}{sum(r['alone'] for r in rs):>7}"
            f"{false_alone['bag']:>5}/{alone_kinds['bag']:<4}{false_alone['box']:>4}"
            f"/{alone_kinds['box']:<4}{len(false):>7}{split_parcels:>7}"
            f"{sum(r['pairs'] for r in rs):>7}{sum(r['split'] for r in rs):>7}"
            f"{sum(r['missed'] for r in rs):>7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs=2, default=(1, 40), metavar=("FIRST", "LAST"))
    ap.add_argument("--lines", type=int, default=12_000, help="lines scanned per stream")
    ap.add_argument("--touch-share", type=float, default=0.5,
                    help="touch_share of the second pass")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--verbose", action="store_true", help="list every wrong cut")
    args = ap.parse_args()
    seeds = range(args.seeds[0], args.seeds[1] + 1)
    tasks = [(s, t, args.lines) for t in (0.0, args.touch_share) for s in seeds]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(audit_seed, *zip(*tasks, strict=True)))
    print(f"seeds {seeds.start}-{seeds.stop - 1}, {args.lines} lines each; false cuts: wrong "
          f"cuts, in (parcels); bag/box: alone parcels cut wrongly / alone parcels")
    print(f"{'touch_share':<14}{'parcels':>8}{'alone':>7}{'bag':>10}{'box':>9}{'false':>7}"
          f"{'(parc)':>7}{'pairs':>7}{'split':>7}{'missed':>7}")
    for share in (0.0, args.touch_share):
        print(_row(f"{share:g}", [r for r in results if r["touch_share"] == share]))
    if args.verbose:
        for r in results:
            for kind, pid, line in r["false"]:
                print(f"  seed {r['seed']} touch_share {r['touch_share']:g}: {kind} {pid} cut "
                      f"at line {line}")


if __name__ == "__main__":
    main()
