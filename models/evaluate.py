"""Accuracy of a detector on labelled images, through the runtime's own pre- and post-processing.

The torch network, the FP32 ONNX file and the INT8 ONNX file are all judged by one function
(``evaluate``), so their figures differ only by what the models themselves do.

    python -m models.evaluate runs/parcelnet/parcelnet.fp32.onnx \
        models/parcelnet/parcelnet.int8.onnx --data data/sim/test/shard-*
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edge.detect.model import Detector, ModelInfo
from edge.detect.verify import Verifier, candidates
from edge.tools.evaluate import report
from edge.tools.metrics import Accumulator, json_ready
from edge.types import Detections

EVAL_THRESHOLD = 0.01   # keep low-score boxes: AP integrates over all operating points


def evaluate(raw: Callable[[np.ndarray], np.ndarray], info: ModelInfo, records: Sequence,
             progress: bool = False,
             transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
             verifier: Verifier | None = None) -> dict:
    """Per-class AP50, mAP50 and mAP50:95 of ``raw`` on ``records`` (models.data.Record);
    ``transform`` changes each image first (its generator is seeded by the image's place in
    ``records``, so every model sees the same changed images); ``verifier`` rescores the
    candidates as the runtime does."""
    return evaluate_groups(raw, info, records, None, progress, transform, verifier)["all"]


def evaluate_groups(raw: Callable[[np.ndarray], np.ndarray], info: ModelInfo,
                    records: Sequence, group: Callable[[object], str] | None,
                    progress: bool = False,
                    transform: Callable[[np.ndarray, np.random.Generator], np.ndarray]
                    | None = None, verifier: Verifier | None = None) -> dict[str, dict]:
    """``evaluate`` over every record ("all") and over each ``group(record)`` of them, every
    image detected once."""
    from models.data import read_bgr
    accs: dict[str, Accumulator] = {"all": Accumulator()}
    items = records
    if progress:
        from tqdm import tqdm
        items = tqdm(records, desc="eval", leave=False)
    for k, r in enumerate(items):
        image = read_bgr(r.path)
        if transform is not None:
            image = transform(image, np.random.default_rng(k))
        found = candidates(raw, info, image, verifier, EVAL_THRESHOLD)
        truth = Detections(r.boxes, np.ones(len(r.boxes), np.float32), r.classes)
        accs["all"].add(found, truth)
        if group is not None:
            accs.setdefault(group(r), Accumulator()).add(found, truth)
    return {name: acc.summary(list(info.classes)) for name, acc in accs.items()}


def onnx_raw(path: Path, threads: int = 2) -> tuple[Callable, ModelInfo]:
    det = Detector(path, threads=threads)
    return det.raw, det.info


def main(argv: Sequence[str] | None = None) -> int:
    from models.data import coco_records
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="ONNX files to compare")
    parser.add_argument("--data", type=Path, nargs="+", required=True,
                        help="folders with annotations.json (COCO), e.g. data/sim-test")
    parser.add_argument("--by-folder", action="store_true",
                        help="also score each image folder on its own (the simulator writes "
                             "colour/ and grey/: how much does the rendering matter?)")
    parser.add_argument("--verifier", type=Path, nargs="*", default=[],
                        help="second-look files (edge.detect.verify): each model is also "
                             "scored with each of them rescoring its candidates")
    parser.add_argument("--pairs", action="store_true",
                        help="score each model alone and with its own verifier (the first "
                             "--verifier with the first model, and so on) rather than with "
                             "every verifier")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.pairs and len(args.verifier) != len(args.models):
        parser.error(f"--pairs needs one --verifier per model: {len(args.models)} models, "
                     f"{len(args.verifier)} verifiers")
    records = [r for folder in args.data for r in coco_records(folder)]
    folder = (lambda r: r.path.parent.name) if args.by_folder else None
    results: dict[str, dict] = {}
    verifiers = [Verifier(p) for p in args.verifier]
    for k, path in enumerate(args.models):
        raw, info = onnx_raw(path)
        for verifier in [None, *(verifiers[k:k + 1] if args.pairs else verifiers)]:
            label = str(path) if verifier is None else f"{path} + {verifier.path}"
            scores = evaluate_groups(raw, info, records, folder, progress=not args.json,
                                     verifier=verifier)
            for name in sorted(scores, key=lambda n: n != "all"):
                results.setdefault(name, {})[label] = scores[name]
    if args.json:
        print(json.dumps(json_ready(results if args.by_folder else results["all"])))
        return 0
    if args.by_folder:
        print("\n\n".join(f"{name}: {report(scores)}" for name, scores in results.items()))
    else:
        print(report(results["all"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
