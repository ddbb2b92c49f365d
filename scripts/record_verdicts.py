"""Re-record tests/data/verdicts_seed7.json: the verdicts the live loop gives on seed 7.

    .venv/bin/python scripts/record_verdicts.py          # on a quiet machine

The run is the one ``tests/test_pipeline.py::test_the_shipped_model_gives_the_recorded_verdicts``
makes (the shipped model, a simulated hub, 9 s of belt at real time) and the rows are the ones
it compares: parcel sequence, id, length in lines, action and simulated truth. Re-record only
when the verdicts change on purpose (a new simulator draw, a segmentation or model change), and
say why in the commit.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.harness import seed7_verdicts  # noqa: E402

OUT = ROOT / "tests" / "data" / "verdicts_seed7.json"


def main() -> None:
    with tempfile.TemporaryDirectory() as calibration:
        seen, summary = seed7_verdicts(Path(calibration))
    if summary["uninspected"]:
        sys.exit(f"{summary['uninspected']} parcels uninspected: the machine is too busy")
    OUT.write_text(json.dumps(seen, indent=1))
    print(f"{len(seen)} verdicts -> {OUT.relative_to(ROOT)}")
    for row in seen:
        print(f"  {row['seq']:>3} {row['id']} {row['lines']:>5} {row['action']:<7} {row['truth']}")


if __name__ == "__main__":
    main()
