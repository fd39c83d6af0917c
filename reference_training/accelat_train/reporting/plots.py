"""Figures: one run's curves, the comparison of several policies, a policy's schedule.

matplotlib's object API with the Agg canvas (no pyplot, no global figure state). ``plot_*``
functions save a PNG (atomically, through ``save_png``) and return the
:class:`~matplotlib.figure.Figure` they drew, so callers and tests can read the plotted data
back; ``run_curves_figure`` only draws.

matplotlib is imported on the first draw (in ``_new_figure``), not at the top, so that
importing ``report`` (which imports this module) to read or compare runs, or importing
``accelat_train`` at all, does not pay matplotlib's import time.

Example::

    plot_policy(OneCycle.paper(0.2, total_steps=100), 100, "onecycle.png")
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelat_core import Policy, Schedule
from accelat_train.checkpoint import atomic_write
from accelat_train.extras import needs_extra
from accelat_train.output_path import check_output_path
from accelat_train.parsers import MAX_PLOT_STEPS

if TYPE_CHECKING:  # annotations only; see the module docstring for why not at run time
    from matplotlib.figure import Figure


def run_curves_figure(rows: Sequence[Mapping[str, Any]], *, title: str = "") -> Figure:
    """Four panels against cumulative gradient passes: lr, momentum, loss, accuracies.

    Vertical dotted lines mark the epochs where a metric-driven policy cut the lr.
    """
    passes = [r["passes"] for r in rows]
    fig = _new_figure((10, 7))
    (ax_lr, ax_m), (ax_loss, ax_acc) = fig.subplots(2, 2, sharex=True)
    ax_lr.plot(passes, [r["lr"] for r in rows], marker=".", label="lr")
    ax_lr.set_ylabel("learning rate (end of epoch)")
    momentum = [r.get("momentum") for r in rows]
    if any(m is not None for m in momentum):
        ax_m.plot(passes, [math.nan if m is None else m for m in momentum], marker=".")
    else:
        ax_m.text(
            0.5, 0.5, "momentum not driven", ha="center", va="center", transform=ax_m.transAxes
        )
    ax_m.set_ylabel("momentum")
    ax_loss.plot(passes, [r["train_loss"] for r in rows], marker=".", label="train (adversarial)")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for key, label in (
        ("val_acc", "clean val"),
        ("robust_val_acc", "robust val"),
        ("train_adv_acc", "train (adversarial)"),
    ):
        values = [math.nan if r[key] is None else r[key] for r in rows]  # None: not measured
        ax_acc.plot(passes, values, marker=".", label=label)
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend()
    for r in rows:
        if r.get("decision"):
            for ax in (ax_lr, ax_acc):
                ax.axvline(r["passes"], color="grey", linestyle=":", linewidth=1)
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("gradient passes (images)")
    if title:
        fig.suptitle(title)
    return fig


def plot_compare(summary: Mapping[str, Any], path: str | Path, *, title: str = "") -> Figure:
    """Robust validation accuracy against gradient passes, one curve per policy (seed mean).

    A dashed horizontal line marks the target. Saves a PNG at ``path``; returns the figure.
    """
    fig = _new_figure((8, 5))
    ax = fig.subplots()
    for name, p in summary["policies"].items():
        curve = p["curve"]
        n = len(p["seeds"])
        ax.plot(curve["passes"], curve["robust_val_acc"], marker=".", label=f"{name} (n={n})")
    ax.axhline(summary["target"], color="black", linestyle="--", linewidth=1, label="target")
    ax.set_xlabel("gradient passes (images)")
    ax.set_ylabel("robust validation accuracy")
    ax.legend()
    if title:
        ax.set_title(title)
    save_png(fig, path)
    return fig


def plot_frontier(summary: Mapping[str, Any], path: str | Path, *, title: str = "") -> Figure:
    """The budget sweep: best-checkpoint robust test accuracy against total passes spent, one
    marker per arm and budget (seed means), and the fixed shapes' frontier as a step line.
    Saves a PNG at ``path``; returns the figure."""
    sweep = summary["budgets"]
    fig = _new_figure((8, 5))
    ax = fig.subplots()
    for arm, points in sweep["points"].items():
        style = "-o" if arm in sweep["fixed"] else "*"
        ax.plot([p["passes"] for p in points], [p["robust_acc"] for p in points], style,
                label=arm, markersize=6 if arm in sweep["fixed"] else 12)  # fmt: skip
    front = sweep["frontier"]
    ax.step([p["passes"] for p in front], [p["robust_acc"] for p in front], where="post",
            color="black", linestyle="--", linewidth=1, label="fixed-shape frontier")  # fmt: skip
    ax.set_xlabel("total passes spent (training, monitor, finder, overheads)")
    ax.set_ylabel("best-checkpoint robust test accuracy")
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    save_png(fig, path)
    return fig


def plot_policy(
    policy: Policy,
    steps: int,
    path: str | Path,
    *,
    metrics: Sequence[float] | None = None,
    title: str = "",
) -> Figure:
    """The lr (and momentum, if driven) of ``policy`` over ``steps`` steps (the paper's figs 6-11).

    A fixed-shape policy is drawn from its closed form ``at(0) .. at(steps - 1)``. Any other
    policy is deep-copied (the caller's object is not advanced) and stepped: the value before
    the first step, then ``step(metrics[i])`` for ``i < steps - 1``. A metric-driven policy
    needs ``metrics`` with at least ``steps - 1`` values. ``steps`` is at most
    :data:`~accelat_train.parsers.MAX_PLOT_STEPS`. Saves a PNG; returns the figure.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_PLOT_STEPS:
        raise ValueError(f"steps must be an integer in [1, {MAX_PLOT_STEPS}], got {steps!r}")
    if isinstance(policy, Schedule):
        hypers = [policy.at(t) for t in range(steps)]
    else:
        if policy.needs_metric and (metrics is None or len(metrics) < steps - 1):
            have = "none" if metrics is None else len(metrics)
            raise ValueError(
                f"{type(policy).__name__} is metric-driven: plot_policy needs metrics with at "
                f"least steps - 1 = {steps - 1} values, got {have}"
            )
        clone = copy.deepcopy(policy)
        hypers = [clone.hyper]
        for i in range(steps - 1):
            hypers.append(clone.step(None if metrics is None else float(metrics[i])))
    t = list(range(steps))
    momentum = [h.momentum for h in hypers]
    drives_momentum = any(m is not None for m in momentum)
    fig = _new_figure((7, 5 if drives_momentum else 3))
    axes = fig.subplots(2 if drives_momentum else 1, 1, sharex=True, squeeze=False)[:, 0]
    axes[0].plot(t, [h.lr for h in hypers], label="lr")
    axes[0].set_ylabel("learning rate")
    if drives_momentum:
        axes[1].plot(t, [math.nan if m is None else m for m in momentum], color="tab:orange")
        axes[1].set_ylabel("momentum")
    axes[-1].set_xlabel("step")
    axes[0].set_title(title or repr(policy))
    save_png(fig, path)
    return fig


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A constrained-layout Figure; matplotlib is imported here, on first use (module docstring)."""
    with needs_extra("drawing figures"):
        from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def save_png(fig: Figure, path: str | Path) -> None:
    """Save a PNG atomically: a crash never leaves a half-written image under the final name.
    A path that cannot be written (a folder, a place no file can be made) is a ``ValueError``
    naming it, before it is written."""
    check_output_path(path, "path")
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
