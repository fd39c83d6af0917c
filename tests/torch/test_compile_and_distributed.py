"""Tensor hyperparameters under torch.compile, and metric averaging over DDP ranks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from accelat_core import AccelAT, OneCycle
from accelat_torch import PlateauPolicyScheduler, PolicyScheduler


def run_adam(w: torch.Tensor, opt: torch.optim.Optimizer, step, steps: int) -> None:
    sched = PolicyScheduler(opt, OneCycle(0.1, steps))
    for _ in range(steps):
        w.grad = torch.linspace(-1.0, 1.0, w.numel())
        step()
        sched.step()


@pytest.mark.slow
def test_compiled_optimizer_step_sees_new_tensor_lr_without_recompiling():
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    w = torch.zeros(4, requires_grad=True)
    betas = (torch.tensor(0.9), torch.tensor(0.999))
    opt = torch.optim.Adam([w], lr=torch.tensor(0.1), betas=betas, foreach=False)
    run_adam(w, opt, torch.compile(opt.step, backend=counter), steps=8)

    eager_w = torch.zeros(4, requires_grad=True)
    eager = torch.optim.Adam([eager_w], lr=0.1, foreach=False)
    run_adam(eager_w, eager, eager.step, steps=8)

    assert counter.frame_count == 1, "a new lr / beta1 must not trigger a recompile"
    torch.testing.assert_close(w, eager_w)  # and the compiled step used every new value
    assert w.ne(0).all()


# -- DDP -------------------------------------------------------------------------------------
RANK_METRICS = [
    [0.30, 0.50, 0.60, 0.64, 0.66, 0.70, 0.70, 0.71, 0.72, 0.72],
    [0.34, 0.40, 0.62, 0.63, 0.69, 0.66, 0.71, 0.70, 0.73, 0.71],
]
POLICY = {"lr_max": 0.1, "lr_min": 0.001, "min_gain": 0.03, "factor": 0.5, "window": 2}

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch, torch.distributed as dist
    from accelat_core import AccelAT
    from accelat_torch import PlateauPolicyScheduler

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    metrics, policy = json.loads(sys.argv[1])[rank], json.loads(sys.argv[2])
    trajectories = {}
    for sync in ("auto", False):
        opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
        sched = PlateauPolicyScheduler(opt, AccelAT(**policy), sync_metric=sync)
        lrs = []
        for m in metrics:
            sched.step(torch.tensor(m))
            lrs.append(opt.param_groups[0]["lr"])
        trajectories[str(sync)] = lrs
    print(json.dumps(trajectories), flush=True)
    dist.barrier()
    dist.destroy_process_group()
    # gloo can abort in interpreter teardown after a clean destroy (see
    # accelat_train.training.distributed.exit_rank); this test is about the metric sync, not that.
    os._exit(0)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_ranks_fed_different_metrics_follow_the_mean_metric_trajectory():
    port = str(free_port())
    procs = []
    for rank in range(2):
        env = dict(
            os.environ,
            RANK=str(rank),
            WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            OMP_NUM_THREADS="1",
        )
        args = [sys.executable, "-c", WORKER, json.dumps(RANK_METRICS), json.dumps(POLICY)]
        procs.append(
            subprocess.Popen(
                args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    rank0, rank1 = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)

    # torch.tensor(m) is float32 on each rank; the mean of those values is what syncs.
    f32 = [[float(torch.tensor(m)) for m in ms] for ms in RANK_METRICS]
    reference = AccelAT(**POLICY)
    expected = [reference.step((a + b) / 2).lr for a, b in zip(*f32, strict=True)]
    assert reference.decisions, "the mean metrics must trigger at least one cut"
    assert rank0["auto"] == rank1["auto"] == expected
    # Without syncing each rank follows its own metric, and here they disagree.
    assert rank0["False"] != rank1["False"]


def test_sync_metric_true_without_a_process_group_raises():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = PlateauPolicyScheduler(opt, AccelAT(**POLICY), sync_metric=True)
    with pytest.raises(RuntimeError, match="sync_metric=True needs an initialised"):
        sched.step(0.5)
