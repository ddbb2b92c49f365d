"""Training against the INT8 file's weight grid (quantisation-aware fine-tuning).

The export rounds each convolution's weights per output channel: dense ones to
-NARROW..NARROW steps of their channel's largest weight (``models.graph.narrowed``: CPUs
without VNNI saturate 8-bit weights), grouped (depthwise) ones to -127..127. A network
fine-tuned with its forward and backward passes run on weights rounded that way, and its
updates applied to the float weights (straight-through), learns weights that lose less when
the export rounds them.

Batch norm scales each output channel by one factor, and a per-channel symmetric grid
scales with its channel, so rounding before the export folds batch norm in rounds alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from models.graph import NARROW

DEPTHWISE_LEVELS = 127


def levels_of(conv: torch.nn.Conv2d) -> int:
    """Steps on each side of zero that the export gives ``conv``'s weights (``narrowed``
    narrows only those of group 1)."""
    return NARROW if conv.groups == 1 else DEPTHWISE_LEVELS


def rounded(weight: torch.Tensor, levels: int) -> torch.Tensor:
    """``weight`` [out, ...] rounded per output channel to ``levels`` steps of its largest
    magnitude on each side of zero."""
    top = weight.detach().abs().flatten(1).amax(1).clamp_min(1e-12)
    step = (top / levels).view(-1, *([1] * (weight.dim() - 1)))
    return torch.clamp(torch.round(weight / step), -levels, levels) * step


@contextmanager
def on_export_grid(model: torch.nn.Module) -> Iterator[None]:
    """Within: every convolution of ``model`` holds its weights rounded as the export rounds
    them (run the forward and backward passes here); after: the float weights again, with
    the gradients the rounded ones got."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    kept = [conv.weight.detach().clone() for conv in convs]
    with torch.no_grad():
        for conv in convs:
            conv.weight.copy_(rounded(conv.weight, levels_of(conv)))
    try:
        yield
    finally:
        with torch.no_grad():
            for conv, weight in zip(convs, kept, strict=True):
                conv.weight.copy_(weight)
