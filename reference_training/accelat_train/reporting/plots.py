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
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelat_core import Policy, Schedule
from accelat_train.atomic_writes import atomic_write
from accelat_train.extras import needs_extra
from accelat_train.output_path import check_output_path
from accelat_train.parsers import MAX_PLOT_STEPS

if TYPE_CHECKING:  # annotations only; see the module docstring for why not at run time
    from matplotlib.figure import Figure


def run_curves_figure(rows: Sequence[Mapping[str, Any]], *, title: str = "") -> Figure:
    """Panels against cumulative gradient passes: lr, momentum (only when it changes), loss,
    accuracies.

    Vertical dotted lines mark the epochs where a metric-driven policy cut the lr; a star
    marks the best robust validation epoch (the one ``best.pt`` holds). Momentum that stays
    constant (or is absent) gets no panel: the lr panel spans the top row instead.
    """
    passes = [r["passes"] for r in rows]
    momentum = [r.get("momentum") for r in rows]
    drives_momentum = len({m for m in momentum if m is not None}) > 1
    fig = _new_figure((10, 7))
    grid = fig.add_gridspec(2, 2)
    ax_lr = fig.add_subplot(grid[0, 0] if drives_momentum else grid[0, :])
    if drives_momentum:
        ax_m = fig.add_subplot(grid[0, 1], sharex=ax_lr)
        ax_m.plot(passes, [math.nan if m is None else m for m in momentum], marker=".")
        ax_m.set_ylabel("momentum")
    ax_loss = fig.add_subplot(grid[1, 0], sharex=ax_lr)
    ax_acc = fig.add_subplot(grid[1, 1], sharex=ax_lr)
    ax_lr.plot(passes, [r["lr"] for r in rows], marker=".", label="lr")
    ax_lr.set_ylabel("learning rate (end of epoch)")
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
    best = _best_row(rows)
    if best is not None:
        ax_acc.plot([best["passes"]], [best["robust_val_acc"]], "*", color="black",
                    markersize=12, label=f"best.pt (epoch {best['epoch']})")  # fmt: skip
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


def _best_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first row with the highest robust validation accuracy (best.pt's epoch)."""
    measured = [r for r in rows if r["robust_val_acc"] is not None]
    return max(measured, key=lambda r: r["robust_val_acc"], default=None)


def plot_compare(summary: Mapping[str, Any], path: str | Path, *, title: str = "") -> Figure:
    """Robust validation accuracy against gradient passes, one curve per policy (seed mean).

    A dashed horizontal line marks the target. Saves a PNG at ``path``; returns the figure.
    """
    fig = _new_figure((8, 5))
    ax = fig.subplots()
    for i, (name, p) in enumerate(summary["policies"].items()):
        curve = p["curve"]
        n = len(p["seeds"])
        ax.plot(curve["passes"], curve["robust_val_acc"], label=f"{name} (n={n})", **arm_style(i))
    ax.axhline(summary["target"], color="black", linestyle="--", linewidth=1, label="target")
    ax.set_xlabel("gradient passes (images)")
    ax.set_ylabel("robust validation accuracy")
    _legend(fig, ax)
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
    for i, (arm, points) in enumerate(sweep["points"].items()):
        fixed = arm in sweep["fixed"]
        style = arm_style(i, markers=_LINE_MARKERS if fixed else _POINT_MARKERS)
        if not fixed:
            style["linestyle"] = "none"
        ax.plot([p["passes"] for p in points], [p["robust_acc"] for p in points], label=arm,
                markersize=6 if fixed else 12, **style)  # fmt: skip
    front = sweep["frontier"]
    ax.step([p["passes"] for p in front], [p["robust_acc"] for p in front], where="post",
            color="black", linestyle="--", linewidth=1, label="fixed-shape frontier")  # fmt: skip
    ax.set_xlabel("total passes spent (training, monitor, finder, overheads)")
    ax.set_ylabel("best-checkpoint robust test accuracy")
    _legend(fig, ax)
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
    """The lr (and momentum, if it changes) of ``policy`` over ``steps`` steps (the paper's
    figs 6-11); for a metric-driven policy also the metrics it read.

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
    panels = ["lr"]
    if len({m for m in momentum if m is not None}) > 1:
        panels.append("momentum")
    if policy.needs_metric and metrics is not None:
        panels.append("metric")
    fig = _new_figure((7, 1.2 + 1.9 * len(panels)))
    grid = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    axes = dict(zip(panels, grid, strict=True))
    axes["lr"].plot(t, [h.lr for h in hypers], label="lr")
    axes["lr"].set_ylabel("learning rate")
    if "momentum" in axes:
        axes["momentum"].plot(t, [math.nan if m is None else m for m in momentum],
                              color="tab:orange")  # fmt: skip
        axes["momentum"].set_ylabel("momentum")
    if "metric" in axes and metrics is not None:
        # metrics[i] is what step i + 1's lr was decided on
        axes["metric"].plot(t[1:], [float(m) for m in metrics[: steps - 1]], color="tab:green")
        axes["metric"].set_ylabel("metric read")
    axes[panels[-1]].set_xlabel("evaluation" if policy.needs_metric else "step")
    # A policy's repr is long: wrapped, so that no side of it is cut off.
    axes["lr"].set_title(textwrap.fill(title or repr(policy), width=80), fontsize="small")
    save_png(fig, path)
    return fig


#: Arms beyond the colour cycle's ten colours take the next line style (and marker), so that
#: no two arms of a figure look alike.
_LINESTYLES = ("-", "--", ":", "-.")
_CURVE_MARKERS = (".", "x", "+", "1")
_LINE_MARKERS = ("o", "s", "^", "v")
_POINT_MARKERS = ("*", "P", "X", "D")
#: A legend of more entries than this goes outside the axes, where it hides no curve.
LEGEND_INSIDE_MAX = 5


def arm_style(i: int, *, markers: Sequence[str] = _CURVE_MARKERS) -> dict[str, Any]:
    """The ``i``-th arm's colour, line style and marker: the ten colours of the cycle, then
    the same colours with the next line style and marker."""
    round_ = (i // 10) % len(_LINESTYLES)
    return {"color": f"C{i % 10}", "linestyle": _LINESTYLES[round_], "marker": markers[round_]}


def _legend(fig: Figure, ax: Any) -> None:
    """The axes' legend: inside for a few entries, outside on the right for many."""
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) <= LEGEND_INSIDE_MAX:
        ax.legend(fontsize="small")
    else:
        fig.legend(handles, labels, loc="outside right upper", fontsize="small")


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A constrained-layout Figure; matplotlib is imported here, on first use (module docstring)."""
    with needs_extra("drawing figures"):
        from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def save_png(fig: Figure, path: str | Path, *, run_file: bool = False) -> None:
    """Save a PNG atomically: a crash never leaves a half-written image under the final name.
    A path that cannot be written (a folder, a place no file can be made, a file of a run
    unless ``run_file``: the run writing its own) is a ``ValueError`` naming it, before it is
    written."""
    check_output_path(path, "path", run_file=run_file)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
