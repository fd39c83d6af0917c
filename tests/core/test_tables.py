"""accelat_core.tables: a fixed-shape policy tabulated step by step, and its refusals.

Also the deprecated ``accelat_tables`` shim (in adapters/): it warns and re-exports the
core's objects.
"""

from __future__ import annotations

import importlib
import math
import re
import sys

import pytest

from accelat_core import (
    AccelAT,
    Constant,
    Cyclical,
    Hyper,
    OneCycle,
    Schedule,
    StepDecay,
    join,
    tables,
    warmup,
)
from accelat_core.tables import MAX_TABLE_STEPS, Table, tabulate


def test_the_table_is_at_t_for_every_step_up_to_the_horizon() -> None:
    policy = OneCycle(0.1, total_steps=20, momentum=(0.85, 0.95))
    table = tabulate(policy, owner="x")
    assert table.steps == policy.horizon == 19
    assert table.lrs == [policy.at(t).lr for t in range(20)]
    assert table.momenta == [policy.at(t).momentum for t in range(20)]
    assert table.drives_momentum() and table.first_without_momentum() is None


def test_an_explicit_steps_tabulates_that_far_even_past_the_horizon() -> None:
    policy = StepDecay(0.1, milestones=[2], factor=0.5)
    assert tabulate(policy, steps=0, owner="x") == Table(0, [0.1], [None])
    assert tabulate(policy, steps=4, owner="x").lrs == [0.1, 0.1, 0.05, 0.05, 0.05]
    cyclical = Cyclical(0.01, 0.1, step_size_up=2)
    assert tabulate(cyclical, steps=5, owner="x").lrs == [cyclical.at(t).lr for t in range(6)]


def test_momentum_columns_say_where_the_policy_stops_driving_it() -> None:
    policy = join([(OneCycle(0.1, total_steps=4), 3), (Constant(0.01), None)])
    table = tabulate(policy, steps=5, owner="x")
    assert table.momenta[:3] == [policy.at(t).momentum for t in range(3)]
    assert table.momenta[3:] == [None, None, None]
    assert table.drives_momentum() and table.first_without_momentum() == 3
    flat = tabulate(Constant(0.1), steps=2, owner="x")
    assert not flat.drives_momentum() and flat.first_without_momentum() == 0


def test_tabulating_reads_the_policy_and_never_steps_it() -> None:
    policy = warmup(Constant(0.5), steps=4)
    tabulate(policy, owner="x")
    assert policy.t == 0 and policy.lr == 0.0


class Emits(Schedule):
    """A fixed shape that emits ``lr`` from t = 1 on."""

    def __init__(self, lr: float) -> None:
        self.bad = lr
        super().__init__()

    def at(self, t: int) -> Hyper:
        return Hyper(1.0 if t == 0 else self.bad, None)

    def get_config(self) -> dict:
        return {}


@pytest.mark.parametrize(
    ("policy", "steps", "error", "message"),
    [
        (
            AccelAT(1.0, 0.1, 0.0, 0.5, window=1),
            3,
            TypeError,
            "PolicySchedule needs a fixed-shape policy (an accelat_core.Schedule), got "
            "AccelAT(lr_max=1.0, min_lr=0.1, min_gain=0.0, factor=0.5, window=1, cooldown=None, "
            "warmup=None, mode='max', gain='endpoint', stop_patience=None, nan_policy='raise') "
            "(AccelAT)",
        ),
        (
            Cyclical(0.01, 0.1, step_size_up=2),
            None,
            ValueError,
            "Cyclical has no horizon (its shape never ends), so PolicySchedule needs "
            "steps=<number of optimizer updates to tabulate>",
        ),
        (Constant(0.1), -1, ValueError, "steps must be an integer in [0, 50000000), got -1"),
        (
            Constant(0.1),
            MAX_TABLE_STEPS,
            ValueError,
            "steps must be an integer in [0, 50000000), got 50000000",
        ),
        (Constant(0.1), True, ValueError, "steps must be an integer in [0, 50000000), got True"),
        (Constant(0.1), 2.0, ValueError, "steps must be an integer in [0, 50000000), got 2.0"),
        (Emits(-1e-9), 2, ValueError, "Emits() emitted lr=-1e-09 at t=1"),
        (Emits(math.inf), 2, ValueError, "Emits() emitted lr=inf at t=1"),
        (Emits(math.nan), 2, ValueError, "Emits() emitted lr=nan at t=1"),
    ],
)
def test_what_cannot_be_tabulated_is_refused_naming_why(policy, steps, error, message) -> None:
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        tabulate(policy, steps, owner="PolicySchedule")


def test_a_zero_lr_is_tabulated() -> None:
    assert tabulate(Emits(0.0), steps=1, owner="x").lrs == [1.0, 0.0]


def test_the_deprecated_accelat_tables_shim_warns_and_re_exports_the_core_objects() -> None:
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "accelat_tables"}
    for name in saved:
        del sys.modules[name]
    try:
        message = "accelat_tables is deprecated: import Table and tabulate from accelat_core.tables"
        with pytest.warns(DeprecationWarning, match="^" + re.escape(message) + "$"):
            shim = importlib.import_module("accelat_tables")
    finally:
        sys.modules.update(saved)
    assert shim.tabulate is tables.tabulate
    assert shim.Table is tables.Table
    assert shim.MAX_STEPS == tables.MAX_TABLE_STEPS == 50_000_000
    assert sorted(shim.__all__) == ["MAX_STEPS", "Table", "tabulate"]
