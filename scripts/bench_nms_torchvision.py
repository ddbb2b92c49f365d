"""`edge bench post` with torchvision's batched_nms as a third peer, on the same sets in one run.

Offline only (needs torch and torchvision installed; the runtime never imports them):

    python scripts/bench_nms_torchvision.py

torchvision must be the build made for the installed torch: a torchvision wheel built for a
CUDA torch, beside the CPU-only torch of the training extras, fails with "operator
torchvision::nms does not exist". A separate virtual environment holding a matching pair,
numpy and opencv-python-headless runs it on the CPU either way, with this repository on
PYTHONPATH.
"""

from __future__ import annotations

import json

import torch
from torchvision.ops import batched_nms as tv_batched_nms

from edge.tools.bench_detect import bench_nms


def torchvision_nms(xyxy, scores, classes, iou):
    return tv_batched_nms(torch.from_numpy(xyxy), torch.from_numpy(scores),
                          torch.from_numpy(classes), iou).numpy()


if __name__ == "__main__":
    torch.set_num_threads(2)
    print(json.dumps(bench_nms(extra_peers={"torchvision": torchvision_nms}), indent=1))
