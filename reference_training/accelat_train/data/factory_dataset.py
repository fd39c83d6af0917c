"""A user's dataset as ``module:factory``: import it, call it, check and convert what it returns.

The factory is called as ``factory()``, or ``factory(data_dir=Path(...))`` when a ``data_dir`` is
given, and returns ``(train, test, classes)``: ``train`` and ``test`` are ``(x, y)`` pairs of
numpy arrays or torch tensors, ``classes`` the class names (2 or more, distinct strings). ``x`` is

- uint8 N x H x W x C (numpy/PIL layout), kept as it is; or
- floating N x C x H x W (torch layout) in [0, 1]: stored as uint8 when it is an 8-bit image
  divided by 255 (within the float type's rounding: nothing is lost), else as float32 in [0, 1]
  (both splits then float32), which the loader and the evaluation use as they are.

``y`` holds integer labels in ``[0, len(classes))``. Each problem is a ``ValueError`` naming the
dataset and what was wrong.

Example (``mypkg/tiny.py``)::

    def make():
        x = np.random.default_rng(0).integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
        y = np.arange(100) % 2
        return (x[:80], y[:80]), (x[80:], y[80:]), ("cat", "dog")

    train, test, classes = read_factory_dataset("mypkg.tiny:make")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accelat_train.data.arrays import ArrayData, Decoded
from accelat_train.factory import call_factory

#: Channel counts that make a layout recognisable (grey, RGB, RGBA).
_USUAL_CHANNELS = (1, 3, 4)


def read_factory_dataset(name: str, data_dir: str | Path | None = None) -> Decoded:
    """(train, test, classes) from the factory ``name`` (``"module:factory"``), checked."""
    kwargs = {} if data_dir is None else {"data_dir": Path(data_dir).expanduser()}
    result = call_factory("dataset", name, **kwargs)
    if not (isinstance(result, tuple | list) and len(result) == 3):
        raise ValueError(
            f"dataset {name!r}: must return (train, test, classes), got {_describe(result)}"
        )
    classes = classes_of(name, result[2])
    train = check_pair(name, "train", result[0], len(classes))
    test = check_pair(name, "test", result[1], len(classes))
    if train.x.shape[1:] != test.x.shape[1:]:
        raise ValueError(
            f"dataset {name!r}: train images are H x W x C = {train.x.shape[1:]} but test "
            f"images are {test.x.shape[1:]}"
        )
    if train.x.dtype != test.x.dtype:  # one split is off the 8-bit grid: both stay float32
        train, test = (ArrayData(_to_float(d.x), d.y) for d in (train, test))
    return train, test, classes


def classes_of(name: str, classes: Any) -> tuple[str, ...]:
    """``classes`` checked: 2 or more distinct strings (an error names dataset ``name``)."""
    if (
        not isinstance(classes, Sequence)
        or isinstance(classes, str)
        or len(classes) < 2
        or not all(isinstance(c, str) for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise ValueError(
            f"dataset {name!r}: classes must be a sequence of 2 or more distinct str, "
            f"got {_describe(classes)}"
        )
    return tuple(classes)


def check_pair(name: str, which: str, part: Any, num_classes: int) -> ArrayData:
    """One ``(x, y)`` pair as ``ArrayData``, every check naming ``dataset name``'s ``which``."""
    where = f"dataset {name!r}: {which}"
    if not (isinstance(part, tuple | list) and len(part) == 2):
        raise ValueError(f"{where} must be a pair (x, y), got {_describe(part)}")
    x, y = (_as_numpy(f"{where} {v}", a) for v, a in (("x", part[0]), ("y", part[1])))
    if len(x) == 0:
        raise ValueError(f"{where} holds no images")
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),):
        raise ValueError(
            f"{where} y must be {len(x)} integer labels (one per image), got {y.dtype} {y.shape}"
        )
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"{where} labels must lie in [0, {num_classes}) for {num_classes} classes, "
            f"got {y.min()}..{y.max()}"
        )
    return ArrayData(_pixels(where, x), y.astype(np.int64))


def _pixels(where: str, x: np.ndarray) -> np.ndarray:
    """uint8 N x H x W x C as it is; floating N x C x H x W as uint8 NHWC if lossless, else
    float32 NHWC."""
    forms = "uint8 N x H x W x C or floating N x C x H x W in [0, 1]"
    if x.ndim != 4 or not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
        hint = " (grey images need a channel axis: x[..., None])" if x.ndim == 3 else ""
        raise ValueError(f"{where} x must be {forms}, got {x.dtype} {x.shape}{hint}")
    if x.dtype == np.uint8:
        if x.shape[1] in _USUAL_CHANNELS and x.shape[3] not in _USUAL_CHANNELS:
            raise ValueError(f"{where} x looks channels-first {x.shape}; uint8 x must be NHWC")
        return x
    if x.shape[3] in _USUAL_CHANNELS and x.shape[1] not in _USUAL_CHANNELS:
        raise ValueError(f"{where} x looks channels-last {x.shape}; floating x must be NCHW")
    lo, hi = float(x.min()), float(x.max())
    if not (lo >= 0.0 and hi <= 1.0):  # NaN fails both
        raise ValueError(f"{where} x must lie in [0, 1], got values in [{lo}, {hi}]")
    x = x.transpose(0, 2, 3, 1)
    levels = np.rint(x * 255.0)
    # An 8-bit image divided by 255 lies within its float type's rounding of q / 255; training
    # computes in float32, so nothing finer than float32's rounding counts as lost either.
    tolerance = max(np.finfo(x.dtype).eps, np.finfo(np.float32).eps)
    if np.abs(levels / 255.0 - x).max() <= tolerance:
        return np.ascontiguousarray(levels.astype(np.uint8))
    return np.ascontiguousarray(x, dtype=np.float32)


def _to_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x


def _as_numpy(what: str, value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    raise ValueError(f"{what} must be a numpy array or torch tensor, got {_describe(value)}")


def _describe(value: Any) -> str:
    """A short description for an error: type and shape, length or a clipped repr."""
    kind = type(value).__name__
    if isinstance(value, np.ndarray | torch.Tensor):
        return f"{kind} {value.dtype} {tuple(value.shape)}"
    if isinstance(value, tuple | list) and not all(isinstance(v, str | int | float) for v in value):
        return f"{kind} of {len(value)} items"
    text = repr(value)
    return f"{kind} {text[:60]}{'...' if len(text) > 60 else ''}"
