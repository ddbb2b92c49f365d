"""ParcelNet: a compact anchor-free detector sized for two CPU cores.

Plain 3x3 convolutions with batch norm and ReLU (they fold and quantise to INT8 cleanly), a
residual backbone down to stride 32, a top-down feature pyramid, and one head shared by the
three levels. The head speaks the contract in ``models/README.md``: per cell, softplus box
sides in stride units, then raw class logits.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

STRIDES = (8, 16, 32)
BLOCKS = (1, 1, 2, 2)   # residual blocks after the stride 4, 8, 16 and 32 downsamplings


def conv(c_in: int, c_out: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.a = conv(c, c)
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(x + self.b(self.a(x)))


class LevelConv(nn.Module):
    """A 3x3 convolution shared by the pyramid levels, with a batch norm per level.

    One shared batch norm would normalise each level by its own batch statistics in training
    but by running statistics pooled over all levels at inference, which fit none of them
    (the levels' variances can differ several-fold): the exported model would not be the one
    trained."""

    def __init__(self, c: int, levels: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(levels))

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        return F.relu(self.norms[level](self.conv(x)), inplace=True)


class LevelTower(nn.ModuleList):
    """LevelConv layers in sequence, all for one level."""

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        for layer in self:
            x = layer(x, level)
        return x


def upgrade_state(state: dict) -> dict:
    """Weights saved when the head's towers had one batch norm for all levels (keys
    ``tower.<i>.0.*`` and ``tower.<i>.1.*``) in today's layout: the shared norm's parameters
    and statistics go to every level (models trained that way still load and export)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) == 4 and parts[0] in ("tower", "cls_tower") and parts[2] in ("0", "1"):
            name, block, layer, field = parts
            if layer == "0":
                out[f"{name}.{block}.conv.{field}"] = value
            else:
                for level in range(len(STRIDES)):
                    out[f"{name}.{block}.norms.{level}.{field}"] = value
        else:
            out[key] = value
    return out


def stage(c_in: int, c_out: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(conv(c_in, c_out, 2), *(Residual(c_out) for _ in range(blocks)))


BACKBONES = ("parcelnet", "lite0")


class ParcelNet(nn.Module):
    """The detector. ``backbone`` "parcelnet" is our own residual backbone, trained from
    random weights; "lite0" is EfficientNet-Lite0 with ImageNet weights (``models/lite0.py``,
    its stem and first ``frozen`` blocks kept as trained, and with ``frozen_statistics`` every
    batch norm's statistics). The pyramid and head are the same."""

    def __init__(self, classes: int, width: tuple[int, ...] = (16, 32, 48, 96, 160),
                 neck: int = 64, blocks: tuple[int, ...] = BLOCKS,
                 decoupled: bool = False, backbone: str = "parcelnet", frozen: int = 3,
                 pretrained: bool = True, frozen_statistics: bool = False):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; valid: {', '.join(BACKBONES)}")
        self.classes = classes
        self.lite0 = None
        if backbone == "lite0":
            from models.lite0 import Lite0Backbone
            self.lite0 = Lite0Backbone(pretrained, frozen, frozen_statistics)
            taps = Lite0Backbone.channels
        else:
            self.stem = conv(3, width[0], 2)
            self.s4 = stage(width[0], width[1], blocks[0])
            self.s8 = stage(width[1], width[2], blocks[1])
            self.s16 = stage(width[2], width[3], blocks[2])
            self.s32 = stage(width[3], width[4], blocks[3])
            taps = width[2:]
        self.lateral = nn.ModuleList(conv(c, neck, k=1) for c in taps)
        self.smooth = nn.ModuleList(conv(neck, neck) for _ in STRIDES)
        self.tower = LevelTower(LevelConv(neck, len(STRIDES)) for _ in range(2))
        # Classes and boxes from towers of their own: a shared tower lets the box loss shape
        # the features first and slows class learning from scratch (YOLOX's decoupled head).
        self.cls_tower = LevelTower(LevelConv(neck, len(STRIDES)) for _ in range(2)) \
            if decoupled else None
        self.box = nn.Conv2d(neck, 4, 1)
        self.cls = nn.Conv2d(neck, classes, 1)
        # Start rare: every cell is background at first (focal-loss prior), boxes ~ 2 strides.
        nn.init.constant_(self.cls.bias, -4.6)
        nn.init.constant_(self.box.bias, 1.5)

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.lite0 is not None:
            c8, c16, c32 = self.lite0(x)
        else:
            c8 = self.s8(self.s4(self.stem(x)))
            c16 = self.s16(c8)
            c32 = self.s32(c16)
        p32 = self.lateral[2](c32)
        p16 = self.lateral[1](c16) + F.interpolate(p32, scale_factor=2.0, mode="nearest")
        p8 = self.lateral[0](c8) + F.interpolate(p16, scale_factor=2.0, mode="nearest")
        return [s(p) for s, p in zip(self.smooth, (p8, p16, p32), strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, N, 4 + C], cells stride by stride, row-major."""
        outs = []
        for level, p in enumerate(self.levels(x)):
            t = self.tower(p, level)
            c = self.cls_tower(p, level) if self.cls_tower is not None else t
            out = torch.cat([F.softplus(self.box(t)), self.cls(c)], 1)
            outs.append(out.flatten(2).transpose(1, 2))
        return torch.cat(outs, 1)
