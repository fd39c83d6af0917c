"""plots.py: the data each figure draws, read back from its Figure, and the PNG it saves."""

from __future__ import annotations

import subprocess
import sys

import pytest

from accelat_core import AccelAT, OneCycle, StepDecay
from accelat_train.reporting import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_reading_and_comparing_runs_does_not_import_matplotlib():
    # report imports plots; matplotlib must wait for the first figure (plots' docstring says why).
    code = (
        "import sys\n"
        "import accelat_train, accelat_train.reporting.report, accelat_train.reporting.plots\n"
        "import accelat_train.data, accelat_train.data.loader\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


def test_run_curves_figure_plots_lr_against_passes():
    rows = [
        {"epoch": i + 1, "lr": lr, "momentum": None, "passes": 10 * (i + 1), "train_loss": 1.0,
         "train_adv_acc": 0.1, "val_acc": 0.5, "robust_val_acc": 0.2,
         "decision": {"index": 1} if i == 1 else None}
        for i, lr in enumerate([0.1, 0.05, 0.05])
    ]  # fmt: skip
    fig = plots.run_curves_figure(rows)
    lr_line = fig.axes[0].get_lines()[0]
    assert list(lr_line.get_xdata()) == [10, 20, 30]
    assert list(lr_line.get_ydata()) == [0.1, 0.05, 0.05]
    # the cut at epoch 2 is marked on the lr panel
    assert [list(line.get_xdata()) for line in fig.axes[0].get_lines()[1:]] == [[20, 20]]


def test_plot_compare_draws_each_policys_curve_and_the_target(tmp_path):
    summary = {
        "target": 0.45,
        "policies": {
            "step": {
                "seeds": [{}, {}],
                "curve": {"passes": [1e5, 2e5], "robust_val_acc": [0.3, 0.5]},
            },
            "accelat": {
                "seeds": [{}],
                "curve": {"passes": [1e5, 2e5], "robust_val_acc": [0.5, 0.5]},
            },
        },
    }
    fig = plots.plot_compare(summary, tmp_path / "out" / "compare.png")
    png = (tmp_path / "out" / "compare.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 1000
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert set(lines) == {"step (n=2)", "accelat (n=1)", "target"}
    assert list(lines["step (n=2)"].get_xdata()) == [100_000, 200_000]
    assert list(lines["step (n=2)"].get_ydata()) == [0.3, 0.5]
    assert list(lines["accelat (n=1)"].get_ydata()) == [0.5, 0.5]
    assert list(lines["target"].get_ydata()) == [0.45, 0.45]


def test_plot_policy_draws_the_closed_form_of_a_fixed_shape_policy(tmp_path):
    policy = OneCycle.paper(0.2, total_steps=100)
    fig = plots.plot_policy(policy, 100, tmp_path / "onecycle.png")
    assert (tmp_path / "onecycle.png").read_bytes().startswith(PNG_MAGIC)
    lr_line = fig.axes[0].get_lines()[0]
    m_line = fig.axes[1].get_lines()[0]
    assert list(lr_line.get_xdata()) == list(range(100))
    assert list(lr_line.get_ydata()) == [policy.at(t).lr for t in range(100)]
    assert list(m_line.get_ydata()) == [policy.at(t).momentum for t in range(100)]
    # the paper's shape: lr_max / 10 -> lr_max at 45% -> lr_max / 10 at 90% -> lr_max / 1000
    ys = lr_line.get_ydata()
    assert ys[0] == pytest.approx(0.02)
    assert max(ys) == pytest.approx(0.2) and ys[44] == pytest.approx(0.2)
    assert ys[88] == pytest.approx(0.02)  # torch's three-phase end: 2 * 0.45 * 100 - 2
    assert ys[-1] == pytest.approx(0.0002)
    assert policy.t == 0  # the caller's policy is not advanced


def test_plot_policy_without_momentum_has_a_single_panel(tmp_path):
    policy = StepDecay(0.1, milestones=[3, 6])
    fig = plots.plot_policy(policy, 8, tmp_path / "step.png")
    assert len(fig.axes) == 1
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == pytest.approx(
        [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001]
    )


def test_plot_policy_steps_a_metric_driven_policy_on_the_given_metrics(tmp_path):
    policy = AccelAT(lr_max=0.1, min_lr=0.001, min_gain=0.01, factor=0.5, window=2)
    metrics = [0.5, 0.6, 0.7, 0.75, 0.75, 0.75]
    fig = plots.plot_policy(policy, 7, tmp_path / "accelat.png", metrics=metrics)
    # lr before any step, then after each evaluation: the plateau (gain 0 < 0.01 over the
    # last 2 evaluations) at the 6th evaluation halves it
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [0.1] * 6 + [0.05]
    assert policy.evaluations == 0  # plotted on a copy
    assert (tmp_path / "accelat.png").stat().st_size > 1000


def test_plot_policy_metric_driven_without_metrics_is_an_error(tmp_path):
    policy = AccelAT(lr_max=0.1, min_lr=0.001, min_gain=0.01, factor=0.5, window=2)
    with pytest.raises(ValueError, match=r"AccelAT is metric-driven.*steps - 1 = 4.*got none"):
        plots.plot_policy(policy, 5, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_policy_rejects_nonpositive_steps(tmp_path):
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 1000000\], got 0"):
        plots.plot_policy(StepDecay(0.1, milestones=[3]), 0, tmp_path / "x.png")


# -- what a reader sees: no flat panel, nothing cut off, no two arms alike ------------------------
def _inside(fig) -> bool:
    """Does everything drawn (titles, labels, legends) lie inside the figure?"""
    tight, page = fig.get_tightbbox(), fig.bbox_inches
    eps = 1e-6
    return (
        page.x0 - eps <= tight.x0 and page.y0 - eps <= tight.y0
        and tight.x1 <= page.x1 + eps and tight.y1 <= page.y1 + eps
    )  # fmt: skip


def _rows(momentum, robust=(0.2, 0.5, 0.4)):
    return [
        {"epoch": i + 1, "lr": 0.1, "momentum": m, "passes": 10 * (i + 1), "train_loss": 1.0,
         "train_adv_acc": 0.1, "val_acc": 0.5, "robust_val_acc": r, "decision": None}
        for i, (m, r) in enumerate(zip(momentum, robust, strict=True))
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("momentum", "panels"),
    [([0.9, 0.9, 0.9], 3), ([None, None, None], 3), ([0.95, 0.9, 0.85], 4)],
)
def test_run_curves_draw_a_momentum_panel_only_when_momentum_changes(momentum, panels):
    fig = plots.run_curves_figure(_rows(momentum), title="digits / cnn / free / constant")
    assert len(fig.axes) == panels
    assert [ax.get_ylabel() == "momentum" for ax in fig.axes].count(True) == (panels == 4)
    assert _inside(fig)


def test_run_curves_mark_the_best_validation_epoch_that_best_pt_holds():
    fig = plots.run_curves_figure(_rows([0.9] * 3, robust=(0.2, 0.5, 0.5)))
    accuracy = next(ax for ax in fig.axes if ax.get_ylabel() == "accuracy")
    (star,) = [line for line in accuracy.get_lines() if line.get_label().startswith("best.pt")]
    assert star.get_label() == "best.pt (epoch 2)"  # a tie keeps the earlier epoch
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([20], [0.5])


def test_plot_policy_wraps_a_long_title_inside_the_figure(tmp_path):
    policy = AccelAT(lr_max=0.1, lr_min=0.001, min_gain=0.01, factor=0.5, window=2)
    assert len(repr(policy)) > 150  # one line would run off both sides
    fig = plots.plot_policy(
        policy, 7, tmp_path / "a.png", metrics=[0.5, 0.6, 0.7, 0.75, 0.75, 0.75]
    )
    assert _inside(fig)
    assert fig.axes[0].get_title().replace("\n", " ") == repr(policy)
    # the metrics it read are drawn under the lr: metric i decided step i + 1's lr
    assert fig.axes[-1].get_ylabel() == "metric read"
    assert list(fig.axes[-1].get_lines()[0].get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert fig.axes[-1].get_xlabel() == "evaluation"


def test_plot_policy_of_a_long_fixed_shape_keeps_its_title_inside(tmp_path):
    fig = plots.plot_policy(OneCycle.paper(0.2, total_steps=1000), 1000, tmp_path / "o.png")
    assert _inside(fig) and len(fig.axes) == 2


def test_thirteen_arms_look_different_and_their_legend_hides_no_curve(tmp_path):
    names = [f"arm{i}" for i in range(13)]
    styles = [plots.arm_style(i) for i in range(13)]
    assert len({(s["color"], s["linestyle"]) for s in styles}) == 13
    summary = {
        "target": 0.5,
        "policies": {
            n: {"seeds": [{}], "curve": {"passes": [1, 2], "robust_val_acc": [0.1, 0.6]}}
            for n in names
        },
    }
    fig = plots.plot_compare(summary, tmp_path / "compare.png")
    (ax,) = fig.axes
    assert ax.get_legend() is None and len(fig.legends) == 1  # outside the axes
    assert _inside(fig)
    drawn = {line.get_label(): (line.get_color(), line.get_linestyle()) for line in ax.get_lines()}
    assert len({drawn[f"{n} (n=1)"] for n in names}) == 13


def test_a_few_arms_keep_their_legend_inside_the_axes(tmp_path):
    summary = {
        "target": 0.5,
        "policies": {
            n: {"seeds": [{}], "curve": {"passes": [1, 2], "robust_val_acc": [0.1, 0.6]}}
            for n in ("step", "accelat")
        },
    }
    fig = plots.plot_compare(summary, tmp_path / "compare.png")
    assert fig.axes[0].get_legend() is not None and not fig.legends and _inside(fig)


def test_the_frontier_figure_tells_its_arms_apart_and_fits(tmp_path):
    fixed = [f"fixed{i}" for i in range(2)]
    anytime = [f"anytime{i}" for i in range(11)]
    points = {a: [{"passes": 1000 * (b + i), "robust_acc": 0.5, "budget": b} for b in (5, 10)]
              for i, a in enumerate(fixed)}  # fmt: skip
    points.update({a: [{"passes": 800 + i, "robust_acc": 0.6, "budget": 10}]
                   for i, a in enumerate(anytime)})  # fmt: skip
    frontier = [{"passes": 5000, "robust_acc": 0.5}, {"passes": 10000, "robust_acc": 0.5}]
    summary = {"budgets": {"points": points, "fixed": fixed, "frontier": frontier}}
    fig = plots.plot_frontier(summary, tmp_path / "frontier.png")
    (ax,) = fig.axes
    looks = {
        line.get_label(): (line.get_color(), line.get_marker(), line.get_linestyle())
        for line in ax.get_lines()
    }
    assert len({looks[a] for a in fixed + anytime}) == 13
    assert all(looks[a][2] == "None" for a in anytime)  # points, not lines
    assert _inside(fig)
