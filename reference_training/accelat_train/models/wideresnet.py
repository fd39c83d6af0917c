"""Wide residual networks (Zagoruyko & Komodakis 2016), as adversarial training uses them.

The variant of Madry et al., TRADES and RobustBench: a 3x3 stem conv to 16 channels, three
groups of ``(depth - 4) / 6`` pre-activation wide basic blocks (BN-ReLU-conv3x3-BN-ReLU-conv3x3,
a 1x1 projection shortcut where the shape changes) with ``16k / 32k / 64k`` channels and strides
1 / 2 / 2, then BN-ReLU, global average pooling and a linear layer; dropout 0.

- ``wrn28_10``: depth 28, widen factor 10 (160/320/640): 36,479,194 parameters for 10 classes;
- ``wrn34_10``: depth 34, widen factor 10: 46,160,474 parameters for 10 classes.

>>> net = wrn28_10(num_classes=10)
>>> net(torch.randn(1, 3, 32, 32)).shape
torch.Size([1, 10])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .preact import PreActBlock
from .resnet import init_weights


class WideResNet(nn.Module):
    """WRN-``depth``-``widen``: stem, three groups of wide pre-activation blocks, BN-ReLU, pool,
    linear. The block is :class:`PreActBlock` (the WRN block with dropout 0)."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        if not isinstance(widen, int) or widen < 1:
            raise ValueError(f"widen must be a positive int, got {widen!r}")
        per_group = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        cin = 16
        for group, width in enumerate((16 * widen, 32 * widen, 64 * widen)):
            for i in range(per_group):
                layers.append(PreActBlock(cin, width, 2 if group > 0 and i == 0 else 1))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self)
        nn.init.zeros_(self.fc.bias)  # as RobustBench's WideResNet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def wrn28_10(num_classes: int, in_channels: int = 3) -> WideResNet:
    return WideResNet(28, 10, num_classes, in_channels)


def wrn34_10(num_classes: int, in_channels: int = 3) -> WideResNet:
    return WideResNet(34, 10, num_classes, in_channels)
