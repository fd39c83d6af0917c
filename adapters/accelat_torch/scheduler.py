"""Any accelat_core policy as a ``torch.optim`` lr scheduler.

:class:`PolicyScheduler` drives a policy that reads no metric (a fixed shape),
:class:`PlateauPolicyScheduler` a metric-driven one (AccelAT), and :func:`scheduler_for`
picks between the two. The policy decides every value; the scheduler only writes the
policy's ``Hyper`` into the optimizer's ``param_groups`` (``lr``, and ``momentum`` /
``betas[0]`` when the policy drives momentum). Nothing else is written there: the
scheduler's own state, policy included, lives in :meth:`PolicyScheduler.state_dict`.

>>> import torch
>>> from accelat_core import Constant
>>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
>>> sched = PolicyScheduler(opt, Constant(0.1))
>>> opt.param_groups[0]["lr"], sched.get_last_lr()
(0.1, [0.1])
"""

from __future__ import annotations

import copy
import math
import numbers
import reprlib
import warnings
from typing import Any, Literal

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import EPOCH_DEPRECATION_WARNING, LRScheduler, ReduceLROnPlateau

from accelat_core import Hyper, Policy
from accelat_core.decisions import Decision
from accelat_torch.distributed import mean_over_ranks, should_sync

#: Version of :meth:`PolicyScheduler.state_dict`'s layout.
STATE_FORMAT = 1
#: How far apart (as a ratio, either way) the optimizer's lr and the policy's peak lr may be
#: before construction warns that the policy's replaces the optimizer's: an order of
#: magnitude. A placeholder lr (SGD's customary 0.1, or 1.0 for a schedule that multiplies
#: it) next to a peak found by an lr range test stays quiet; Adam's 1e-3 next to an SGD
#: schedule's 0.1 (a factor of 100), or a peak off by a power of ten, does not.
LR_MISMATCH = 10.0


class LRMismatchWarning(UserWarning):
    """The optimizer's lr and the policy's peak lr are more than :data:`LR_MISMATCH` apart;
    the policy's wins. Code that builds its optimizer at a placeholder lr on purpose (an lr
    range test, a trainer) filters this category."""


_STATE_KEYS = ("format", "policy", "base_lrs", "last_epoch")


class PolicyScheduler(LRScheduler):
    """Drive an optimizer's learning rate (and momentum) with an accelat_core policy.

    - **Unit.** One ``step()`` is one unit of the policy: call it once per batch for a
      per-step shape (``OneCycle`` with ``total_steps`` batches), once per epoch for a
      per-epoch one. A metric-driven policy (``policy.needs_metric``, e.g. ``AccelAT``)
      belongs in a :class:`PlateauPolicyScheduler`, stepped with ``step(metric)``; here it
      still works, with a ``DeprecationWarning`` until 0.4 (:func:`scheduler_for` picks the
      class for you).
    - **Param groups.** Group ``i`` gets ``policy.lr * lr_i / lr_0``, where ``lr_i`` are
      the groups' lrs when the scheduler is built (``lr_0 > 0``): a head built at 0.01
      next to a body at 0.1 stays at a tenth of the policy's lr. On construction the
      optimizer gets the policy's *current* values (``at(0)`` for a fresh schedule): the lr
      the optimizer was built with is overwritten, as torch's ``OneCycleLR`` overwrites it,
      and only the groups' ratios are kept. A :class:`LRMismatchWarning` (a ``UserWarning``)
      names both when the optimizer's lr and the policy's peak lr are more than
      :data:`LR_MISMATCH` apart (an Adam lr next to an SGD schedule, a forgotten scale).
    - **Momentum** (``momentum="auto"``, or ``True``): a momentum the policy emits is
      written to SGD's / RMSprop's ``momentum`` and to Adam-family ``betas[0]``
      (``betas[1]`` is kept); a policy emitting ``None`` leaves momentum alone. An
      optimizer without momentum (SGD or RMSprop built with ``momentum=0``, Adagrad) is
      an error; ``momentum=False`` never touches momentum.
    - **Tensor hyperparameters** (capturable / compiled optimizers) are updated in place
      with ``fill_``, so a compiled ``optimizer.step`` does not recompile.
    - **Frameworks.** Lightning and the HF ``Trainer`` step a ``PolicyScheduler``
      without a metric (per ``interval``, or per optimizer step).

    Values are written when the policy's ``Hyper`` changes and after the optimizer's
    groups were replaced (``optimizer.load_state_dict``). ``get_last_lr()`` returns plain
    floats, one per group. A param group added to the optimizer after construction is an
    error at the next ``step``, raised before the policy moves.

    Args:
        optimizer: the ``torch.optim.Optimizer`` whose param groups get the policy's values;
            its groups' lrs (the first > 0) fix their ratios, its lr itself is replaced.
        policy: any ``accelat_core`` policy (a fixed shape here; a metric-driven one belongs
            in :class:`PlateauPolicyScheduler`); it decides every value.
        momentum: ``"auto"`` (default) or ``True``: write a momentum the policy emits to
            ``momentum`` / ``betas[0]``; ``False``: never touch momentum.
        sync_metric: for a metric-driven policy, whether ``step(metric)`` first averages the
            metric over ``torch.distributed`` ranks: ``"auto"`` (default, when a process group
            of more than one rank is up), ``True`` (requires one) or ``False``.

    >>> import torch
    >>> from accelat_core import OneCycle
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
    >>> sched = PolicyScheduler(opt, OneCycle(0.1, total_steps=10))
    >>> for _ in range(3):
    ...     sched.step()  # once per batch
    >>> sched.get_last_lr() == [OneCycle(0.1, total_steps=10).at(3).lr]
    True
    """

    # torch annotates LRScheduler.base_lrs list[float | Tensor]; ours are always floats.
    base_lrs: list[float]  # type: ignore[assignment]

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
        plateau = isinstance(self, PlateauPolicyScheduler)
        if policy.needs_metric and not plateau:
            warnings.warn(
                f"{type(self).__name__} with a metric-driven policy ({policy.policy_name}) is "
                "deprecated since 0.2 and goes in 0.4: use PlateauPolicyScheduler(optimizer, "
                "policy), or accelat_torch.scheduler_for(optimizer, policy), which picks the "
                "class (frameworks pass the metric only to a ReduceLROnPlateau)",
                DeprecationWarning,
                stacklevel=2,
            )
        if plateau and not policy.needs_metric:
            raise TypeError(
                f"PlateauPolicyScheduler needs a metric-driven policy, got {policy!r}, which "
                "reads no metric: use PolicyScheduler(optimizer, policy), which frameworks step "
                "without one, or accelat_torch.scheduler_for(optimizer, policy)"
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
        self.base_lrs = _base_lrs(
            [float(g["lr"]) for g in optimizer.param_groups], "param_groups[{}] lr"
        )
        self.last_epoch = 0
        self._step_count = 1
        self._bind()
        _warn_if_far(self.base_lrs[0], policy)
        self._write(policy.hyper)

    # -- the hot path -------------------------------------------------------------------
    def step(self, metric: Any = None) -> None:
        """Advance the policy one unit (feeding ``metric`` if given) and write its values.

        ``metric`` may be a real number (not a bool), a one-element tensor or a numpy
        scalar; a fixed-shape policy ignores it (and it is then not synced over ranks).
        A refused metric raises ``ValueError`` before anything changes.
        """
        if metric is None:
            if self.needs_metric:
                raise _missing_metric(self.policy)
        elif self.needs_metric and metric.__class__ is not float:
            metric = _metric_value(metric, self.policy)
        stale = self._rebind_if_stale()
        if metric is not None and self.needs_metric:
            sync = self._sync
            if sync is None:
                # Resolved once, at the first metric: by then any process group is up.
                sync = self._sync = should_sync(self.sync_metric)
            if sync:
                metric = mean_over_ranks(metric)
        h = self.policy.step(metric)
        # A metric-driven policy returns the same Hyper until it changes its mind; like
        # ReduceLROnPlateau, write only then (or when the optimizer's groups were replaced).
        if stale or h is not self._written:
            self._write(h)
        self.last_epoch += 1

    def _rebind_if_stale(self) -> bool:
        """Bind the optimizer's groups anew if they were replaced; whether they were."""
        groups = self.optimizer.param_groups
        stale = groups is not self._param_groups or len(groups) != len(self.base_lrs)
        if stale:
            # optimizer.load_state_dict (which accelerate also runs) makes new group dicts;
            # add_param_group makes one the scheduler has no ratio for (an error, raised
            # here, before the policy moves).
            self._bind()
        return stale

    def _write(self, h: Hyper) -> None:
        m = h.momentum
        if m is not None and self._no_momentum and self._drive_momentum:
            raise _no_momentum_error(self.policy, self.optimizer, self._no_momentum)
        self._written = h
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
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(
                f"the optimizer has {len(groups)} param groups, but this scheduler was built "
                f"for {len(self.base_lrs)}; build a new scheduler after add_param_group"
            )
        self._param_groups = groups
        # Group i gets lr * num / den with (num, den) = (lr_i, lr_0), or (1, 1) when the
        # two are equal, so that group 0 (and its equals) get the policy's lr exactly.
        self._float_lr: list[tuple[dict[str, Any], float, float]] = []
        self._tensor_lr: list[tuple[Tensor, float, float]] = []
        self._momentum_groups: list[dict[str, Any]] = []
        self._beta_groups: list[dict[str, Any]] = []
        self._tensor_momentum: list[Tensor] = []
        # SGD/RMSprop built with momentum=0 chose plain updates; turning momentum on
        # behind the user's back would change the algorithm, so that is an error.
        self._no_momentum = _groups_without_momentum(groups)
        first = self.base_lrs[0]
        for group, base in zip(groups, self.base_lrs, strict=True):
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

    # -- views --------------------------------------------------------------------------
    # torch annotates get_last_lr/get_lr list[float | Tensor]; ours return plain floats.
    def get_last_lr(self) -> list[float]:  # type: ignore[override]
        """The lr of each param group as last written (``policy.lr * lr_i / lr_0``)."""
        lr = self.policy.lr
        first = self.base_lrs[0]
        return [lr if base == first else lr * base / first for base in self.base_lrs]

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Same as :meth:`get_last_lr`: the policy, not the scheduler, computes values."""
        return self.get_last_lr()

    @property
    def should_stop(self) -> bool:
        """The policy's verdict that training cannot improve further (AccelAT)."""
        return self.policy.should_stop

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"format", "policy": policy.state_dict(), "base_lrs", "last_epoch"}``: plain JSON.

        ``base_lrs`` are the groups' lrs at construction, which fix their ratios;
        ``last_epoch`` counts the steps since construction (0 when fresh).
        """
        return {
            "format": STATE_FORMAT,
            "policy": self.policy.state_dict(),
            "base_lrs": list(self.base_lrs),
            "last_epoch": self.last_epoch,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` and write the restored values into the optimizer.

        The whole state is checked first (the policy's part by loading it into a copy of
        the policy); on any refusal a ``ValueError`` names the key and its value, and the
        scheduler, its policy and the optimizer are left exactly as they were. Refused:
        a state saved from another policy (or another config of this one), ``base_lrs``
        that are not one finite real number per param group (``>= 0``, the first ``> 0``),
        a ``last_epoch`` that is not an integer ``>= 0``, and a policy state emitting a
        momentum this optimizer has no place for.
        """
        base_lrs, last_epoch = self._checked_state(state_dict)
        self.policy.load_state_dict(state_dict["policy"])  # loaded into a copy already
        self.base_lrs = base_lrs
        self.last_epoch = last_epoch
        self._bind()
        self._write(self.policy.hyper)

    def _checked_state(self, state: Any) -> tuple[list[float], int]:
        """``(base_lrs, last_epoch)`` of a state :meth:`load_state_dict` can apply in full."""
        if not isinstance(state, dict) or sorted(state) != sorted(_STATE_KEYS):
            raise ValueError(
                f"state_dict must be a {type(self).__name__}.state_dict() with keys "
                f"{', '.join(_STATE_KEYS)}; got {reprlib.repr(state)}"
            )
        fmt = state["format"]
        if type(fmt) is not int or fmt != STATE_FORMAT:
            raise ValueError(
                f"state_dict['format'] must be {STATE_FORMAT}, got {reprlib.repr(fmt)}"
            )
        base_lrs = _saved_base_lrs(state["base_lrs"], len(self.optimizer.param_groups))
        last_epoch = state["last_epoch"]
        if type(last_epoch) is not int or last_epoch < 0:
            raise ValueError(
                "state_dict['last_epoch'] must be an integer >= 0 (the steps since "
                f"construction), got {reprlib.repr(last_epoch)}"
            )
        trial = copy.deepcopy(self.policy)
        try:
            trial.load_state_dict(state["policy"])
        except (TypeError, ValueError, RecursionError) as exc:
            why = "it is nested too deeply" if isinstance(exc, RecursionError) else exc
            raise ValueError(
                f"state_dict['policy'] cannot be loaded into {self.policy!r}: {why}"
            ) from None
        missing = _groups_without_momentum(self.optimizer.param_groups)
        if trial.momentum is not None and self._drive_momentum and missing:
            error = _no_momentum_error(trial, self.optimizer, missing)
            raise ValueError(f"state_dict['policy'] cannot be loaded: {error}")
        return base_lrs, last_epoch

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.optimizer).__name__}, {self.policy!r})"


# ReduceLROnPlateau is a base for isinstance checks alone; step takes its signature.
class PlateauPolicyScheduler(PolicyScheduler, ReduceLROnPlateau):
    """A :class:`PolicyScheduler` for a metric-driven policy, stepped with ``step(metrics)``.

    Call ``step(metrics)`` once per evaluation with the monitored value (a float, or a
    one-element tensor), as torch's ``ReduceLROnPlateau.step(metrics, epoch=None)``: the
    keyword ``metrics`` (and :class:`PolicyScheduler`'s ``metric``) works, and an ``epoch``
    is taken as torch takes it (its deprecation ``UserWarning``, then ``last_epoch = epoch``;
    the policy steps once either way). Stepping without a metric raises. With ``torch.distributed``
    initialised, the metric is first averaged over ranks, so all ranks take the same
    decision and keep the same lr: ``sync_metric="auto"`` syncs when a process group of
    more than one rank is up at the first ``step(metric)``; ``True`` requires one;
    ``False`` never syncs. A policy that reads no metric is a ``TypeError``.

    It is also a ``torch.optim.lr_scheduler.ReduceLROnPlateau``, for ``isinstance``
    alone: that check is how Lightning (``{"scheduler": s, "monitor": "val_acc"}``) and
    the HF ``Trainer`` (``metric_for_best_model``) decide to pass the monitored metric to
    ``step``. Nothing of ``ReduceLROnPlateau`` runs: its ``__init__`` is never called, so
    its attributes (``mode``, ``best``, ``patience``, ...) do not exist, and every method
    the frameworks call (``step``, ``get_last_lr``, ``state_dict``, ``load_state_dict``)
    is :class:`PolicyScheduler`'s, first in the MRO. The policy decides every value.

    **What it decided.** After each ``step(metrics)``, :attr:`last_decision` is the decision
    that step took (a :class:`~accelat_core.decisions.Decision`: the evaluation, the gain, the
    old and the new lr; ``new_lr == old_lr`` when the lr already sat at its floor), or None
    when it took none, or the policy records none (a composite). It is not part of the
    state: None after construction and after :meth:`load_state_dict`.

    **Within an evaluation** (timm's ``step_update``): call :meth:`step_update` after every
    ``optimizer.step()`` and a policy whose lr moves between evaluations (AccelAT's final
    anneal, ``anneal=``) is followed update by update: the scheduler counts the updates since
    the last ``step(metric)`` and writes ``policy.between(update, updates)``, with ``updates``
    the count of the last whole interval between two evaluations. Without it the anneal moves
    once per evaluation. Both counts are in :meth:`state_dict`, so a resume mid-epoch is exact.

    Args:
        optimizer: the ``torch.optim.Optimizer`` whose param groups get the policy's values;
            its groups' lrs (the first > 0) fix their ratios, its lr itself is replaced.
        policy: a metric-driven ``accelat_core`` policy (``policy.needs_metric``: AccelAT,
            Plateau, or a warmup or join holding one), stepped once per evaluation.
        momentum: ``"auto"`` (default) or ``True``: write a momentum the policy emits to
            ``momentum`` / ``betas[0]``; ``False``: never touch momentum.
        sync_metric: whether ``step(metric)`` first averages the metric over
            ``torch.distributed`` ranks: ``"auto"`` (default, when a process group of more
            than one rank is up at the first ``step(metric)``), ``True`` (requires one) or
            ``False``.

    >>> import torch
    >>> from accelat_core import AccelAT
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> policy = AccelAT(0.1, 0.001, min_gain=0.01, factor=0.5, window=1)
    >>> sched = PlateauPolicyScheduler(opt, policy)
    >>> for acc in [0.5, 0.6, 0.6]:
    ...     sched.step(acc)  # once per evaluation
    >>> sched.get_last_lr(), isinstance(sched, ReduceLROnPlateau)
    ([0.05], True)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        policy: Policy,
        momentum: Literal["auto"] | bool = "auto",
        sync_metric: Literal["auto"] | bool = "auto",
    ) -> None:
        self.updates = 0  # weight updates since the last step(metric)
        self.updates_per_evaluation = 0  # those of the last whole interval (0: none yet)
        self.last_decision: Decision | None = None  # what the last step(metric) decided
        super().__init__(optimizer, policy, momentum=momentum, sync_metric=sync_metric)

    def step(  # type: ignore[override]
        self, metrics: Any = None, epoch: int | None = None, *, metric: Any = None
    ) -> None:
        """Feed the policy ``metrics`` (``metric`` is the same, by :class:`PolicyScheduler`'s
        name) and write its values; ``epoch`` as ``ReduceLROnPlateau.step`` takes it."""
        if metric is not None:
            if metrics is not None:
                raise TypeError("step() got the metric twice: metrics given twice (as metrics "
                                "and as metric)")  # fmt: skip
            metrics = metric
        if epoch is not None:
            if isinstance(epoch, bool) or not isinstance(epoch, int):
                raise TypeError(f"epoch must be an int or None, got {epoch!r}")
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        before = len(_decisions(self.policy))
        super().step(metrics)
        decisions = _decisions(self.policy)
        self.last_decision = decisions[-1] if len(decisions) > before else None
        if epoch is not None:
            self.last_epoch = epoch
        if self.updates:
            self.updates_per_evaluation = self.updates
        self.updates = 0

    def step_update(self) -> None:
        """One weight update was made: write the policy's value within the evaluation."""
        stale = self._rebind_if_stale()
        self.updates += 1
        if self.updates_per_evaluation:
            h = self.policy.between(self.updates, self.updates_per_evaluation)
            if stale or h != self._written:
                self._write(h)

    def state_dict(self) -> dict[str, Any]:
        """:meth:`PolicyScheduler.state_dict` and the two update counts."""
        counts = {"updates": self.updates, "updates_per_evaluation": self.updates_per_evaluation}
        return {**super().state_dict(), **counts}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """:meth:`PolicyScheduler.load_state_dict`; a state saved by 0.2 (no counts) loads
        with both counts at 0."""
        counts = {k: state_dict.get(k, 0) for k in ("updates", "updates_per_evaluation")}
        for key, value in counts.items():
            if type(value) is not int or value < 0:
                raise ValueError(f"state_dict[{key!r}] must be an integer >= 0, got {value!r}")
        base = {k: v for k, v in state_dict.items() if k not in counts}
        super().load_state_dict(base)
        self.last_decision = None
        self.updates, self.updates_per_evaluation = (
            counts["updates"],
            counts["updates_per_evaluation"],
        )
        if self.updates and self.updates_per_evaluation:
            self._write(self.policy.between(self.updates, self.updates_per_evaluation))


def scheduler_for(
    optimizer: Optimizer,
    policy: Policy,
    momentum: Literal["auto"] | bool = "auto",
    sync_metric: Literal["auto"] | bool = "auto",
) -> PolicyScheduler:
    """The scheduler a policy needs: a :class:`PlateauPolicyScheduler` when
    ``policy.needs_metric`` (step it with the metric), else a :class:`PolicyScheduler`.

    For code that takes any policy, a config's say; the arguments are the classes' own.
    The optimizer's lr gives way to the policy's (group ratios kept): see
    :class:`PolicyScheduler`, which warns when the two are more than :data:`LR_MISMATCH` apart.

    Args:
        optimizer: the ``torch.optim.Optimizer`` whose param groups get the policy's values.
        policy: any ``accelat_core`` policy; it decides every value.
        momentum: ``"auto"`` (default) or ``True``: write a momentum the policy emits;
            ``False``: never touch momentum.
        sync_metric: ``"auto"`` (default), ``True`` or ``False``: whether a metric is
            averaged over ``torch.distributed`` ranks (see :class:`PlateauPolicyScheduler`).

    >>> import torch
    >>> from accelat_core import AccelAT, OneCycle
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
    >>> type(scheduler_for(opt, AccelAT(0.1, 0.001, min_gain=0.01, factor=0.5, window=1)))
    <class 'accelat_torch.scheduler.PlateauPolicyScheduler'>
    >>> type(scheduler_for(opt, OneCycle(0.1, total_steps=10)))
    <class 'accelat_torch.scheduler.PolicyScheduler'>
    """
    cls = PlateauPolicyScheduler if getattr(policy, "needs_metric", False) else PolicyScheduler
    return cls(optimizer, policy, momentum=momentum, sync_metric=sync_metric)


def _decisions(policy: Policy) -> list[Decision]:
    """The decisions ``policy`` has recorded (none for one that records none)."""
    return list(getattr(policy, "decisions", None) or [])


def _warn_if_far(optimizer_lr: float, policy: Policy) -> None:
    """Warn naming both when ``optimizer_lr`` and the policy's peak lr are more than
    :data:`LR_MISMATCH` apart."""
    peak = _peak_lr(policy.to_config()) or policy.lr
    if peak > 0 and max(peak / optimizer_lr, optimizer_lr / peak) > LR_MISMATCH:
        warnings.warn(
            f"the policy sets the optimizer's learning rate: the optimizer was built with "
            f"lr={optimizer_lr:g}, the policy's peak lr {peak:g} is more than {LR_MISMATCH:g} "
            f"times {'larger' if peak > optimizer_lr else 'smaller'}, and the optimizer now "
            f"starts at {policy.lr:g} (build the policy with the lr you meant)",
            LRMismatchWarning,
            stacklevel=3,
        )


def _peak_lr(config: Any) -> float:
    """The largest number under a key naming an lr (``lr``, ``lr_max``, ``lr_start``, ...)
    anywhere in a policy config, composites' children included (0.0 if none)."""
    if isinstance(config, dict):
        values = [
            float(v) if "lr" in k and isinstance(v, (int, float)) else _peak_lr(v)
            for k, v in config.items()
        ]
        return max(values, default=0.0)
    if isinstance(config, list):
        return max((_peak_lr(v) for v in config), default=0.0)
    return 0.0


def _base_lrs(lrs: list[float], name: str) -> list[float]:
    """Check the groups' base lrs: finite, ``>= 0``, the first ``> 0``; ``name`` has a
    ``{}`` for the group's index."""
    for i, v in enumerate(lrs):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name.format(i)} must be finite and >= 0, got {v!r}")
    if lrs[0] <= 0:
        raise ValueError(
            f"{name.format(0)} must be > 0, got {lrs[0]!r}: the other groups' lrs are "
            "kept as ratios to it"
        )
    return lrs


def _saved_base_lrs(value: Any, groups: int) -> list[float]:
    """A saved ``base_lrs``: a list of one real number per param group, as floats."""
    if not isinstance(value, list) or len(value) != groups:
        raise ValueError(
            "state_dict['base_lrs'] must be a list of one lr per param group, got "
            f"{reprlib.repr(value)}; "
            f"this optimizer has {groups}"
        )
    lrs = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(
                f"state_dict['base_lrs'][{i}] must be a real number, got {reprlib.repr(v)} "
                f"({type(v).__name__})"
            )
        try:
            lrs.append(float(v))
        except OverflowError:  # an int beyond float range
            lrs.append(math.inf)
    return _base_lrs(lrs, "state_dict['base_lrs'][{}]")


def _metric_value(metric: Any, policy: Policy) -> float:
    """``metric`` as a float: a real number, or a tensor / numpy value of one element.

    Bools, strings, complex and several-element values raise ``ValueError``, as
    ``AccelAT.step`` does for them; an int beyond float range becomes ``inf``.
    """
    value = metric
    if isinstance(metric, Tensor):
        if metric.numel() == 1:
            value = metric.item()
    elif hasattr(metric, "__array__") and getattr(metric, "size", None) == 1:
        value = metric.item()  # numpy (or jax) scalars and one-element arrays
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{policy.policy_name} needs a real-number metric, got {metric!r} "
            f"({type(metric).__name__})"
        )
    try:
        return float(value)
    except OverflowError:  # an int beyond float range is as unusable as inf
        return math.inf


def _groups_without_momentum(groups: list[dict[str, Any]]) -> list[int]:
    """The indices of the groups with nowhere to write a momentum (``momentum`` 0 or none)."""
    return [i for i, g in enumerate(groups) if "betas" not in g and g.get("momentum", 0) == 0]


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
        "to the scheduler to leave momentum alone"
    )
