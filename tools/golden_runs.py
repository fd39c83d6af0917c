"""A refactoring aid, not a test: record fixed-seed CPU runs before a change, check after.

    python -m tools.golden_runs record before.json    # on the code before the change
    python -m tools.golden_runs check before.json     # on the code after it

What is compared: each run's ``metrics.jsonl`` rows and ``report.json`` without their
``seconds`` fields, and a sha256 of the final weights in ``checkpoint.pt``; for ``compare``,
``compare.json`` without its seconds fields and every run's weights. Keys that the recording
lacks (added since) are not compared. The floats are this machine's: another CPU, or torch
choosing other kernels (``ATEN_CPU_CAPABILITY``), records other values, so a record is only
good for the machine it was made on; the test suite compares runs in-process instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

COMMON = [
    "--dataset", "digits", "--eps", "0.1", "--batch-size", "50", "--train-size", "300",
    "--val-size", "60", "--monitor-size", "60", "--monitor-steps", "2", "--eval-size", "60",
    "--eval-steps", "3", "--device", "cpu", "--quiet", "--threads", "1", "--epochs", "4",
]  # fmt: skip

#: The defaults these fixed-shape runs were recorded with (the defaults have changed since:
#: a fixed shape trains the same under any monitor, but logs the monitor's name and value).
RECORDED = ["--monitor", "robust_val_acc", "--lr-find-steps", "100"]

#: name -> (extra flags of ``accelat train``, resumed through a NaN stop at epoch 3)
TRAIN_RUNS: dict[str, tuple[list[str], bool]] = {
    "free-accelat": (["--method", "free", "--replays", "2", "--policy", "accelat",
                      "--lr-max", "0.05", "--window", "1"], False),
    "free-step": ([*RECORDED, "--method", "free", "--replays", "2", "--policy", "step",
                   "--lr-max", "0.05"], False),
    "free-plateau": (["--method", "free", "--replays", "2", "--policy", "plateau",
                      "--lr-max", "0.05", "--window", "1"], False),
    "free-auto": ([*RECORDED, "--method", "free", "--replays", "2", "--policy", "onecycle",
                   "--lr-max", "auto", "--lr-find-steps", "20"], False),
    "fgsm-rs": ([*RECORDED, "--method", "fgsm-rs", "--policy", "onecycle", "--lr-max", "0.05",
                 "--co-check"], False),
    "pgd": ([*RECORDED, "--method", "pgd", "--pgd-steps", "2", "--policy", "cyclical",
             "--lr-max", "0.05"], False),
    "resumed": ([*RECORDED, "--method", "free", "--replays", "2", "--policy", "restarts",
                 "--lr-max", "0.05"], True),
    "early-stop": (["--method", "free", "--replays", "2", "--policy", "accelat", "--lr-max",
                    "0.05", "--window", "1", "--early-stop", "1", "--log", "csv"], True),
}  # fmt: skip

COMPARE = ["--method", "free", "--replays", "2", "--policies", "step,accelat", "--seeds", "0,1",
           "--lr-max", "auto", "--lr-find-steps", "20"]  # fmt: skip

DDP = ["--method", "free", "--replays", "2", "--policy", "accelat", "--lr-max", "0.05",
       "--window", "1"]  # fmt: skip


def _cli(args: list[str], nan_at: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "accelat_train.cli", *args]
    if nan_at is not None:
        cmd = [sys.executable, "-m", "tools.golden_runs", "nan", nan_at, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _strip(value: Any) -> Any:
    """``value`` without any key that names seconds (timings differ run to run)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if "seconds" not in k and k != "out"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _weights(run_dir: Path) -> str:
    import torch

    state = torch.load(run_dir / "checkpoint.pt", weights_only=True, map_location="cpu")
    digest = hashlib.sha256()
    for name, tensor in sorted(state["model"].items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _run_record(run_dir: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    report = json.loads((run_dir / "report.json").read_text())
    report["config"] = {k: v for k, v in report["config"].items() if k not in ("out", "data_dir")}
    return {"metrics": _strip(rows), "report": _strip(report), "weights": _weights(run_dir)}


def _ok(done: subprocess.CompletedProcess) -> None:
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr[-3000:]}")


def run_train(name: str, base: Path) -> dict[str, Any]:
    extra, resumed = TRAIN_RUNS[name]
    out = base / name
    args = ["train", *COMMON, *extra, "--out", str(out)]
    if resumed:
        stopped = _cli(args, nan_at="3:2")
        assert stopped.returncode == 3, stopped.stderr[-2000:]
        args.append("--resume")
    _ok(_cli(args))
    return _run_record(out)


def run_compare(base: Path) -> dict[str, Any]:
    out = base / "compare"
    _ok(_cli(["compare", *COMMON, *COMPARE, "--out", str(out)]))
    summary = json.loads((out / "compare.json").read_text())
    weights = {
        f"{p}/seed{s}": _weights(out / p / f"seed{s}") for p in ("step", "accelat") for s in (0, 1)
    }
    return {"compare": _strip(_drop_paths(summary)), "weights": weights}


def run_ddp(base: Path) -> dict[str, Any]:
    out = base / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1"]
    cmd += ["--nproc_per_node", "2", "-m", "accelat_train.cli", "train", *COMMON, *DDP]
    cmd += ["--out", str(out)]
    _ok(subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600))
    return _run_record(out)


def _drop_paths(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_paths(v) for k, v in value.items() if k not in ("run", "runs", "out")}
    if isinstance(value, list):
        return [_drop_paths(v) for v in value]
    return value


def collect(base: Path) -> dict[str, Any]:
    records = {name: run_train(name, base) for name in TRAIN_RUNS}
    records["compare"] = run_compare(base)
    records["ddp"] = run_ddp(base)
    return records


def _differences(got: Any, want: Any, where: str = "") -> list[str]:
    """Where ``got`` differs from ``want`` (keys ``want`` lacks are not compared)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: {got!r} is not a dict"]
        return [
            d
            for key, value in want.items()
            for d in (
                _differences(got[key], value, f"{where}/{key}")
                if key in got
                else [f"{where}/{key} is missing"]
            )
        ]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: {got!r} != {want!r}"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in _differences(g, w, f"{where}[{i}]")
        ]
    return [] if got == want else [f"{where}: {got!r} != {want!r}"]


def _train_with_nan(spec: str, argv: list[str]) -> int:
    """``accelat train ARGV`` with NaN weights from minibatch ``epoch:batch`` on (a listener)."""
    import torch

    from accelat_train.callbacks.callback import Callback
    from accelat_train.cli import EXIT_DIVERGED, build_parser, config_from_args
    from accelat_train.training.loop import TrainingDiverged, train

    epoch, batch = (int(v) for v in spec.split(":"))

    class NanAt(Callback):
        def on_train_batch_begin(self, trainer: Any, b: int) -> None:
            if (trainer.state.epoch + 1, b) == (epoch, batch):
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))

    parser = build_parser()
    args = parser.parse_args(argv)
    sub = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    cfg = config_from_args(args, sub)
    try:
        train(cfg, callbacks=[NanAt()], quiet=True, resume=args.resume)
    except TrainingDiverged:
        return EXIT_DIVERGED
    return 0


if __name__ == "__main__":
    verb, arg, *rest = sys.argv[1:]
    if verb == "nan":
        sys.exit(_train_with_nan(arg, rest))
    with tempfile.TemporaryDirectory() as tmp:
        data = json.loads(json.dumps(collect(Path(tmp))))
    if verb == "record":
        Path(arg).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"wrote {arg}")
    else:
        problems = _differences(data, json.loads(Path(arg).read_text()))
        print("\n".join(problems[:50]) or "every recorded value matches")
        sys.exit(1 if problems else 0)
