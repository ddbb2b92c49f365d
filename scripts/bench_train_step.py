"""Training steps with Lite0's frozen layers folded (batch norms into their convolutions, as
training runs them) beside the package's own layers, in one run, on two threads.

    python scripts/bench_train_step.py [--rounds 8]

Three steps of `make train`: the detector's first stage (16 crops of 256 px), its second (16
of 320 px) and the second look (64 crops of 128 px). Each step is forward, loss and backward
(the optimiser's step is the same either way), on fixed random pixels and boxes. Rounds
alternate the two ways so that a busy moment of the machine falls on both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.loss import cell_grid, detection_loss  # noqa: E402
from models.net import STRIDES, ParcelNet  # noqa: E402
from models.verify import CROP, network  # noqa: E402


def detector_step(crop: int, batch: int = 16):
    torch.manual_seed(0)
    model = ParcelNet(8, backbone="lite0").to(memory_format=torch.channels_last).train()
    images = torch.rand(batch, 3, crop, crop).to(memory_format=torch.channels_last)
    boxes = torch.tensor([[crop * 0.2, crop * 0.3, crop * 0.5, crop * 0.45]]).repeat(batch, 1, 1)
    classes = torch.zeros(batch, 1, dtype=torch.long)
    valid = torch.ones(batch, 1, dtype=torch.bool)
    centres, strides = cell_grid((crop, crop), STRIDES, torch.device("cpu"))

    def step():
        loss, _ = detection_loss(model(images), boxes, classes, valid, centres, strides)
        model.zero_grad(set_to_none=True)
        loss.backward()
    return model.lite0, step


def verifier_step(batch: int = 64):
    torch.manual_seed(0)
    model = network(8).train()
    crops = torch.randint(0, 256, (batch, 3, CROP, CROP), dtype=torch.uint8)
    labels = torch.randint(0, 9, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(model(crops), labels)
        model.zero_grad(set_to_none=True)
        loss.backward()
    return model.backbone, step


def timed(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="timed steps per round and way")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    print("| step | package's layers: median ms | folded: median ms | ratio |\n|---|---|---|---|")
    for name, (backbone, step) in (("detector, 16 x 256 px", detector_step(256)),
                                   ("detector, 16 x 320 px", detector_step(320)),
                                   ("second look, 64 x 128 px", verifier_step())):
        times = {False: [], True: []}
        for _ in range(args.rounds):
            for fold in (False, True):
                backbone.fold_frozen = fold
                step()   # a first step after switching warms the allocator
                times[fold] += [timed(step) for _ in range(args.steps)]
        plain, folded = (1000 * float(np.median(times[f])) for f in (False, True))
        print(f"| {name} | {plain:.0f} | {folded:.0f} | {folded / plain:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
