"""``accelat``: train, evaluate and compare learning-rate policies for adversarial training.

Subcommands::

    accelat demo [--out DIR]                 # compare 4 policies on digits, ~1 min on a CPU
    accelat train --dataset digits --method free --eps 0.1 --policy accelat --out runs/a
    accelat compare --policies constant,step,onecycle,accelat --seeds 0,1 --out runs/cmp
    accelat lr-find --dataset digits --method free --eps 0.1 --out runs/lr
    accelat eval --checkpoint runs/a --attacks linfpgd,fgsm,deepfool --eps 0.05,0.1
    accelat plot-policy --policy onecycle --steps 1000 --out onecycle.png

Also ``python -m accelat_train ...``; DDP training on N processes (GPUs, or gloo on CPU)::

    torchrun --nproc_per_node N -m accelat_train.cli train --dataset cifar10 ... --out runs/ddp

Every run flag comes from a :class:`~accelat_train.config.TrainConfig` field (its type,
default and help), so ``accelat train --help`` lists them all with their defaults. Invalid
flags are rejected before any work with exit code 2; a run stopped by a NaN/inf loss exits
with code 3.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from accelat_core import from_config
from accelat_train.adversarial.attacks import ATTACK_NAMES
from accelat_train.adversarial.evaluation import as_tensors, eval_subset, evaluate_test
from accelat_train.catalogue import CATALOGUE, POLICY_NAMES
from accelat_train.checkpoint import CheckpointError
from accelat_train.compare import compare, stderr_log
from accelat_train.config import (
    NONNEGATIVE,
    POSITIVE,
    TrainConfig,
    check_policy_config,
    names,
    parse_eps,
    parse_lr_max,
)
from accelat_train.reporting import plots, tables
from accelat_train.run_dir import RunDir, read_json
from accelat_train.trained import load_run
from accelat_train.training import distributed
from accelat_train.training.build import build, resolve_device
from accelat_train.training.events import Callback
from accelat_train.training.loop import TrainingDiverged, train
from accelat_train.training.lr_range import find_lr

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM

DEMO_POLICIES = "constant,step,onecycle,accelat"
#: ``accelat demo``: a small CNN on digits, sized to finish in about a minute on two cores.
DEMO_DEFAULTS = {
    "model": "cnn",
    "method": "free",
    "eps": 0.1,
    "epochs": 8,
    "batch_size": 64,
    "eval_steps": 10,
    "monitor_steps": 3,
    "device": "cpu",
    # A model this small runs fastest on one thread (and shares the machine).
    "threads": 1,
}
#: Fields each subcommand sets itself (per run, or plural in compare).
_OWN_FLAGS = ("policy", "policy_config", "seed", "out", "lr_find")
_FORMATTER = argparse.ArgumentDefaultsHelpFormatter


# -- the parser, derived from TrainConfig -------------------------------------------------------
def _add_field(group: argparse._ArgumentGroup, f: dataclasses.Field, **override: Any) -> None:
    meta = {k: v for k, v in f.metadata.items() if k != "flag"}
    meta.update(override)
    if meta.get("action") is None and "type" not in meta and "choices" not in meta:
        meta["type"] = str
    group.add_argument("--" + f.name.replace("_", "-"), default=f.default, **meta)


def _run_flags(defaults: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """Flags shared by train, compare, lr-find and demo: one per TrainConfig field."""
    p = argparse.ArgumentParser(add_help=False, formatter_class=_FORMATTER)
    g = p.add_argument_group("run")
    for f in dataclasses.fields(TrainConfig):
        if f.name not in _OWN_FLAGS and f.metadata.get("flag", True):
            _add_field(g, f)
    g.add_argument("--policy-config", help="JSON file with an accelat_core policy config")
    g.add_argument("--threads", type=POSITIVE, help="CPU threads for torch (None: torch's)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    if defaults:
        p.set_defaults(**defaults)
    return p


def _field(name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(TrainConfig) if f.name == name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accelat",
        description="Train, evaluate and compare learning-rate policies for adversarial training.",
        epilog="Start with: accelat demo --out accelat-demo",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = _run_flags()

    def command(name: str, help: str, parents: list[argparse.ArgumentParser]) -> Any:
        return sub.add_parser(name, parents=parents, help=help, formatter_class=_FORMATTER)

    t = command("train", "train one run", [run])
    own = t.add_argument_group("this run")
    _add_field(own, _field("policy"))
    _add_field(own, _field("seed"))
    own.add_argument("--out", required=True, help="run directory")
    own.add_argument("--resume", action="store_true", help="continue the run in --out")

    c = command("compare", "train several policies, same budget", [run])
    _comparison_flags(c, out_default=None)

    f = command("lr-find", "lr range test on the adversarial loss", [run])
    _add_field(f, _field("seed"))
    f.add_argument("--out", required=True, help="directory for lr_find.png")

    _eval_flags(command("eval", "robust evaluation of a trained run on its test set", []))

    pp = command("plot-policy", "plot a policy's lr (and momentum) shape", [])
    pp.add_argument("--policy", choices=POLICY_NAMES, default="onecycle", help="policy name")
    pp.add_argument("--policy-config", help="JSON file with an accelat_core policy config")
    pp.add_argument("--steps", type=POSITIVE, default=1000, help="steps to plot")
    pp.add_argument("--lr-max", type=parse_lr_max, default=0.1, help="peak lr")
    pp.add_argument("--out", required=True, help="PNG path")

    d = command(
        "demo",
        "compare constant, step, onecycle and accelat on digits (CPU, ~1 min)",
        [_run_flags(DEMO_DEFAULTS)],
    )
    _comparison_flags(d, out_default="accelat-demo")
    return parser


def _comparison_flags(p: argparse.ArgumentParser, *, out_default: str | None) -> None:
    p.add_argument(
        "--policies", type=names(POLICY_NAMES), default=DEMO_POLICIES.split(","),
        help="comma list of policies",
    )  # fmt: skip
    p.add_argument("--seeds", type=_seed_list, default=[0], help="comma list of seeds")
    p.add_argument("--target", type=float, help="robust val acc target (None: 95%% of best)")
    p.add_argument("--out", required=out_default is None, default=out_default, help="directory")


def _eval_flags(e: argparse.ArgumentParser) -> None:
    e.add_argument("--checkpoint", required=True, help="run directory or a checkpoint in one")
    e.add_argument(
        "--which", choices=("last", "best"), default="last",
        help="with a run directory: its last epoch (checkpoint.pt) or best.pt",
    )  # fmt: skip
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--attacks", type=names(ATTACK_NAMES), default=["linfpgd"], help="comma list")
    e.add_argument("--eps", type=_eps_list, help="comma list (None: the run's eps)")
    e.add_argument("--steps", type=POSITIVE, default=20, help="attack steps")
    e.add_argument("--eval-size", type=POSITIVE, help="test images (None: all)")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    e.add_argument("--data-dir", help="where the run's data lie now (None: as trained)")


def _eps_list(text: str) -> list[float]:
    return [parse_eps(t) for t in text.split(",") if t.strip()]


def _seed_list(text: str) -> list[int]:
    return [NONNEGATIVE(t) for t in text.split(",") if t.strip()]


# -- turning flags into a config ----------------------------------------------------------------
def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrainConfig:
    """The run's TrainConfig, validated once as it is made; every problem is a
    ``parser.error`` (exit 2) naming the flag."""
    if args.data_dir is not None and not Path(args.data_dir).expanduser().exists():
        parser.error(f"--data-dir {args.data_dir}: no such file or directory")
    if args.dataset != "digits" and args.data_dir is None and not args.download:
        parser.error(f"--dataset {args.dataset} needs --data-dir (or --download)")
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if hasattr(args, f.name) and f.name not in ("policy_config", "lr_find")
    }
    values["attacks"] = tuple(values["attacks"])
    if args.policy_config is not None:
        values["policy_config"] = _read_policy_config(args.policy_config, parser)
    try:
        cfg = TrainConfig(**values)
        resolve_device(cfg.device)
    except ValueError as exc:
        parser.error(_as_flags(str(exc)))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return cfg


def _as_flags(message: str) -> str:
    """A TrainConfig error in the command line's words: ``eps must ...`` -> ``--eps must ...``."""
    name = message.split(" ", 1)[0]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return "--" + name.replace("_", "-") + message[len(name) :] if name in fields else message


def _read_policy_config(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    try:
        config = read_json(Path(path))
        check_policy_config(config)
    except ValueError as exc:
        parser.error(f"--policy-config {path}: {exc}")
    return config


# -- subcommands --------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    cfg = config_from_args(args, parser)
    if cfg.device in ("cpu", "auto") and not torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
    run_dir = RunDir(train(cfg, callbacks=args.callbacks, quiet=args.quiet, resume=args.resume))
    if run_dir.report.exists():
        report = read_json(run_dir.report)
        final, stopped = report["final"], report.get("stopped") or {}
        print(
            f"{run_dir.path}: clean {final['clean_acc']:.3f}, robust {final['robust_acc']:.3f} "
            f"({cfg.attacks[0]}, eps {cfg.eps:.4g}); stopped after epoch "
            f"{stopped.get('epoch')}: {stopped.get('message') or stopped.get('reason')}"
        )
    return 0


def cmd_lr_find(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    cfg = config_from_args(args, parser)
    out = RunDir(args.out)
    out.create()
    finding = find_lr(build(cfg))
    record = finding.record()
    print(
        f"lr_max {finding.lr_max:.4g}  lr_min {finding.lr_min:.4g}  "
        f"(method {record['method']}, {finding.steps} steps, {finding.passes} passes)"
    )
    png = finding.plot(out.lr_find_plot)
    if png is not None:
        print(png)
    return 0


def cmd_compare(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    base = config_from_args(args, parser)
    if base.policy_config is not None:
        parser.error("--policy-config does not apply to compare; it takes --policies")
    start = time.perf_counter()
    summary = compare(
        base, args.policies, args.seeds, args.out, target=args.target, quiet=args.quiet,
        log=None if args.quiet else stderr_log,
    )  # fmt: skip
    out = Path(args.out)
    print(tables.format_table(summary))
    print(tables.format_totals(summary))
    print(
        f"wrote {out / 'compare.json'} and {out / 'compare.png'} "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return 0


def cmd_eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        run = load_run(
            args.checkpoint, args.which, device=resolve_device(args.device),
            data_dir=args.data_dir,
        )  # fmt: skip
    except CheckpointError as exc:
        parser.error(f"--checkpoint: {exc}")
    x, y = eval_subset(*_full_test(run), args.eval_size)
    eps = args.eps or [float(run.config["eps"])]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        result = evaluate_test(run.model, x, y, args.attacks, eps, steps=args.steps)
    result = {"checkpoint": str(run.checkpoint), "epoch": run.epoch, "images": len(y), **result}
    print(json.dumps(result, indent=2) if args.json else eval_table(result))
    return 0


def eval_table(result: dict[str, Any]) -> str:
    """``accelat eval``'s result as an aligned table: one row per attack (and worst case),
    one column per eps."""
    eps = list(next(iter(result["attacks"].values())))
    rows = [(name, [accs[e] for e in eps]) for name, accs in result["attacks"].items()]
    if "worst_case" in result and len(rows) > 1:
        rows.append(("worst case", [result["worst_case"][e] for e in eps]))
    width = max(len("attack"), *(len(name) for name, _ in rows))
    lines = [
        f"{result['checkpoint']} (epoch {result['epoch']}), {result['images']} test images",
        f"clean accuracy {100 * result['clean_acc']:.1f} %",
        f"{'attack':<{width}}  " + "  ".join(f"eps {float(e):<8.4g}" for e in eps),
    ]
    for name, accs in rows:
        lines.append(f"{name:<{width}}  " + "  ".join(f"{100 * a:>10.1f} %" for a in accs))
    return "\n".join(lines)


def _full_test(run: Any) -> tuple[Any, Any]:
    return as_tensors(run.splits.test, next(run.model.parameters()).device)


def cmd_plot_policy(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.policy_config is not None:
        try:
            policy = from_config(_read_policy_config(args.policy_config, parser))
        except (ValueError, TypeError) as exc:
            parser.error(f"--policy-config {args.policy_config}: {exc}")
    else:
        lr_max = 0.1 if args.lr_max == "auto" else float(args.lr_max)
        entry = CATALOGUE[args.policy]
        policy = entry.build(lr_max, total_steps=args.steps, epochs=args.steps)
    metrics = None
    if policy.needs_metric:
        # An illustrative saturating accuracy curve (the policy needs one metric per step).
        metrics = [0.6 * (1 - math.exp(-i / max(1, args.steps / 8))) for i in range(args.steps)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plots.plot_policy(policy, args.steps, out, metrics=metrics)
    print(out)
    return 0


COMMANDS = {
    "train": cmd_train,
    "compare": cmd_compare,
    "lr-find": cmd_lr_find,
    "eval": cmd_eval,
    "plot-policy": cmd_plot_policy,
    "demo": cmd_compare,
}


class Terminated(Exception):
    """SIGTERM (what a cluster scheduler sends) arrived: end like Ctrl-C does."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def interrupted(args: argparse.Namespace) -> str:
    """The one line an interrupted command prints: where the run stands, how to go on."""
    again = "accelat " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.command != "train":
        return f"interrupted; run the same command again to continue: {again}"
    folder = RunDir(args.out)
    epoch = folder.checkpoint_epoch()
    if epoch == "none yet":
        return f"interrupted before the first checkpoint in {folder.path}; start it again"
    if not args.resume:
        again += " --resume"
    return (
        f"interrupted; the last checkpoint is {folder.checkpoint} (epoch {epoch}); "
        f"continue with: {again}"
    )


def main(argv: list[str] | None = None, *, callbacks: Sequence[Callback] = ()) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); its exit code.
    ``callbacks`` listen to ``accelat train``'s loop, after the built-in listeners."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.callbacks = list(callbacks)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code = _run(args, parser)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if distributed.launched_as_rank():
        distributed.exit_rank(code)  # past gloo's teardown crash at interpreter exit
    return code


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    sub = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr]
    try:
        code = COMMANDS[args.command](args, sub)
        if args.command == "demo":
            print(f"demo figure: {Path(args.out) / 'compare.png'}")
        return code
    except TrainingDiverged as exc:
        print(f"accelat {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except ValueError as exc:
        # Problems only found once the data or a run dir is read (bad layout, resume mismatch,
        # a folder in use, a full disk).
        print(f"accelat {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated) as exc:
        print(f"accelat {args.command}: {interrupted(args)}", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
