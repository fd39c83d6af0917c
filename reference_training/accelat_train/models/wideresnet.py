"""Wide residual networks (Zagoruyko & Komodakis 2016), as adversarial training uses them.

The variant of Madry et al., TRADES and RobustBench: a 3x3 stem conv to 16 channels, three
groups of ``(depth - 4) / 6`` pre-activation wide basic blocks (BN-ReLU-conv3x3-BN-ReLU-conv3x3,
a 1x1 projection shortcut where the shape changes) with ``16k / 32k / 64k`` channels and strides
1 / 2 / 2, then BN-ReLU, global average pooling and a linear layer; dropout 0.

- ``wrn28_10``: depth 28, widen factor 10 (160/320/640): 36,479,194 parameters for 10 classes;
- ``wrn34_10``: depth 34, widen factor 10: 46,160,474 parameters for 10 classes.

>>> import torch
>>> net = wrn28_10(num_classes=10)
>>> net(torch.randn(1, 3, 32, 32)).shape
torch.Size([1, 10])
"""

from __future__ import annotations

from torch import nn

from .preact import PreActResNet


class WideResNet(PreActResNet):
    """WRN-``depth``-``widen``: a :class:`PreActResNet` with a 16-channel stem and three groups
    of ``(depth - 4) / 6`` blocks of ``16k / 32k / 64k`` channels (the WRN block with dropout 0)."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3) -> None:
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        if not isinstance(widen, int) or widen < 1:
            raise ValueError(f"widen must be a positive int, got {widen!r}")
        per_group = (depth - 4) // 6
        widths = (16 * widen, 32 * widen, 64 * widen)
        super().__init__((per_group,) * 3, num_classes, in_channels, stem=16, widths=widths)
        nn.init.zeros_(self.fc.bias)  # as RobustBench's WideResNet


def wrn28_10(num_classes: int, in_channels: int = 3) -> WideResNet:
    return WideResNet(28, 10, num_classes, in_channels)


def wrn34_10(num_classes: int, in_channels: int = 3) -> WideResNet:
    return WideResNet(34, 10, num_classes, in_channels)
