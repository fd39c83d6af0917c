"""``accelat``: train, evaluate and compare learning-rate policies for adversarial training.

Subcommands::

    accelat demo [--out DIR]                 # compare 4 policies on digits, about 70 s
    accelat train --dataset digits --method free --eps 0.1 --policy accelat --out runs/a
    accelat compare --policies step,accelat,accelat:ema_epochs=2 --seeds 0,1 --out runs/cmp
    accelat compare --policies step,onecycle,accelat --budgets 5,10,20 --out runs/sweep
    accelat lr-find --dataset digits --method free --eps 0.1 --out runs/lr
    accelat eval --checkpoint runs/a --attacks linfpgd,fgsm,deepfool --eps 0.05,0.1
    accelat export runs/a --out model.pt2
    accelat plot-policy --policy onecycle --steps 1000 --out onecycle.png

Also ``python -m accelat_train ...``; DDP training on N processes (GPUs, or gloo on CPU)::

    torchrun --nproc_per_node N -m accelat_train.cli train --dataset cifar10 ... --out runs/ddp

The flags come from :mod:`accelat_train.flags`. Invalid flags are rejected before any work
with exit code 2 (so is a run folder in use or unusable, and a missing optional package); a
run stopped by a NaN/inf loss exits with 3; Ctrl-C and SIGTERM end a run cleanly with 130 and
143, printing where its last checkpoint is and the command that resumes it.

Parsing imports no torch (``accelat --help`` and ``--version`` answer at once): each command
imports what it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelat_train.catalogue import BASELINE
from accelat_train.extras import MissingExtra
from accelat_train.flags import (
    as_flags,
    build_parser,
    check_data_dir_exists,
    config_from_args,
    print_config,
    read_config_file,
)
from accelat_train.output_path import check_output_path

if TYPE_CHECKING:
    from accelat_train.callbacks.callback import Callback

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


# -- subcommands --------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    cfg = config_from_args(args, parser)
    if args.print_config:
        print_config(cfg.to_json())
        return 0
    import torch

    from accelat_train.run_dir import RunDir, read_json
    from accelat_train.training.loop import train

    if cfg.device in ("cpu", "auto") and not torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
    run_dir = RunDir(train(cfg, callbacks=args.callbacks, quiet=args.quiet, resume=args.resume,
                           restart=args.restart))  # fmt: skip
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
    if args.print_config:
        print_config(cfg.to_json())
        return 0
    from accelat_train.run_dir import RunDir
    from accelat_train.training.build import build
    from accelat_train.training.lr_finder import find_lr

    out = RunDir(args.out)
    # Its own earlier plot it replaces; any other run's file means a training run's folder.
    held = [p.name for p in out.held() if p != out.lr_find_plot]
    if held:
        parser.error(f"--out {out.path} holds a training run ({', '.join(held)}); its "
                     f"{out.lr_find_plot.name} is that run's: choose another --out")  # fmt: skip
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
    from accelat_train.compare import check_comparison, compare, stderr_log
    from accelat_train.reporting import findings, tables

    try:
        check_comparison(args.policies, args.seeds, args.budgets, args.baseline, args.target)
    except ValueError as exc:
        parser.error(f"--{exc}")  # its message begins with the flag's name
    if args.print_config:
        print_config(base.to_json())
        return 0
    if args.baseline is None and BASELINE not in args.policies:
        print(f"note: the baseline {BASELINE} is not one of --policies, so no ratios to it are "
              "shown; add it there or name another with --baseline", file=sys.stderr)  # fmt: skip

    start = time.perf_counter()
    summary = compare(
        base, args.policies, args.seeds, args.out, budgets=args.budgets,
        baseline=args.baseline, target=args.target,
        jobs=args.jobs, threads=args.threads, quiet=args.quiet, restart=args.restart,
        log=None if args.quiet else stderr_log,
    )  # fmt: skip
    out = Path(args.out)
    print(tables.format_table(summary))
    print(tables.format_totals(summary))
    written = [out / "compare.json", out / "compare.png"]
    if "budgets" in summary:
        print(tables.format_frontier(summary))
        written.append(out / "frontier.png")
    print(f"wrote {', '.join(map(str, written))} ({time.perf_counter() - start:.0f} s)")
    if args.command == "demo":
        print(f"demo figure: {out / 'compare.png'}\n")
        print(findings.format_findings(summary), end="")
    return 0


def cmd_eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from accelat_train.adversarial.evaluation import evaluate_test
    from accelat_train.checkpoint import CheckpointError
    from accelat_train.config import check_device
    from accelat_train.extras import require
    from accelat_train.registry import ATTACKS
    from accelat_train.trained import load_run
    from accelat_train.training.build import resolve_device

    check_device(args.device)  # what train checks, eval checks the same way
    check_data_dir_exists(args.data_dir, parser)
    for attack in args.attacks:
        require(ATTACKS[attack].needs, f"--attacks {attack}")
    try:
        run = load_run(
            args.checkpoint, args.which, device=resolve_device(args.device),
            data_dir=args.data_dir,
        )  # fmt: skip
    except CheckpointError as exc:
        parser.error(f"--checkpoint: {exc}")
    _note_if_going(run.checkpoint.parent, run.epoch)
    x, y = run.test_data(next(run.model.parameters()).device, size=args.eval_size)
    eps = args.eps or [float(run.config["eps"])]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        result = evaluate_test(run.model, x, y, args.attacks, eps, steps=args.steps)
    result = {"checkpoint": str(run.checkpoint), "epoch": run.epoch, "images": len(y), **result}
    print(json.dumps(result, indent=2) if args.json else eval_table(result))
    return 0


def _note_if_going(folder: Path, epoch: int) -> None:
    """Say so when a training process still holds the run folder read from."""
    from accelat_train.run_dir import RunDir

    holder = RunDir(folder).holder()
    if holder is not None:
        print(f"note: the run in {folder} is still going (process {holder}); this is its "
              f"epoch {epoch} checkpoint", file=sys.stderr)  # fmt: skip


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


def cmd_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from accelat_train.checkpoint import CheckpointError
    from accelat_train.export import export_run

    try:
        print(export_run(args.run, args.out, which=args.which))
    except CheckpointError as exc:
        parser.error(f"{args.run}: {exc}")
    return 0


def cmd_plot_policy(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from accelat_core import from_config
    from accelat_train.catalogue import CATALOGUE
    from accelat_train.reporting import plots
    from accelat_train.run_dir import read_json

    if args.policy_config is not None:
        try:
            policy = from_config(read_json(Path(args.policy_config)))
        except (ValueError, TypeError) as exc:
            parser.error(f"--policy-config {args.policy_config}: {exc}")
    else:
        lr_max = 0.1 if args.lr_max == "auto" else float(args.lr_max)
        policy = CATALOGUE[args.policy].build(lr_max, total_steps=args.steps, epochs=args.steps)
    metrics = None
    if policy.needs_metric:
        # An illustrative saturating accuracy curve (the policy needs one metric per step).
        metrics = [0.6 * (1 - math.exp(-i / max(1, args.steps / 8))) for i in range(args.steps)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plots.plot_policy(policy, args.steps, out, metrics=metrics)
    print(out)
    return 0


#: The commands whose ``--out`` is a file (the others' is a folder).
WRITES_A_FILE = ("export", "plot-policy")
COMMANDS = {
    "train": cmd_train,
    "compare": cmd_compare,
    "demo": cmd_compare,
    "lr-find": cmd_lr_find,
    "eval": cmd_eval,
    "export": cmd_export,
    "plot-policy": cmd_plot_policy,
}


# -- the process ----------------------------------------------------------------------------------
class Terminated(Exception):
    """SIGTERM (what a cluster scheduler sends) arrived: end like Ctrl-C does."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def interrupted(args: argparse.Namespace) -> str:
    """The one line an interrupted command prints: where the run stands, how to go on."""
    from accelat_train.run_dir import RunDir

    again = "accelat " + " ".join(shlex.quote(a) for a in args.argv)
    if args.command != "train":
        return f"interrupted; run the same command again to continue: {again}"
    folder = RunDir(args.out)
    epoch = folder.checkpoint_epoch()
    # The run is now the one in --out: continue it (a run with no epoch yet starts again).
    again = "accelat " + " ".join(shlex.quote(a) for a in args.argv if a != "--restart")
    if not args.resume:
        again += " --resume"
    if epoch == "none yet":
        return f"interrupted before the first checkpoint in {folder.path}; start it again: {again}"
    return (
        f"interrupted; the last checkpoint is {folder.checkpoint} (epoch {epoch}); "
        f"continue with: {again}"
    )


def _config_file(argv: Sequence[str]) -> dict[str, Any] | None:
    """The ``--config`` file's fields, if ``argv`` names one."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return read_config_file(arg.partition("=")[2])
        if arg == "--config" and i + 1 < len(argv):
            return read_config_file(argv[i + 1])
    return None


def main(argv: Sequence[str] | None = None, *, callbacks: Sequence[Callback] = ()) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); its exit code.
    ``callbacks`` listen to ``accelat train``'s loop (as :func:`accelat_train.train`'s do)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config = _config_file(argv)
    except (ValueError, MissingExtra) as exc:
        build_parser().error(str(exc))
    parser = build_parser(config)
    args = parser.parse_args(argv)
    args.callbacks, args.argv = list(callbacks), argv
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code = _run(args, parser)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if "accelat_train.training.distributed" in sys.modules:  # a command that trained ran
        from accelat_train.training import distributed

        if distributed.launched_as_rank():
            distributed.exit_rank(code)  # past gloo's teardown crash at interpreter exit
    return code


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    sub = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr, index]
    if getattr(args, "threads", None) is not None:
        import torch

        torch.set_num_threads(args.threads)
    writes = "out" in vars(args) and not getattr(args, "print_config", False)
    if writes:  # one check of every path a command writes, before its work
        try:
            check_output_path(args.out, "--out", folder=args.command not in WRITES_A_FILE)
        except ValueError as exc:
            sub.error(str(exc))
    from accelat_train.training.trainer import TrainingDiverged

    try:
        return COMMANDS[args.command](args, sub)
    except TrainingDiverged as exc:
        print(f"accelat {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except (ValueError, MissingExtra) as exc:
        # Problems only found once the data or a run dir is read (bad layout, resume mismatch,
        # a folder in use, a full disk, a network that does not fit the data), in the
        # command line's words where they differ.
        print(f"accelat {args.command}: error: {getattr(exc, 'flags', None) or as_flags(str(exc))}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated) as exc:
        print(f"accelat {args.command}: {interrupted(args)}", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
