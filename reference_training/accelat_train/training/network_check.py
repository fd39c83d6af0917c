"""The network against one batch of its data, before anything trains or reads its parameters.

:func:`check_network` runs the model on two validation images (eval mode, no gradients, so
BatchNorm statistics and the weights stay as they were) and checks that it returns a tensor of
one logit per class for each image, and that every label of the data is one of its classes.
Whatever does not fit is one ``ValueError`` naming the model, what was expected and what came
back, instead of an ``IndexError`` in the loss or a shape error deep in the first epoch.

The same dry pass gives lazy layers (``nn.LazyLinear``, ``nn.LazyConv2d``) their shapes, so the
lr finder, the optimizer and the weight average see real parameters; run right after the model
is seeded, it draws their initial weights from the run's seed.

>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))
>>> check_network(net, torch.rand(2, 1, 8, 8), classes=3, name="net")
>>> net[1].weight.shape
torch.Size([3, 64])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from accelat_train.data import ArrayData, Splits

#: Images in the dry pass: two, so that a network which drops the batch axis shows.
BATCH = 2


def check_splits_network(model: nn.Module, splits: Splits, device: torch.device, name: str) -> None:
    """:func:`check_network` on ``splits``' first validation (else test) images, after
    checking that every label of its in-memory splits is one of its classes."""
    classes = len(splits.classes)
    labels = _label_span(splits)
    if labels is not None and not 0 <= labels[0] <= labels[1] < classes:
        raise ValueError(
            f"the labels span {labels[0]} to {labels[1]}, but the data have {classes} classes "
            f"(labels 0 to {classes - 1})"
        )
    sample = splits.val if len(splits.val) else splits.test
    x = torch.from_numpy(sample.x[:BATCH]).permute(0, 3, 1, 2)
    x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    check_network(model, x.to(device), classes=classes, name=name, labels=labels)


def check_network(
    model: nn.Module,
    x: torch.Tensor,
    *,
    classes: int,
    name: str,
    labels: Sequence[int] | None = None,
) -> None:
    """Run ``model`` on the images ``x`` (N x C x H x W in [0, 1]) in eval mode without
    gradients, and raise ``ValueError`` naming ``name`` unless it returns a floating tensor of
    shape ``[N, classes]`` and has a trainable parameter. ``labels``, the smallest and largest
    label of the data, are named in the error when the outputs do not match."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # a user's network raises what it raises: name it, keep the cause
        shape = list(x.shape)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"{name} cannot take the data's images: a batch of shape {shape} (N x C x H x W, "
            f"float32 in [0, 1]) fails with {type(exc).__name__}: {first[:300]}"
        ) from exc
    finally:
        model.train(was_training)
    expected = [len(x), classes]
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"{name} returns a {type(out).__name__}, expected a tensor of logits of shape "
            f"{expected}"
        )
    if list(out.shape) != expected:
        span = "" if labels is None else f", labels {labels[0]} to {labels[1]}"
        raise ValueError(
            f"{name} does not fit the data: for a batch of {len(x)} images it returns outputs "
            f"of shape {list(out.shape)}, expected {expected} (one logit per class; the data "
            f"have {classes} classes{span})"
        )
    if not out.is_floating_point():
        raise ValueError(f"{name} returns {out.dtype} outputs, expected floating-point logits")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"{name} has no trainable parameters: there is nothing to train")


def check_materialized(model: nn.Module, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if a parameter or buffer lives on the ``meta``
    device (shapes without data: a model built under ``torch.device("meta")``)."""
    meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if meta:
        raise ValueError(
            f"{name} has no data in {', '.join(meta[:3])}{' ...' if len(meta) > 3 else ''}: "
            "its tensors are on the meta device; build it on a real one (or to_empty() it and "
            "initialise the weights) first"
        )


def _label_span(splits: Splits) -> tuple[int, int] | None:
    """The smallest and largest label of the in-memory splits (None if there are none)."""
    parts = (splits.train, splits.val, splits.test)
    ys = [p.y for p in parts if isinstance(p, ArrayData) and len(p)]
    if not ys:
        return None
    y = np.concatenate(ys)
    return int(y.min()), int(y.max())
