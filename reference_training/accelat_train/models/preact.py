"""PreAct-ResNet-18 (He et al. 2016, "Identity mappings"), the usual fast-AT model (Wong et al.).

Stem conv3x3 64, four stages of two pre-activation blocks (64/128/256/512), BN-ReLU, global
average pool, linear; 11.2M parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import init_weights


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3, shortcut taken after the first BN-ReLU when projecting."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """A stem conv3x3, stages of pre-activation blocks (``blocks[s]`` blocks of ``widths[s]``
    channels, the first of each stage after the first striding by 2), BN-ReLU, global average
    pool, linear. ``widths`` default to ``stem * 2**s``."""

    def __init__(
        self,
        blocks: tuple[int, ...],
        num_classes: int,
        in_channels: int,
        *,
        stem: int = 64,
        widths: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        cin = stem
        for stage, count in enumerate(blocks):
            width = widths[stage] if widths is not None else stem * 2**stage
            for i in range(count):
                layers.append(PreActBlock(cin, width, 2 if stage > 0 and i == 0 else 1))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def preact_resnet18(num_classes: int, in_channels: int = 3) -> PreActResNet:
    return PreActResNet((2, 2, 2, 2), num_classes, in_channels)
