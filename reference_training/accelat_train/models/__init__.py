"""Image classifiers for CIFAR-sized (32x32) and digits-sized (8x8) inputs.

Every network from :func:`build_model` expects NORMALISED input; wrap it in
:class:`NormalizedModel` to train and attack on [0, 1] pixels. Besides the registered networks
(:data:`accelat_train.registry.MODELS`, each in its own module here), ``build_model`` takes a
user's own network as ``"module:factory"``.

>>> net = build_model("resnet20", num_classes=10)
>>> model = NormalizedModel(net, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
>>> model(torch.rand(2, 3, 32, 32)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from accelat_train.deprecations import moved
from accelat_train.factory import FACTORY_SYNTAX, call_factory, is_factory_name
from accelat_train.registry import MODELS

from .resnet import init_weights


def build_model(
    name: str, num_classes: int, in_channels: int = 3, image_size: int = 32
) -> nn.Module:
    """The network ``name`` for ``in_channels`` x ``image_size``^2 input.

    ``name`` is a registered network, or ``"module:factory"``: a user's network, built as
    ``factory(num_classes=..., in_channels=...)``, which must return an ``nn.Module`` that, like
    the built-ins, takes NORMALISED input (:class:`NormalizedModel` wraps it) and handles
    ``image_size``. The built-ins end in global average pooling, so any ``image_size`` >= 8
    works; ``image_size`` is checked, not used to size layers.

    >>> build_model("wrn28-10", num_classes=10).fc.out_features
    10
    >>> build_model("torch.nn:Identity", num_classes=10)  # a factory taking keywords it ignores
    Identity()
    """
    if name not in MODELS and not is_factory_name(name):
        raise ValueError(f"model must be one of {tuple(MODELS)} or {FACTORY_SYNTAX}, got {name!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    if name in MODELS:
        built: nn.Module = MODELS[name].load()(num_classes, in_channels)
        return built
    net = call_factory("model", name, num_classes=num_classes, in_channels=in_channels)
    if not isinstance(net, nn.Module):
        raise ValueError(f"model {name!r}: returned a {type(net).__name__}, not a torch.nn.Module")
    return net


class NormalizedModel(nn.Module):
    """``net((x - mean) / std)`` for ``x`` in [0, 1]: attacks and training see raw pixels.

    ``mean`` and ``std`` are per-channel buffers of shape C x 1 x 1 (saved in the state dict,
    moved with ``.to()``); ``net`` is the raw network, as Foolbox's preprocessing wants it.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or len(mean) == 0:
            raise ValueError(f"mean and std must be equal-length channel lists, got {mean}, {std}")
        if any(not s > 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


__all__ = ["NormalizedModel", "build_model", "init_weights"]


#: A name that became the model records' (deprecated since 0.2, gone in 0.4).
__getattr__ = moved(__name__, {
    "MODEL_NAMES": (lambda: tuple(MODELS), "tuple(accelat_train.registry.MODELS)"),
})  # fmt: skip
