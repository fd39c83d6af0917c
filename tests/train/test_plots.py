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
    policy = AccelAT(lr_max=0.1, lr_min=0.001, min_gain=0.01, factor=0.5, window=2)
    metrics = [0.5, 0.6, 0.7, 0.75, 0.75, 0.75]
    fig = plots.plot_policy(policy, 7, tmp_path / "accelat.png", metrics=metrics)
    # lr before any step, then after each evaluation: the plateau (gain 0 < 0.01 over the
    # last 2 evaluations) at the 6th evaluation halves it
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [0.1] * 6 + [0.05]
    assert policy.evaluations == 0  # plotted on a copy
    assert (tmp_path / "accelat.png").stat().st_size > 1000


def test_plot_policy_metric_driven_without_metrics_is_an_error(tmp_path):
    policy = AccelAT(lr_max=0.1, lr_min=0.001, min_gain=0.01, factor=0.5, window=2)
    with pytest.raises(ValueError, match=r"AccelAT is metric-driven.*steps - 1 = 4.*got none"):
        plots.plot_policy(policy, 5, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_policy_rejects_nonpositive_steps(tmp_path):
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 1000000\], got 0"):
        plots.plot_policy(StepDecay(0.1, milestones=[3]), 0, tmp_path / "x.png")
