"""The learning-rate range test on a torch model, leaving model and optimizer untouched.

:func:`lr_find` trains for up to ``num_steps`` batches while ``accelat_core.RangeTest``
raises the lr from ``start_lr`` to ``end_lr``, records ``(lr, loss)`` per batch (and the
spread of the predictions, from the logits of the batch's own forward), stops when the loss
diverges, restores the model and optimizer exactly, and returns ``accelat_core.suggest``'s
reading of the curve.

>>> result = lr_find(model, optimizer, torch.nn.functional.cross_entropy, loader)  # doctest: +SKIP
>>> result.suggestion.lr_max, result.suggestion.lr_min  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from accelat_core.finder import LRFindResult, RangeTest, RangeTestLog, cycle_batches
from accelat_torch.scheduler import LRMismatchWarning, PolicyScheduler

#: ``batch_loss(model, batch)``: the loss, or ``(loss, logits)`` to let the reading see a collapse.
BatchLoss = Callable[[nn.Module, Any], Tensor | tuple[Tensor, Tensor]]


def lr_find(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None,
    loader: Iterable[Any],
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    *,
    mode: str = "exp",
    batch_loss: BatchLoss | None = None,
    method: str = "paper",
    smooth: float = 0.98,
) -> LRFindResult:
    """Run the lr range test and return the suggested lr range.

    Each of up to ``num_steps`` batches: ``loss = batch_loss(model, batch)``, backward,
    ``optimizer.step()``, then the lr moves one step along ``RangeTest(start_lr, end_lr,
    num_steps, mode)``. ``loader`` is any iterable of batches, cycled when shorter than
    ``num_steps``. The default ``batch_loss`` unpacks ``(inputs, targets)`` and returns
    ``loss_fn(model(inputs), targets)`` on the model's device; pass your own to test on
    another loss (an adversarial one, say) and then ``loss_fn`` may be ``None``. A
    ``batch_loss`` may return ``(loss, logits)``: the logits (batch x classes) of the forward
    that gave the loss, which the default one returns too. From them each step records the
    spread of the predictions (:func:`prediction_spread`, no extra forward) and the reading
    stops at a collapse to chance (:func:`accelat_core.suggest`).

    The test stops early once the loss is NaN/inf or its debiased exponential average
    (factor ``smooth``) exceeds 4 times the best average so far (while that is positive):
    the same cut :func:`accelat_core.suggest` applies to the curve.
    Param groups keep their lr ratios (see :class:`PolicyScheduler`); the recorded lr is
    the first group's. Momentum is not touched. Afterwards every parameter, buffer and
    optimizer state tensor, the param groups' values and the model's train/eval mode are
    restored exactly.

    Args:
        model: the ``nn.Module`` to train.
        optimizer: its ``torch.optim.Optimizer``; its lr is replaced during the test only.
        loss_fn: ``loss_fn(outputs, targets)``, e.g. ``torch.nn.functional.cross_entropy``;
            may be ``None`` with ``batch_loss``.
        loader: any iterable of batches (a ``DataLoader``), cycled when shorter than
            ``num_steps``.
        start_lr: the lr of the first batch (> 0, default 1e-7).
        end_lr: the lr of the last batch (> ``start_lr``, default 10).
        num_steps: the most batches the test trains on (>= 2, default 100).
        mode: ``"exp"`` (default) or ``"linear"``: how the lr grows
            (:class:`accelat_core.RangeTest`).
        batch_loss: ``batch_loss(model, batch)``, the loss or ``(loss, logits)``, in place
            of the default ``loss_fn(model(inputs), targets)`` (default ``None``).
        method: how :func:`accelat_core.suggest` reads the curve: ``"paper"`` (default),
            ``"minimum"``, ``"steepest"`` or ``"valley"``.
        smooth: the factor of the loss's exponential moving average, in [0, 1) (default
            0.98).

    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(4, 2)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> x = torch.randn(64, 4)
    >>> loader = [(x[i : i + 8], (x[i : i + 8, 0] > 0).long()) for i in range(0, 64, 8)]
    >>> weight = model.weight.detach().clone()
    >>> loss_fn = torch.nn.functional.cross_entropy
    >>> result = lr_find(model, optimizer, loss_fn, loader, num_steps=30, method="minimum")
    >>> result.suggestion.lr_min <= result.suggestion.lr_max, len(result.lrs) <= 30
    (True, True)
    >>> torch.equal(model.weight, weight), optimizer.param_groups[0]["lr"]  # restored
    (True, 0.1)
    """
    if batch_loss is None:
        if loss_fn is None:
            raise ValueError("lr_find needs loss_fn, or a batch_loss(model, batch) -> loss")
        batch_loss = _default_batch_loss(loss_fn)
    log = RangeTestLog(smooth)
    policy = RangeTest(start_lr, end_lr, num_steps, mode)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    try:
        with warnings.catch_warnings():  # a range test sweeps far from the optimizer's lr
            warnings.simplefilter("ignore", LRMismatchWarning)
            scheduler = PolicyScheduler(optimizer, policy, momentum=False, sync_metric=False)
        model.train()
        batches = cycle_batches(loader, name="loader")
        for _ in range(num_steps):
            optimizer.zero_grad(set_to_none=True)
            out = batch_loss(model, next(batches))
            loss, logits = out if isinstance(out, tuple) else (out, None)
            if not log.add(policy.lr, float(loss.detach()), *prediction_spread(logits)):
                break
            loss.backward()
            optimizer.step()
            scheduler.step()
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        model.train(was_training)
    return log.result(method)


def prediction_spread(logits: Tensor | None) -> tuple[float | None, int | None]:
    r"""The spread of a batch's predictions (nats) and the number of classes.

    :math:`H(\bar p) - \frac{1}{N}\sum_n H(p_n)`, with :math:`p_n` the softmax of row
    :math:`n` of ``logits`` (N x C) and :math:`\bar p` their mean: the mutual information
    between an image of the batch and the predicted class, 0 when every image gets the same
    output. ``(None, None)`` unless ``logits`` is a 2-D tensor with at least 2 columns.

    >>> prediction_spread(torch.zeros(4, 10))
    (0.0, 10)
    """
    if logits is None or logits.dim() != 2 or logits.shape[1] < 2:
        return None, None
    with torch.no_grad():
        log_p = logits.detach().double().log_softmax(dim=1)
        p = log_p.exp()
        mean = p.mean(dim=0)
        mean_entropy = -torch.special.xlogy(mean, mean).sum()
        entropy = -(p * log_p).sum(dim=1).mean()
        return max(0.0, float(mean_entropy - entropy)), int(logits.shape[1])


def _default_batch_loss(loss_fn: Callable[[Tensor, Tensor], Tensor]) -> BatchLoss:
    def batch_loss(model: nn.Module, batch: Any) -> tuple[Tensor, Tensor]:
        inputs, targets = batch
        device = next(model.parameters()).device
        outputs = model(inputs.to(device))
        return loss_fn(outputs, targets.to(device)), outputs

    return batch_loss
