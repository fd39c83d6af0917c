"""Weight averaging: an exponential moving average (EMA) of the weights beside the model.

``--ema-epochs H`` keeps ``torch.optim.swa_utils.AveragedModel`` of the network, updated
after every weight update with

.. math:: \\bar w_n = d_n \\bar w_{n-1} + (1 - d_n) w_n, \\qquad
    d = 1 - \\frac{1}{H \\cdot U}, \\qquad d_n = \\min\\bigl(d, 1 - (1 + n)^{-3/4}\\bigr)

where ``U`` is the number of weight updates per epoch and ``n`` the number of updates
averaged so far. The warm-up ``d_n`` (timm's ``ModelEmaV3`` power law) lets the average
forget the random initial weights within the first few hundred updates instead of lagging
behind them for ``H`` epochs; ``ema_warmup=False`` uses ``d`` from the first update on.
BatchNorm statistics are averaged with the weights (``use_buffers=True``), so the averaged
model needs no extra forward passes: averaging costs no gradient passes.

:class:`Averaging` is a listener of the training loop: it updates after every optimizer
step. A run with ``--ema-epochs`` evaluates its :attr:`~Averaging.module` from the start (the
run's plan says so, :mod:`accelat_train.training.plan`), so the monitor, ``best.pt``, the
final test evaluation, ``load_run`` and ``accelat eval`` all use it.

>>> import torch
>>> net = torch.nn.Linear(1, 1, bias=False)
>>> ema = Averaging(net, horizon_updates=4, warmup=False)  # d = 0.75
>>> for value in (1.0, 2.0, 3.0):
...     _ = net.weight.data.fill_(value)
...     ema.update(net)
>>> round(ema.module.weight.item(), 4)  # 1, then .75 * 1 + .25 * 2, then .75 * 1.25 + .25 * 3
1.6875
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from accelat_train.callbacks.callback import Callback

if TYPE_CHECKING:
    from accelat_train.callbacks.callback import RunView

#: The warm-up's power: d_n = 1 - (1 + n) ** -WARMUP_POWER (timm's ModelEmaV3 uses 3/4).
WARMUP_POWER = 0.75


class Averaging(Callback):
    """An EMA of ``model``'s weights and buffers with a horizon of ``horizon_updates``."""

    def __init__(self, model: nn.Module, *, horizon_updates: float, warmup: bool = True) -> None:
        if not horizon_updates >= 1:
            raise ValueError(f"horizon_updates must be >= 1, got {horizon_updates!r}")
        self.decay = 1.0 - 1.0 / horizon_updates
        self.warmup = warmup
        self.updates = 0  # = averaged.n_averaged, kept on the host (no device sync per step)
        self.averaged = AveragedModel(model, multi_avg_fn=self._average, use_buffers=True)

    @property
    def module(self) -> nn.Module:
        """The averaged model (what the run evaluates)."""
        return self.averaged.module

    def decay_at(self, n: int) -> float:
        """The decay applied to an average of ``n >= 1`` updates as the next one comes in."""
        if not self.warmup:
            return self.decay
        return min(self.decay, 1.0 - (1.0 + n) ** -WARMUP_POWER)

    def on_optimizer_step(self, trainer: RunView) -> None:
        self.update(trainer.model)

    def update(self, model: nn.Module) -> None:
        """Average ``model``'s current weights in (after an optimizer step)."""
        self.averaged.update_parameters(model)
        self.updates += 1

    @torch.no_grad()
    def _average(
        self,
        averaged: list[torch.Tensor] | tuple[torch.Tensor, ...],
        current: list[torch.Tensor] | tuple[torch.Tensor, ...],
        _n: Any,
    ) -> None:
        if not torch.is_floating_point(averaged[0]):  # BatchNorm's num_batches_tracked
            torch._foreach_copy_(averaged, current)
            return
        torch._foreach_lerp_(averaged, current, 1.0 - self.decay_at(self.updates))

    def state_dict(self) -> dict[str, Any]:
        """The update count (the averaged weights are the checkpoint's ``evaluated``)."""
        return {"updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.averaged.n_averaged.fill_(self.updates)
