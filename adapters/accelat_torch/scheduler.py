"""``PolicyScheduler``: any accelat_core policy as a ``torch.optim`` lr scheduler.

The policy decides every value; the scheduler only writes the policy's ``Hyper`` into
the optimizer's ``param_groups`` (``lr``, and ``momentum`` / ``betas[0]`` when the policy
drives momentum). Nothing else is written there: the scheduler's own state, policy
included, lives in :meth:`PolicyScheduler.state_dict`.

>>> import torch
>>> from accelat_core import Constant
>>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
>>> sched = PolicyScheduler(opt, Constant(0.1))
>>> opt.param_groups[0]["lr"], sched.get_last_lr()
(0.1, [0.1])
"""

from __future__ import annotations

import math
from typing import Any, Literal

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from accelat_core import Hyper, Policy
from accelat_torch.distributed import mean_over_ranks, should_sync

#: Version of :meth:`PolicyScheduler.state_dict`'s layout.
STATE_FORMAT = 1


class PolicyScheduler(LRScheduler):
    """Drive an optimizer's learning rate (and momentum) with an accelat_core policy.

    - **Unit.** One ``step()`` is one unit of the policy: call it once per batch for a
      per-step shape (``OneCycle`` with ``total_steps`` batches), once per epoch for a
      per-epoch one. A metric-driven policy (``policy.needs_metric``, e.g. ``AccelAT``)
      takes ``step(metric)`` once per evaluation; stepping it without a metric raises.
    - **Param groups.** Group ``i`` gets ``policy.lr * lr_i / lr_0``, where ``lr_i`` are
      the groups' lrs when the scheduler is built (``lr_0 > 0``): a head built at 0.01
      next to a body at 0.1 stays at a tenth of the policy's lr. On construction the
      optimizer gets the policy's *current* values (``at(0)`` for a fresh schedule).
    - **Momentum** (``momentum="auto"``, or ``True``): a momentum the policy emits is
      written to SGD's / RMSprop's ``momentum`` and to Adam-family ``betas[0]``
      (``betas[1]`` is kept); a policy emitting ``None`` leaves momentum alone. An optimizer without
      momentum (SGD or RMSprop built with ``momentum=0``, Adagrad) is an error;
      ``momentum=False`` never touches momentum.
    - **Tensor hyperparameters** (capturable / compiled optimizers) are updated in place
      with ``fill_``, so a compiled ``optimizer.step`` does not recompile.
    - **Distributed.** With ``torch.distributed`` initialised, ``step(metric)`` first
      averages the metric over ranks, so all ranks take the same decision and keep the
      same lr. ``sync_metric="auto"`` syncs when a process group of more than one rank is
      up at the first ``step(metric)``; ``True`` requires one; ``False`` never syncs.
    - **Frameworks.** ``PolicyScheduler(optimizer, policy)`` with a metric-driven policy
      returns a :class:`PlateauPolicyScheduler`: this class's subclass that is also a
      ``ReduceLROnPlateau`` (only for ``isinstance``; none of its logic runs), so
      Lightning (``{"scheduler": s, "monitor": "val_acc"}``) and the HF ``Trainer``
      (``metric_for_best_model``) pass the monitored metric to ``step`` as they do for
      ``ReduceLROnPlateau``, with no glue code. A fixed-shape policy gets a plain
      ``PolicyScheduler``, which those frameworks step without a metric.

    Values are written when the policy's ``Hyper`` changes (every step for a moving
    shape, only at a cut for AccelAT, as ``ReduceLROnPlateau`` does) and after the
    optimizer's groups were replaced (``optimizer.load_state_dict``). ``get_last_lr()``
    returns plain floats, one per group. A param group added to the optimizer after
    construction is an error at the next write.

    >>> import torch
    >>> from accelat_core import AccelAT
    >>> w = torch.zeros(1, requires_grad=True)
    >>> opt = torch.optim.SGD([{"params": [w]}], lr=1.0)
    >>> sched = PolicyScheduler(opt, AccelAT(0.1, 0.001, min_gain=0.01, factor=0.5, window=1))
    >>> for acc in [0.5, 0.6, 0.6]:
    ...     sched.step(acc)
    >>> sched.get_last_lr()
    [0.05]
    >>> type(sched).__name__
    'PlateauPolicyScheduler'
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> PolicyScheduler:
        """Return a :class:`PlateauPolicyScheduler` when ``policy.needs_metric``.

        That subclass is also a ``ReduceLROnPlateau``: the type Lightning and transformers
        check before they pass a metric to ``step()``. Any other call builds ``cls``.
        """
        policy = kwargs.get("policy", args[1] if len(args) > 1 else None)
        if cls is PolicyScheduler and getattr(policy, "needs_metric", False):
            cls = PlateauPolicyScheduler
        return object.__new__(cls)

    def __init__(
        self,
        optimizer: Optimizer,
        policy: Policy,
        momentum: Literal["auto"] | bool = "auto",
        sync_metric: Literal["auto"] | bool = "auto",
    ) -> None:
        # LRScheduler.__init__ is deliberately not called: it writes "initial_lr" into every
        # param group and wraps optimizer.step to warn about call order. We set the
        # attributes other code reads (optimizer, base_lrs, last_epoch, _step_count).
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be an accelat_core Policy, got {policy!r}")
        if isinstance(self, PlateauPolicyScheduler) and not policy.needs_metric:
            raise TypeError(
                f"PlateauPolicyScheduler needs a metric-driven policy, got {policy!r}, which "
                "reads no metric: use PolicyScheduler(optimizer, policy), which frameworks step "
                "without one"
            )
        if momentum not in ("auto", True, False):
            raise ValueError(f"momentum must be 'auto', True or False, got {momentum!r}")
        if sync_metric not in ("auto", True, False):
            raise ValueError(f"sync_metric must be 'auto', True or False, got {sync_metric!r}")
        self.optimizer = optimizer
        self.policy = policy
        self._drive_momentum = momentum is not False
        self.sync_metric = sync_metric
        self._sync: bool | None = None  # resolved at the first step(metric)
        self.needs_metric = policy.needs_metric
        self.base_lrs = _base_lrs([g["lr"] for g in optimizer.param_groups])
        self.last_epoch = 0
        self._step_count = 1
        self._bind()
        self._write(policy.hyper)

    # -- the hot path -------------------------------------------------------------------
    def step(self, metric: Any = None) -> None:  # type: ignore[override]
        """Advance the policy one unit (feeding ``metric`` if given) and write its values.

        ``metric`` may be a float or a 0-d tensor; a fixed-shape policy ignores it (and it
        is then not synced over ranks).
        """
        if metric is None:
            if self.needs_metric:
                raise _missing_metric(self.policy)
        elif self.needs_metric:
            if metric.__class__ is not float:
                metric = float(metric)
            sync = self._sync
            if sync is None:
                # Resolved once, at the first metric: by then any process group is up.
                sync = self._sync = should_sync(self.sync_metric)
            if sync:
                metric = mean_over_ranks(metric)
        h = self.policy.step(metric)
        # A metric-driven policy returns the same Hyper until it changes its mind; like
        # ReduceLROnPlateau, write only then (or when the optimizer's groups were replaced).
        if h is not self._written or self.optimizer.param_groups is not self._param_groups:
            self._write(h)
        self.last_epoch += 1

    def _write(self, h: Hyper) -> None:
        self._written = h
        groups = self.optimizer.param_groups
        if groups is not self._param_groups or len(groups) != len(self.base_lrs):
            # optimizer.load_state_dict (which accelerate also runs) makes new group dicts;
            # add_param_group makes one the scheduler has no ratio for (an error).
            self._bind()
        m = h.momentum
        if m is not None and self._no_momentum and self._drive_momentum:
            raise _no_momentum_error(self.policy, self.optimizer, self._no_momentum)
        lr = h.lr
        for group, num, den in self._float_lr:
            group["lr"] = lr * num / den
        for tensor, num, den in self._tensor_lr:
            tensor.fill_(lr * num / den)
        if m is not None and self._drive_momentum:
            for group in self._momentum_groups:
                group["momentum"] = m
            for group in self._beta_groups:
                group["betas"] = (m, group["betas"][1])
            for tensor in self._tensor_momentum:
                tensor.fill_(m)

    def _bind(self) -> None:
        """Sort the param groups by how each value is written (plain float or tensor)."""
        groups = self._param_groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(
                f"the optimizer has {len(groups)} param groups, but this scheduler was built "
                f"for {len(self.base_lrs)}; build a new scheduler after add_param_group"
            )
        # Group i gets lr * num / den with (num, den) = (lr_i, lr_0), or (1, 1) when the
        # two are equal, so that group 0 (and its equals) get the policy's lr exactly.
        self._float_lr: list[tuple[dict[str, Any], float, float]] = []
        self._tensor_lr: list[tuple[Tensor, float, float]] = []
        self._momentum_groups: list[dict[str, Any]] = []
        self._beta_groups: list[dict[str, Any]] = []
        self._tensor_momentum: list[Tensor] = []
        self._no_momentum: list[int] = []
        first = self.base_lrs[0]
        for i, (group, base) in enumerate(zip(groups, self.base_lrs, strict=True)):
            num, den = (1.0, 1.0) if base == first else (base, first)
            if isinstance(group["lr"], Tensor):
                self._tensor_lr.append((group["lr"], num, den))
            else:
                self._float_lr.append((group, num, den))
            if "betas" in group:
                beta = group["betas"][0]
                if isinstance(beta, Tensor):
                    self._tensor_momentum.append(beta)
                else:
                    self._beta_groups.append(group)
            elif group.get("momentum", 0) != 0:
                if isinstance(group["momentum"], Tensor):
                    self._tensor_momentum.append(group["momentum"])
                else:
                    self._momentum_groups.append(group)
            else:
                # SGD/RMSprop built with momentum=0 chose plain updates; turning momentum on
                # behind the user's back would change the algorithm, so that is an error.
                self._no_momentum.append(i)

    # -- views --------------------------------------------------------------------------
    def get_last_lr(self) -> list[float]:
        """The lr of each param group as last written (``policy.lr * lr_i / lr_0``)."""
        lr = self.policy.lr
        first = self.base_lrs[0]
        return [lr if base == first else lr * base / first for base in self.base_lrs]

    def get_lr(self) -> list[float]:
        """Same as :meth:`get_last_lr`: the policy, not the scheduler, computes values."""
        return self.get_last_lr()

    @property
    def should_stop(self) -> bool:
        """The policy's verdict that training cannot improve further (AccelAT)."""
        return self.policy.should_stop

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"format", "policy": policy.state_dict(), "base_lrs", "last_epoch"}``: plain JSON.

        ``base_lrs`` are the groups' lrs at construction, which fix their ratios.
        """
        return {
            "format": STATE_FORMAT,
            "policy": self.policy.state_dict(),
            "base_lrs": list(self.base_lrs),
            "last_epoch": self.last_epoch,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` and write the restored values into the optimizer.

        Raises ``ValueError`` for a state saved from another policy (or another config of
        this one), or for another number of param groups.
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {
            "format",
            "policy",
            "base_lrs",
            "last_epoch",
        }:
            raise ValueError(
                "state_dict must be a PolicyScheduler.state_dict() with keys "
                f"format, policy, base_lrs, last_epoch; got {state_dict!r:.200}"
            )
        if state_dict["format"] != STATE_FORMAT:
            raise ValueError(
                f"state_dict format must be {STATE_FORMAT}, got {state_dict['format']!r}"
            )
        base_lrs = state_dict["base_lrs"]
        groups = len(self.optimizer.param_groups)
        if not isinstance(base_lrs, list) or len(base_lrs) != groups:
            raise ValueError(
                f"state_dict holds base_lrs {base_lrs!r} for another number of param groups; "
                f"this optimizer has {groups}"
            )
        base_lrs = _base_lrs(base_lrs)
        try:
            self.policy.load_state_dict(state_dict["policy"])
        except ValueError as exc:
            raise ValueError(f"cannot load this state into {self.policy!r}: {exc}") from None
        self.base_lrs = base_lrs
        self.last_epoch = int(state_dict["last_epoch"])
        self._bind()
        self._write(self.policy.hyper)

    def __repr__(self) -> str:
        return f"PolicyScheduler({type(self.optimizer).__name__}, {self.policy!r})"


class PlateauPolicyScheduler(PolicyScheduler, ReduceLROnPlateau):
    """What ``PolicyScheduler(optimizer, policy)`` returns for a metric-driven policy.

    A :class:`PolicyScheduler` that is also a ``torch.optim.lr_scheduler.ReduceLROnPlateau``
    for ``isinstance`` alone, because that check is how Lightning (``reduce_on_plateau``,
    and the required ``monitor``) and the HF ``Trainer`` (stepping after evaluation, with
    the metric) decide to call ``step(metric)``. Nothing of ``ReduceLROnPlateau`` runs: its
    ``__init__`` is never called, so its attributes (``mode``, ``best``, ``patience``,
    ``num_bad_epochs``, ...) do not exist, and every method the frameworks call
    (``step``, ``get_last_lr``, ``state_dict``, ``load_state_dict``) is
    :class:`PolicyScheduler`'s, first in the MRO. The policy decides every value.

    Build it through ``PolicyScheduler(...)`` (or directly, with a metric-driven policy;
    a policy that reads no metric is a ``TypeError``).

    >>> import torch
    >>> from accelat_core import AccelAT
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = PolicyScheduler(opt, AccelAT(0.1, 0.001, min_gain=0.01, factor=0.5, window=1))
    >>> isinstance(sched, PlateauPolicyScheduler), isinstance(sched, ReduceLROnPlateau)
    (True, True)
    """

    def __repr__(self) -> str:
        return f"PlateauPolicyScheduler({type(self.optimizer).__name__}, {self.policy!r})"


def _base_lrs(lrs: list[Any]) -> list[float]:
    values = [float(lr) for lr in lrs]
    for i, v in enumerate(values):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"param_groups[{i}] lr must be finite and >= 0, got {v!r}")
    if values[0] <= 0:
        raise ValueError(
            f"param_groups[0] lr must be > 0, got {values[0]!r}: the other groups' lrs are "
            "kept as ratios to it"
        )
    return values


def _missing_metric(policy: Policy) -> ValueError:
    return ValueError(
        f"{policy.policy_name} is metric-driven: call scheduler.step(metric) with the "
        "monitored value (e.g. validation accuracy) once per evaluation. In Lightning return "
        '{"scheduler": s, "monitor": "val_acc", "interval": "epoch"} from '
        "configure_optimizers; in the HF Trainer set metric_for_best_model."
    )


def _no_momentum_error(policy: Policy, optimizer: Optimizer, groups: list[int]) -> ValueError:
    return ValueError(
        f"{policy.policy_name} drives momentum but {type(optimizer).__name__} "
        f"param_groups {groups} have none (momentum=0 or no momentum at all); build the "
        "optimizer with momentum (e.g. SGD(..., momentum=0.9)), or pass momentum=False "
        "to PolicyScheduler to leave momentum alone"
    )
