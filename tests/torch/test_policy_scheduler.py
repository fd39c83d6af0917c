"""PolicyScheduler: the values it writes, torch twins, groups, momentum, errors and resume."""

from __future__ import annotations

import io
import json
import warnings

import pytest
import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingWarmRestarts,
    CyclicLR,
    LRScheduler,
    OneCycleLR,
    ReduceLROnPlateau,
)

from accelat_core import (
    AccelAT,
    Constant,
    Cyclical,
    ExponentialDecay,
    OneCycle,
    StepDecay,
    WarmRestarts,
    join,
)
from accelat_torch import PlateauPolicyScheduler, PolicyScheduler, scheduler_for

ACCURACIES = [0.30, 0.45, 0.55, 0.60, 0.61, 0.61, 0.62, 0.62, 0.62, 0.70, 0.70, 0.70, 0.70]


def accelat() -> AccelAT:
    return AccelAT(lr_max=0.1, min_lr=0.001, min_gain=0.02, factor=0.5, window=2)


def lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


# -- values follow the core exactly --------------------------------------------------------
@pytest.mark.parametrize(
    "make_policy",
    [
        lambda: ExponentialDecay(0.1, rate=0.9),
        lambda: StepDecay(0.1, milestones=[3, 7], factor=0.5),
        lambda: OneCycle(0.1, total_steps=30),
        lambda: Cyclical(0.01, 0.1, step_size_up=4),
        lambda: WarmRestarts(0.1, period=5, period_mult=2.0),
    ],
)
def test_fixed_policy_lr_and_momentum_equal_the_core_at_every_step(make_sgd, make_policy):
    opt = make_sgd((0.5,), momentum=0.5)
    sched = PolicyScheduler(opt, make_policy())
    reference = make_policy()
    for t in range(40):
        expected = reference.at(t)
        assert opt.param_groups[0]["lr"] == expected.lr
        assert sched.get_last_lr() == [expected.lr]
        if expected.momentum is not None:
            assert opt.param_groups[0]["momentum"] == expected.momentum
        sched.step()


def test_metric_policy_lr_equals_a_core_accelat_fed_the_same_metrics(make_sgd):
    opt = make_sgd((0.1,))
    sched = PlateauPolicyScheduler(opt, accelat())
    reference = accelat()
    for acc in ACCURACIES:
        sched.step(torch.tensor(acc, dtype=torch.float64))
        assert lrs(opt) == [reference.step(acc).lr]
    assert sched.policy.decisions == reference.decisions
    assert reference.decisions  # the metrics above do trigger cuts


def test_initial_lr_is_the_policy_current_lr_times_each_group_ratio(make_sgd):
    policy = OneCycle(1.0, total_steps=10)
    for _ in range(3):
        policy.step()
    opt = make_sgd((0.2, 0.02, 0.2), momentum=0.9)
    PolicyScheduler(opt, policy)
    lr = OneCycle(1.0, total_steps=10).at(3).lr
    assert lrs(opt) == [lr, lr * 0.02 / 0.2, lr]


# -- torch's own schedulers ----------------------------------------------------------------
@pytest.mark.parametrize(("three_phase", "anneal"), [(False, "cos"), (True, "linear")])
def test_one_cycle_equals_torch_one_cycle_lr_in_lr_and_momentum(make_sgd, three_phase, anneal):
    total = 50
    ours, theirs = make_sgd((0.1,), momentum=0.9), make_sgd((0.1,), momentum=0.9)
    sched = PolicyScheduler(
        ours, OneCycle(0.4, total, pct_start=0.3, three_phase=three_phase, anneal=anneal)
    )
    twin = OneCycleLR(
        theirs, max_lr=0.4, total_steps=total, three_phase=three_phase, anneal_strategy=anneal
    )
    for _ in range(total - 1):  # OneCycleLR raises past total_steps - 1 steps
        assert lrs(ours) == pytest.approx(lrs(theirs), rel=1e-12, abs=0)
        assert ours.param_groups[0]["momentum"] == pytest.approx(
            theirs.param_groups[0]["momentum"], rel=1e-12
        )
        theirs.step()
        twin.step()
        sched.step()


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclical_equals_torch_cyclic_lr_in_lr_and_momentum(make_sgd, mode):
    ours, theirs = make_sgd((0.1,), momentum=0.9), make_sgd((0.1,), momentum=0.9)
    sched = PolicyScheduler(ours, Cyclical(0.01, 0.1, 3, 5, mode=mode, gamma=0.97))
    twin = CyclicLR(theirs, 0.01, 0.1, step_size_up=3, step_size_down=5, mode=mode, gamma=0.97)
    for _ in range(30):
        assert lrs(ours) == pytest.approx(lrs(theirs), rel=1e-12)
        assert ours.param_groups[0]["momentum"] == pytest.approx(
            theirs.param_groups[0]["momentum"], rel=1e-12
        )
        theirs.step()
        twin.step()
        sched.step()


def test_warm_restarts_equals_torch_cosine_annealing_warm_restarts(make_sgd):
    ours, theirs = make_sgd((0.1,)), make_sgd((0.1,))
    sched = PolicyScheduler(ours, WarmRestarts(0.1, period=4, lr_min=0.001, period_mult=2))
    twin = CosineAnnealingWarmRestarts(theirs, T_0=4, T_mult=2, eta_min=0.001)
    for _ in range(40):
        assert lrs(ours) == pytest.approx(lrs(theirs), rel=1e-9)
        theirs.step()
        twin.step()
        sched.step()


# -- param groups --------------------------------------------------------------------------
def test_param_groups_keep_their_ratio_to_the_first_group(make_sgd):
    opt = make_sgd((0.1, 0.01, 0.1, 0.0))
    sched = PolicyScheduler(opt, ExponentialDecay(0.1, rate=0.5))
    assert lrs(opt) == [0.1, 0.01, 0.1, 0.0]  # policy lr == lr_0 gives the groups' own lrs
    for _ in range(5):
        sched.step()
        lr = sched.policy.lr
        assert lrs(opt) == [lr, lr * 0.01 / 0.1, lr, 0.0]
        assert opt.param_groups[1]["lr"] == pytest.approx(lr / 10, rel=1e-15)
        assert sched.get_last_lr() == lrs(opt)


def test_first_group_with_zero_lr_is_rejected(make_sgd):
    opt = make_sgd((0.0, 0.1))
    with pytest.raises(ValueError, match=r"param_groups\[0\] lr must be > 0, got 0.0"):
        PolicyScheduler(opt, Constant(0.1))


def test_scheduler_writes_no_keys_into_param_groups(make_sgd):
    opt = make_sgd((0.1, 0.01), momentum=0.9)
    before = [set(g) for g in opt.param_groups]
    for policy in (OneCycle(0.1, 10), accelat()):
        sched = scheduler_for(opt, policy)
        for acc in ACCURACIES[:5]:
            sched.step(acc)
    assert [set(g) for g in opt.param_groups] == before
    assert all("initial_lr" not in g for g in opt.param_groups)


# -- momentum ------------------------------------------------------------------------------
OPTIMIZERS = {
    "SGD": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5),
    "RMSprop": lambda p: torch.optim.RMSprop(p, lr=0.1, momentum=0.5),
    "Adam": lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.5, 0.999)),
    "AdamW": lambda p: torch.optim.AdamW(p, lr=0.1, betas=(0.5, 0.999)),
    "NAdam": lambda p: torch.optim.NAdam(p, lr=0.1, betas=(0.5, 0.999)),
}


def momentum_of(group: dict) -> float:
    return group["betas"][0] if "betas" in group else group["momentum"]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_policy_momentum_reaches_each_optimizer_and_betas1_is_kept(name):
    w = torch.zeros(4, requires_grad=True)
    opt = OPTIMIZERS[name]([w])
    policy, reference = OneCycle(0.1, 20), OneCycle(0.1, 20)
    sched = PolicyScheduler(opt, policy)
    for t in range(20):
        group = opt.param_groups[0]
        assert momentum_of(group) == reference.at(t).momentum
        if "betas" in group:
            assert group["betas"][1] == 0.999
        w.grad = torch.ones_like(w)
        opt.step()  # the optimizer accepts what was written
        sched.step()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_policy_without_momentum_leaves_optimizer_momentum_alone(name):
    opt = OPTIMIZERS[name]([torch.zeros(2, requires_grad=True)])
    sched = PlateauPolicyScheduler(opt, accelat())
    for acc in ACCURACIES:
        sched.step(acc)
    assert momentum_of(opt.param_groups[0]) == 0.5


def test_momentum_false_never_touches_momentum(make_sgd):
    opt = make_sgd((0.1,), momentum=0.3)
    sched = PolicyScheduler(opt, OneCycle(0.1, 10), momentum=False)
    for _ in range(5):
        sched.step()
    assert opt.param_groups[0]["momentum"] == 0.3
    assert opt.param_groups[0]["lr"] == OneCycle(0.1, 10).at(5).lr


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.SGD(p, lr=0.1),
        lambda p: torch.optim.RMSprop(p, lr=0.1),
        lambda p: torch.optim.Adagrad(p, lr=0.1),
    ],
)
def test_momentum_policy_on_optimizer_without_momentum_raises_at_construction(make_opt):
    opt = make_opt([torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match=r"OneCycle drives momentum .* momentum=False"):
        PolicyScheduler(opt, OneCycle(0.1, 10))
    PolicyScheduler(opt, OneCycle(0.1, 10), momentum=False)  # the documented way out


def test_momentum_appearing_mid_run_on_optimizer_without_momentum_raises(make_sgd):
    opt = make_sgd((0.1,), momentum=0.0)
    sched = PolicyScheduler(opt, join([(Constant(0.1), 2), (OneCycle(0.1, 10), None)]))
    sched.step()
    with pytest.raises(ValueError, match="Join drives momentum"):
        sched.step()


def test_lr_reaches_the_new_param_groups_after_optimizer_load_state_dict(make_sgd):
    opt = make_sgd((0.1, 0.01))
    sched = PolicyScheduler(opt, OneCycle(0.1, 10))
    opt.load_state_dict(opt.state_dict())  # replaces the group dicts (accelerate does this)
    sched.step()
    expected = OneCycle(0.1, 10).at(1)
    assert lrs(opt) == [expected.lr, expected.lr * 0.01 / 0.1]
    assert opt.param_groups[0]["momentum"] == expected.momentum


def test_metric_policy_rewrites_its_lr_into_replaced_param_groups(make_sgd):
    opt = make_sgd((0.1,))
    sched = PlateauPolicyScheduler(opt, accelat())
    stale = make_sgd((0.7,)).state_dict()
    opt.load_state_dict(stale)  # new group dicts holding a foreign lr of 0.7
    sched.step(0.5)  # no cut: the policy's Hyper is unchanged, the groups are not
    assert lrs(opt) == [0.1]


def test_fixed_policy_ignores_a_metric(make_sgd):
    with_metric, without = make_sgd(), make_sgd()
    a = PolicyScheduler(with_metric, OneCycle(0.1, 10), sync_metric=True)
    b = PolicyScheduler(without, OneCycle(0.1, 10))
    for acc in ACCURACIES:
        a.step(acc)  # sync_metric=True would raise here if the metric were used
        b.step()
        assert lrs(with_metric) == lrs(without)


def test_param_group_added_after_construction_is_an_error(make_sgd):
    opt = make_sgd((0.1,))
    sched = PolicyScheduler(opt, OneCycle(0.1, 10))
    opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "lr": 0.5})
    with pytest.raises(ValueError, match="has 2 param groups, but this scheduler was built for 1"):
        sched.step()


# -- tensor hyperparameters ----------------------------------------------------------------
def test_tensor_lr_and_betas_are_filled_in_place():
    w = torch.zeros(2, requires_grad=True)
    lr, b1, b2 = torch.tensor(0.1), torch.tensor(0.9), torch.tensor(0.999)
    opt = torch.optim.Adam([w], lr=lr, betas=(b1, b2), foreach=False)
    sched = PolicyScheduler(opt, OneCycle(0.1, 10))
    reference = OneCycle(0.1, 10)
    for t in range(10):
        group = opt.param_groups[0]
        assert group["lr"] is lr and group["betas"][0] is b1 and group["betas"][1] is b2
        assert lr.item() == pytest.approx(reference.at(t).lr, rel=1e-6)
        assert b1.item() == pytest.approx(reference.at(t).momentum, rel=1e-6)
        assert b2.item() == pytest.approx(0.999)
        assert sched.get_last_lr() == [reference.at(t).lr]
        w.grad = torch.ones_like(w)
        opt.step()
        sched.step()


# -- framework compatibility ---------------------------------------------------------------
def test_metric_policy_scheduler_is_a_reduce_lr_on_plateau_and_fixed_one_is_not(make_sgd):
    metric = PlateauPolicyScheduler(make_sgd(), accelat())
    fixed = PolicyScheduler(make_sgd(), OneCycle(0.1, 10))
    assert isinstance(metric, ReduceLROnPlateau) and isinstance(metric, PolicyScheduler)
    assert not isinstance(fixed, ReduceLROnPlateau) and isinstance(fixed, PolicyScheduler)
    assert isinstance(fixed, LRScheduler) and isinstance(metric, LRScheduler)


def test_policy_scheduler_with_a_metric_policy_is_deprecated_but_still_drives_it(make_sgd):
    # The pre-0.2 form keeps working until 0.4, warning with the two ways out.
    opt = make_sgd()
    with pytest.warns(DeprecationWarning, match=r"use PlateauPolicyScheduler.*scheduler_for"):
        old = PolicyScheduler(opt, accelat())
    reference = accelat()
    for acc in ACCURACIES:
        old.step(acc)
        assert lrs(opt) == [reference.step(acc).lr]
    assert reference.decisions, "the accuracies must make the rule cut for the test to mean much"


@pytest.mark.parametrize(
    ("make_policy", "cls"),
    [
        (accelat, PlateauPolicyScheduler),
        (lambda: join([(Constant(0.1), 2), (accelat(), None)]), PlateauPolicyScheduler),
        (lambda: OneCycle(0.1, 10), PolicyScheduler),
        (lambda: join([(Constant(0.1), 2), (OneCycle(0.1, 10), None)]), PolicyScheduler),
    ],
    ids=["AccelAT", "Join-to-AccelAT", "OneCycle", "Join-to-OneCycle"],
)
def test_scheduler_for_builds_the_class_the_policy_needs_with_the_given_arguments(
    make_sgd, make_policy, cls
):
    policy = make_policy()
    sched = scheduler_for(make_sgd(momentum=0.0), policy, momentum=False, sync_metric=False)
    assert type(sched) is cls and sched.policy is policy
    assert sched.sync_metric is False and sched.optimizer.param_groups[0]["momentum"] == 0.0


def test_stepping_before_the_optimizer_gives_no_torch_warning(make_sgd):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = PolicyScheduler(make_sgd(), OneCycle(0.1, 10))
        sched.step()
        sched.step()


def test_should_stop_is_the_policy_verdict(make_sgd):
    policy = AccelAT(0.1, 0.05, min_gain=0.1, factor=0.5, window=1, stop_patience=1)
    sched = PlateauPolicyScheduler(make_sgd(), policy)
    seen = []
    for acc in [0.5, 0.5, 0.5, 0.5, 0.5]:
        sched.step(acc)
        seen.append(sched.should_stop)
        assert sched.should_stop == policy.should_stop
    assert seen[-1] and not seen[0]


def test_last_decision_is_the_decision_each_step_took_and_none_otherwise(make_sgd):
    sched = PlateauPolicyScheduler(make_sgd(), accelat())
    reference = accelat()
    assert sched.last_decision is None
    for acc in ACCURACIES:
        made = len(reference.decisions)
        reference.step(acc)
        sched.step(acc)
        new = reference.decisions[made:]
        assert sched.last_decision == (new[-1] if new else None)
    assert reference.decisions  # the accuracies make it decide, at the floor too
    state = sched.state_dict()
    sched.load_state_dict(state)
    assert sched.last_decision is None


def test_last_decision_of_a_policy_that_records_none_is_none(make_sgd):
    sched = PlateauPolicyScheduler(make_sgd(), join([(accelat(), None)]))
    for acc in ACCURACIES[:5]:
        sched.step(acc)
        assert sched.last_decision is None


# -- errors --------------------------------------------------------------------------------
def test_metric_policy_stepped_without_metric_raises_naming_the_fix(make_sgd):
    sched = PlateauPolicyScheduler(make_sgd(), accelat())
    with pytest.raises(
        ValueError, match=r"AccelAT is metric-driven: call scheduler.step\(metric\)"
    ):
        sched.step()


def test_load_state_dict_from_a_different_policy_raises(make_sgd):
    saved = PolicyScheduler(make_sgd(), OneCycle(0.1, 10)).state_dict()
    sched = PlateauPolicyScheduler(make_sgd(), accelat())
    before = sched.state_dict()
    with pytest.raises(ValueError, match="'OneCycle', cannot load it into AccelAT"):
        sched.load_state_dict(saved)
    other = PolicyScheduler(make_sgd(), OneCycle(0.1, 20))
    with pytest.raises(ValueError, match="differs"):
        other.load_state_dict(saved)
    assert sched.state_dict() == before


def test_load_state_dict_for_another_number_of_groups_raises(make_sgd):
    saved = PolicyScheduler(make_sgd((0.1, 0.01)), OneCycle(0.1, 10)).state_dict()
    with pytest.raises(ValueError, match="this optimizer has 1"):
        PolicyScheduler(make_sgd(), OneCycle(0.1, 10)).load_state_dict(saved)


@pytest.mark.parametrize("bad", ["auto-ish", None, 1.5])
def test_bad_momentum_argument_is_rejected(make_sgd, bad):
    with pytest.raises(ValueError, match="momentum must be 'auto', True or False"):
        PolicyScheduler(make_sgd(), Constant(0.1), momentum=bad)


# -- resume --------------------------------------------------------------------------------
def _roundtrip_torch(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("roundtrip", [_roundtrip_torch, lambda s: json.loads(json.dumps(s))])
@pytest.mark.parametrize(
    "make_policy", [lambda: OneCycle(0.1, 30), accelat], ids=["OneCycle", "AccelAT"]
)
def test_resume_mid_run_gives_identical_trajectory(make_sgd, roundtrip, make_policy):
    metrics = ACCURACIES + ACCURACIES[::-1]
    opt = make_sgd((0.1, 0.02), momentum=0.9)
    straight = scheduler_for(opt, make_policy())
    expected = []
    for acc in metrics:
        straight.step(acc)
        expected.append((lrs(opt), opt.param_groups[0]["momentum"]))

    opt = make_sgd((0.1, 0.02), momentum=0.9)
    first = scheduler_for(opt, make_policy())
    for acc in metrics[:7]:
        first.step(acc)
    checkpoint = roundtrip({"optimizer": opt.state_dict(), "scheduler": first.state_dict()})

    opt = make_sgd((0.1, 0.02), momentum=0.9)
    resumed = scheduler_for(opt, make_policy())
    opt.load_state_dict(checkpoint["optimizer"])
    resumed.load_state_dict(checkpoint["scheduler"])
    assert resumed.last_epoch == 7
    got = []
    for acc in metrics[7:]:
        resumed.step(acc)
        got.append((lrs(opt), opt.param_groups[0]["momentum"]))
    assert got == expected[7:]


def test_load_state_dict_writes_the_restored_lr_into_the_optimizer(make_sgd):
    first = PlateauPolicyScheduler(make_sgd((0.1, 0.05)), accelat())
    for acc in ACCURACIES:
        first.step(acc)
    opt = make_sgd((0.1, 0.05))
    resumed = PlateauPolicyScheduler(opt, accelat())
    resumed.load_state_dict(first.state_dict())
    assert lrs(opt) == first.get_last_lr()
    assert lrs(opt)[0] < 0.1


# -- torch's ReduceLROnPlateau.step(metrics, epoch=None) -----------------------------------------
def test_plateau_scheduler_takes_the_metrics_keyword_as_reduce_lr_on_plateau_does(make_sgd):
    by_keyword, by_position = make_sgd(), make_sgd()
    a = PlateauPolicyScheduler(by_keyword, accelat())
    b = PlateauPolicyScheduler(by_position, accelat())
    for acc in ACCURACIES:
        a.step(metrics=acc)
        b.step(acc)
        assert lrs(by_keyword) == lrs(by_position)
    assert a.policy.state_dict() == b.policy.state_dict()


def test_plateau_scheduler_takes_an_epoch_as_torch_does_warning_and_setting_last_epoch(make_sgd):
    ours = PlateauPolicyScheduler(make_sgd(), accelat())
    torchs = ReduceLROnPlateau(make_sgd(), mode="max")
    for sched in (ours, torchs):
        with pytest.warns(UserWarning) as caught:
            sched.step(0.5, epoch=7)
        assert sched.last_epoch == 7
        sched.step(metrics=0.6)
        assert sched.last_epoch == 8
    torch_message = str(caught[0].message)
    with pytest.warns(UserWarning) as again:
        ours.step(0.7, 3)
    assert str(again[0].message) == torch_message and ours.last_epoch == 3


def test_plateau_scheduler_keeps_the_metric_keyword_of_policy_scheduler(make_sgd):
    sched = PlateauPolicyScheduler(make_sgd(), accelat())
    sched.step(metric=0.5)
    with pytest.raises(TypeError, match="metrics given twice"):
        sched.step(0.5, metric=0.5)


# -- the optimizer's lr gives way to the policy's: said, and warned when far apart ---------------
@pytest.mark.parametrize(
    ("optimizer_lr", "policy"),
    [
        (1e-3, lambda: OneCycle(0.1, total_steps=10)),  # Adam's lr next to an SGD schedule
        (1.0, lambda: Constant(0.05)),
        (0.1, lambda: accelat_at(5e-3)),
    ],
)
def test_an_optimizer_lr_far_from_the_policys_peak_is_warned_naming_both(optimizer_lr, policy):
    sgd = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=optimizer_lr, momentum=0.9)
    chosen = policy()
    peak = max(v for k, v in chosen.to_config().items() if k in ("lr", "lr_max"))
    with pytest.warns(UserWarning, match="the policy sets the optimizer's learning rate") as caught:
        # (an LRMismatchWarning, which code building at a placeholder lr on purpose filters)
        scheduler_for(sgd, chosen)
    message = str(caught[0].message)
    assert f"lr={optimizer_lr:g}" in message and f"peak lr {peak:g}" in message
    assert sgd.param_groups[0]["lr"] == chosen.lr  # the policy's value, as documented


@pytest.mark.parametrize(
    ("optimizer_lr", "policy"),
    [
        (0.1, lambda: OneCycle(0.1, total_steps=10)),  # starts at 0.1 / 25: the peak is 0.1
        (0.05, lambda: accelat()),
        (1.0, lambda: Constant(0.1)),  # a factor of 10 exactly: no warning
        (0.1, lambda: join([(Constant(0.01), 5), (OneCycle(0.1, total_steps=10), None)])),
    ],
)
def test_an_optimizer_lr_within_a_factor_of_ten_of_the_peak_is_not_warned(optimizer_lr, policy):
    sgd = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=optimizer_lr, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler_for(sgd, policy())


def accelat_at(lr_max: float) -> AccelAT:
    return AccelAT(lr_max=lr_max, lr_min=lr_max / 100, min_gain=0.02, factor=0.5, window=2)


@pytest.mark.parametrize("epoch", ["3", 2.5, True])
def test_plateau_scheduler_refuses_an_epoch_that_is_not_an_int(make_sgd, epoch):
    sched = PlateauPolicyScheduler(make_sgd(), accelat())
    with pytest.raises(TypeError, match="epoch must be an int or None"):
        sched.step(0.5, epoch=epoch)
    assert sched.last_epoch == 0
