"""Tiny ``module:factory`` targets for test_factories.py, named as ``tests.train.factories:<fn>``.

Datasets: 40 images of 16 x 16 x 3 in 3 classes, 30 for training and 10 for testing, in each
accepted form, and one broken variant per refusal. Models: a small conv net, and broken ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CLASSES = ("cat", "dog", "owl")
NOT_CALLABLE = 42


def pixels(n: int = 40, size: int = 16, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N x H x W x C images and int64 labels 0, 1, 2, 0, ..."""
    x = np.random.default_rng(n).integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    return x, np.arange(n, dtype=np.int64) % 3


def _dataset(x: Any, y: Any, classes: Any = CLASSES) -> tuple[Any, Any, Any]:
    return (x[:30], y[:30]), (x[30:], y[30:]), classes


def _nchw_unit(x: np.ndarray, dtype: type) -> np.ndarray:
    """An 8-bit image divided by 255 in ``dtype``, channels first: on the 8-bit grid."""
    return x.transpose(0, 3, 1, 2).astype(dtype) / dtype(255)


# -- accepted forms ------------------------------------------------------------------------------
def uint8_nhwc() -> tuple[Any, Any, Any]:
    return _dataset(*pixels())


def float32_tensors_on_grid() -> tuple[Any, Any, Any]:
    """torchvision's ToTensor form: float32 N x C x H x W tensors, uint8 / 255."""
    x, y = pixels()
    return _dataset(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(y))


def float64_on_grid() -> tuple[Any, Any, Any]:
    x, y = pixels()
    return _dataset(_nchw_unit(x, np.float64), y.astype(np.int32))


def float16_on_grid() -> tuple[Any, Any, Any]:
    x, y = pixels()
    return _dataset(_nchw_unit(x, np.float16), y)


def float_off_grid() -> tuple[Any, Any, Any]:
    x = np.random.default_rng(1).random((40, 3, 16, 16))  # float64, not k / 255
    return _dataset(x, pixels()[1])


def off_grid_test_split() -> tuple[Any, Any, Any]:
    """Train on the 8-bit grid, test off it: both splits become float32."""
    x, y = pixels()
    unit = _nchw_unit(x, np.float32)
    unit[35, 0, 0, 0] = 0.5  # 127.5 / 255
    return _dataset(unit, y)


def small_grey() -> tuple[Any, Any, Any]:
    return _dataset(*pixels(size=8, channels=1))


def with_data_dir(data_dir: Path) -> tuple[Any, Any, Any]:
    """Names its first class after ``data_dir``, so a test can see what it received."""
    return _dataset(*pixels(), classes=(f"from {data_dir}", "dog", "owl"))


# -- refused -------------------------------------------------------------------------------------
def returns_a_pair() -> Any:
    return _dataset(*pixels())[:2]


def train_not_a_pair() -> Any:
    (x, _), test, classes = uint8_nhwc()
    return (x,), test, classes


def x_a_list() -> Any:
    x, y = pixels()
    return _dataset(x.tolist(), y)


def x_channels_first_uint8() -> Any:
    x, y = pixels()
    return _dataset(x.transpose(0, 3, 1, 2), y)


def x_grey_without_channel_axis() -> Any:
    x, y = pixels(channels=1)
    return _dataset(x[..., 0], y)


def x_float_channels_last() -> Any:
    x, y = pixels()
    return _dataset(x / 255.0, y)


def x_float_above_one() -> Any:
    x, y = pixels()
    return _dataset(_nchw_unit(x, np.float32) * 2, y)


def x_float_nan() -> Any:
    x, y = pixels()
    unit = _nchw_unit(x, np.float32)
    unit[3, 1, 2, 2] = np.nan
    return _dataset(unit, y)


def x_int32() -> Any:
    x, y = pixels()
    return _dataset(x.astype(np.int32), y)


def y_float() -> Any:
    x, y = pixels()
    return _dataset(x, y.astype(np.float32))


def y_one_short() -> Any:
    x, y = pixels()
    return (x[:30], y[:29]), (x[30:], y[30:]), CLASSES


def labels_out_of_range() -> Any:
    x, y = pixels()
    return _dataset(x, y + 1)


def negative_labels() -> Any:
    x, y = pixels()
    return _dataset(x, y - 1)


def classes_a_string() -> Any:
    return _dataset(*pixels(), classes="cat dog owl")


def classes_repeated() -> Any:
    return _dataset(*pixels(), classes=("cat", "cat", "owl"))


def classes_not_str() -> Any:
    return _dataset(*pixels(), classes=(0, 1, 2))


def sizes_differ() -> Any:
    x, y = pixels()
    small, _ = pixels(size=8)
    return (x[:30], y[:30]), (small[30:], y[30:]), CLASSES


def empty_test() -> Any:
    x, y = pixels()
    return (x, y), (x[:0], y[:0]), CLASSES


def needs_an_argument(size: int) -> Any:
    return _dataset(*pixels(size=size))


def raises_inside() -> Any:
    raise RuntimeError("the factory's own bug")


# -- models --------------------------------------------------------------------------------------
def tiny_net(num_classes: int, in_channels: int) -> nn.Module:
    """Conv, global average pool, linear: takes any image size."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, num_classes),
    )


def not_a_module(num_classes: int, in_channels: int) -> Any:
    return "a network"


def net_without_in_channels(num_classes: int) -> nn.Module:
    return tiny_net(num_classes, 3)


# -- networks that do not fit the data (test_network_check.py) ---------------------------------
def three_logits(num_classes: int, in_channels: int) -> nn.Module:
    """Ignores ``num_classes``: three outputs whatever the data."""
    return tiny_net(3, in_channels)


def for_cifar(num_classes: int, in_channels: int) -> nn.Module:
    """Expects 3 x 32 x 32 images: a flat linear layer of 3072 inputs."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))


def lazy(num_classes: int, in_channels: int) -> nn.Module:
    """Lazy layers: their shapes are known only after a first forward."""
    return nn.Sequential(nn.LazyConv2d(4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.LazyLinear(num_classes))  # fmt: skip
