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

Invalid flags are rejected before any work with exit code 2; a run stopped by a NaN/inf
loss exits with code 3.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from accelat_train import distributed
from accelat_train.loop import (
    AMP_NAMES,
    METHOD_NAMES,
    MONITOR_NAMES,
    POLICY_NAMES,
    TrainConfig,
    TrainingDiverged,
)

EXIT_USAGE = 2
EXIT_DIVERGED = 3

DEMO_POLICIES = "constant,step,onecycle,accelat"


# -- argument types (each error names the flag through argparse) ---------------------------
def _fraction(text: str) -> float:
    """``0.1``, ``8/255``: a float parsed exactly as written."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number or fraction like 8/255"
        ) from None
    return value


def _eps(text: str) -> float:
    value = _fraction(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is outside (0, 1] (pixels lie in [0, 1])")
    return value


def _eps_list(text: str) -> list[float]:
    return [_eps(t) for t in text.split(",") if t.strip()]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _lr_max(text: str) -> float | str:
    if text == "auto":
        return "auto"
    value = _fraction(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be 'auto' or a finite number > 0")
    return value


def _names(options: tuple[str, ...]):  # type: ignore[no-untyped-def]
    def parse(text: str) -> list[str]:
        names = [t.strip() for t in text.split(",") if t.strip()]
        bad = [n for n in names if n not in options]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"{text!r}: unknown {', '.join(bad) or 'empty list'}; "
                f"choose from {', '.join(options)}"
            )
        return names

    return parse


def _seed_list(text: str) -> list[int]:
    return [_nonneg_int(t) for t in text.split(",") if t.strip()]


# -- the parser ----------------------------------------------------------------------------
def _run_flags(defaults: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """Flags shared by train, compare, lr-find and demo."""
    from accelat_train.attacks import ATTACK_NAMES
    from accelat_train.data import DATASET_NAMES
    from accelat_train.models import MODEL_NAMES

    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("run")
    g.add_argument("--dataset", choices=DATASET_NAMES, default="digits")
    g.add_argument("--data-dir", help="CIFAR python layout, image folder or .tar.gz")
    g.add_argument("--download", action="store_true", help="fetch CIFAR if --data-dir lacks it")
    g.add_argument("--model", choices=MODEL_NAMES, default="cnn")
    g.add_argument("--method", choices=METHOD_NAMES, default="free")
    g.add_argument(
        "--eps", type=_eps, default=8 / 255, help="L-inf radius in [0,1] pixels, e.g. 8/255"
    )
    g.add_argument("--replays", type=_positive_int, help="Free AT replays m (default 4; free only)")
    g.add_argument("--pgd-steps", type=_positive_int, default=7)
    g.add_argument("--policy-config", help="JSON file with an accelat_core policy config")
    g.add_argument("--lr-max", type=_lr_max, default="auto", help="'auto' runs the lr finder")
    g.add_argument("--epochs", type=_positive_int, default=10, help="epoch-equivalents")
    g.add_argument("--batch-size", type=_positive_int, default=128)
    g.add_argument("--train-size", type=_positive_int)
    g.add_argument("--val-size", type=_nonneg_int)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--monitor", choices=MONITOR_NAMES, default="robust_val_acc")
    g.add_argument("--monitor-steps", type=_positive_int, default=5, help="PGD steps per epoch")
    g.add_argument("--monitor-size", type=_positive_int, default=500, help="val images attacked")
    g.add_argument("--eval-every", type=_nonneg_int, default=0, help="test eval cadence (0: end)")
    g.add_argument("--attacks", type=_names(ATTACK_NAMES), default=["linfpgd"])
    g.add_argument("--eval-steps", type=_positive_int, default=20)
    g.add_argument("--eval-size", type=_positive_int, help="test images in the evaluations")
    g.add_argument("--amp", choices=AMP_NAMES, help="CUDA mixed precision (ignored on CPU)")
    g.add_argument("--compile", action="store_true", help="torch.compile the network")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=5e-4)
    g.add_argument("--nesterov", action="store_true")
    g.add_argument("--co-check", action="store_true", help="fgsm-rs: stop on catastrophic overfit")
    g.add_argument("--lr-find-steps", type=_positive_int, default=100)
    g.add_argument(
        "--window", type=_positive_int, help="AccelAT window (default epochs//5 in 1..5)"
    )
    g.add_argument(
        "--threads", type=_positive_int, help="CPU threads for torch (default: torch's choice)"
    )
    g.add_argument("--quiet", action="store_true")
    if defaults:
        p.set_defaults(**defaults)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accelat",
        description="Train, evaluate and compare learning-rate policies for adversarial training.",
        epilog="Start with: accelat demo --out accelat-demo",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = _run_flags()

    t = sub.add_parser("train", parents=[run], help="train one run")
    t.add_argument("--policy", choices=POLICY_NAMES, default="accelat")
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")

    c = sub.add_parser("compare", parents=[run], help="train several policies, same budget")
    c.add_argument("--policies", type=_names(POLICY_NAMES), default=DEMO_POLICIES.split(","))
    c.add_argument("--seeds", type=_seed_list, default=[0])
    c.add_argument("--target", type=float, help="robust val acc target (default: 95%% of best)")
    c.add_argument("--out", required=True)

    f = sub.add_parser("lr-find", parents=[run], help="lr range test on the adversarial loss")
    f.add_argument("--seed", type=_nonneg_int, default=0)
    f.add_argument("--out", required=True, help="directory for lr_find.png")

    e = sub.add_parser("eval", help="Foolbox evaluation of a trained run on the test set")
    e.add_argument("--checkpoint", required=True, help="run directory or its checkpoint.pt")
    e.add_argument("--attacks", type=_names(_attack_names()), default=["linfpgd"])
    e.add_argument("--eps", type=_eps_list, help="comma list, default: the run's eps")
    e.add_argument("--steps", type=_positive_int, default=20)
    e.add_argument("--eval-size", type=_positive_int)
    e.add_argument("--device", default="auto")
    e.add_argument("--data-dir")

    pp = sub.add_parser("plot-policy", help="plot a policy's lr (and momentum) shape")
    pp.add_argument("--policy", choices=POLICY_NAMES, default="onecycle")
    pp.add_argument("--policy-config")
    pp.add_argument("--steps", type=_positive_int, default=1000)
    pp.add_argument("--lr-max", type=_lr_max, default=0.1)
    pp.add_argument("--out", required=True, help="PNG path")

    d = sub.add_parser(
        "demo",
        parents=[
            _run_flags(
                {
                    "model": "cnn",
                    "method": "free",
                    "eps": 0.1,
                    "epochs": 8,
                    "batch_size": 64,
                    "eval_steps": 10,
                    "monitor_steps": 3,
                    "lr_find_steps": 60,
                    "device": "cpu",
                    # A model this small runs fastest on one thread (and shares the machine).
                    "threads": 1,
                }
            )
        ],
        help="compare constant, step, onecycle and accelat on digits (CPU, ~1 min)",
    )
    d.add_argument("--policies", type=_names(POLICY_NAMES), default=DEMO_POLICIES.split(","))
    d.add_argument("--seeds", type=_seed_list, default=[0])
    d.add_argument("--target", type=float)
    d.add_argument("--out", default="accelat-demo")
    return parser


def _attack_names() -> tuple[str, ...]:
    from accelat_train.attacks import ATTACK_NAMES

    return ATTACK_NAMES


# -- turning flags into a config -----------------------------------------------------------
def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrainConfig:
    """A validated TrainConfig; every problem is a ``parser.error`` (exit 2) naming the flag."""
    if args.replays is not None and args.method != "free":
        parser.error(f"--replays applies only to --method free, got --method {args.method}")
    if args.co_check and args.method != "fgsm-rs":
        parser.error(f"--co-check applies only to --method fgsm-rs, got --method {args.method}")
    if args.data_dir is not None and not Path(args.data_dir).expanduser().exists():
        parser.error(f"--data-dir {args.data_dir}: no such file or directory")
    if args.dataset != "digits" and args.data_dir is None and not args.download:
        parser.error(f"--dataset {args.dataset} needs --data-dir (or --download)")
    if args.device.split(":")[0] not in ("auto", "cpu", "cuda"):
        parser.error(f"--device must be auto, cpu, cuda or cuda:N, got {args.device!r}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: CUDA is not available on this machine")
    policy_config = None
    if args.policy_config is not None:
        policy_config = _read_policy_config(args.policy_config, parser)
    cfg = TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        download=args.download,
        model=args.model,
        method=args.method,
        eps=args.eps,
        replays=args.replays,
        pgd_steps=args.pgd_steps,
        policy=getattr(args, "policy", "accelat"),
        policy_config=policy_config,
        lr_max=args.lr_max,
        epochs=args.epochs,
        batch_size=args.batch_size,
        train_size=args.train_size,
        val_size=args.val_size,
        seed=getattr(args, "seed", 0),
        device=args.device,
        out=args.out,
        monitor=args.monitor,
        monitor_steps=args.monitor_steps,
        monitor_size=args.monitor_size,
        eval_every=args.eval_every,
        attacks=tuple(args.attacks),
        eval_steps=args.eval_steps,
        eval_size=args.eval_size,
        amp=args.amp,
        compile=args.compile,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        nesterov=args.nesterov,
        co_check=args.co_check,
        lr_find_steps=args.lr_find_steps,
        window=args.window,
    )
    try:
        cfg.validate()
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    return cfg


def _read_policy_config(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    from accelat_train.loop import build_policy_from_config

    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        parser.error(f"--policy-config {path}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        parser.error(f"--policy-config {path}: not valid JSON ({exc})")
    try:
        build_policy_from_config(config)
    except ValueError as exc:
        parser.error(f"--policy-config {path}: {exc}")
    return config


# -- subcommands ---------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from accelat_train.loop import train

    cfg = config_from_args(args, parser)
    if cfg.device in ("cpu", "auto") and not torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
    run_dir = train(cfg, quiet=args.quiet, resume=args.resume)
    report_path = run_dir / "report.json"
    if report_path.exists():
        final = json.loads(report_path.read_text())["final"]
        print(
            f"{run_dir}: clean {final['clean_acc']:.3f}, robust {final['robust_acc']:.3f} "
            f"({cfg.attacks[0]}, eps {cfg.eps:.4g})"
        )
    return 0


def cmd_lr_find(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from accelat_train.loop import find_lr, prepare

    cfg = config_from_args(args, parser)
    setup = prepare(cfg)
    result = find_lr(setup)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = result.plot(out / "lr_find.png")
    s = result.suggestion
    print(
        f"lr_max {s.lr_max:.4g}  lr_min {s.lr_min:.4g}  "
        f"(method {s.method}, {len(result.lrs)} steps)"
    )
    print(png)
    return 0


def cmd_compare(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from accelat_train import report
    from accelat_train.loop import find_lr, prepare, train

    base = config_from_args(args, parser)
    if base.policy_config is not None:
        parser.error("--policy-config does not apply to compare; it takes --policies")
    out = Path(args.out)
    runs: dict[str, list[Path]] = {name: [] for name in args.policies}
    start = time.perf_counter()
    for seed in args.seeds:
        seeded = dataclasses.replace(base, seed=seed)
        lr_max = seeded.lr_max
        if lr_max == "auto":
            # One range test per seed; every policy of this seed starts from its lr_max.
            result = find_lr(prepare(seeded))
            lr_max = float(result.suggestion.lr_max)
            shared = {
                "lr_max": lr_max,
                "lr_min": float(result.suggestion.lr_min),
                "method": result.suggestion.method,
                "steps": len(result.lrs),
                "shared_by": list(args.policies),
            }
            seeded = dataclasses.replace(seeded, lr_find=shared)
            out.mkdir(parents=True, exist_ok=True)
            result.plot(out / f"lr_find_seed{seed}.png")
            if not args.quiet:
                print(f"seed {seed}: lr finder suggests lr_max {lr_max:.4g}", file=sys.stderr)
        for name in args.policies:
            run_dir = out / name / f"seed{seed}"
            cfg = dataclasses.replace(seeded, policy=name, lr_max=lr_max, out=str(run_dir))
            resume = (run_dir / "checkpoint.pt").exists()
            if not args.quiet:
                print(f"training {name} (seed {seed}) -> {run_dir}", file=sys.stderr)
            runs[name].append(train(cfg, quiet=args.quiet, resume=resume))
    fixed = [n for n in args.policies if n not in ("accelat", "plateau")]
    baseline = "step" if "step" in args.policies else None
    summary = report.compare_summary(
        {k: [str(p) for p in v] for k, v in runs.items()},
        target=args.target,
        baseline=baseline,
        fixed_shape=fixed,
    )
    report.write_json(out / "compare.json", summary)
    report.plot_compare(summary, out / "compare.png")
    print(report.format_table(summary))
    print(
        f"wrote {out / 'compare.json'} and {out / 'compare.png'} "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return 0


def cmd_eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from accelat_train.checkpoint import CheckpointError, load_checkpoint
    from accelat_train.loop import as_tensors, eval_subset, evaluate_test, resolve_device

    path = Path(args.checkpoint)
    run_dir = path if path.is_dir() else path.parent
    ckpt_path = path / "checkpoint.pt" if path.is_dir() else path
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no config.json in {run_dir}")
    try:
        state = load_checkpoint(ckpt_path)
    except CheckpointError as exc:
        parser.error(f"--checkpoint: {exc}")
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    from accelat_train.data import load_splits
    from accelat_train.models import NormalizedModel, build_model

    device = resolve_device(args.device)
    splits = load_splits(
        saved["dataset"],
        args.data_dir or saved.get("data_dir"),
        train_size=saved.get("train_size"),
        val_size=saved.get("val_size"),
        seed=saved.get("seed", 0),
    )
    _, height, _, channels = splits.train.x.shape
    net = build_model(saved["model"], len(splits.classes), in_channels=channels, image_size=height)
    model = NormalizedModel(net, splits.mean, splits.std)
    model.load_state_dict(state["model"])
    model.to(device)
    x, y = as_tensors(splits.test, device)
    x, y = eval_subset(x, y, args.eval_size)
    eps = args.eps or [float(saved["eps"])]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        result = evaluate_test(model, x, y, args.attacks, eps, steps=args.steps)
    print(
        json.dumps({"checkpoint": str(ckpt_path), "epoch": int(state["epoch"]), **result}, indent=2)
    )
    return 0


def cmd_plot_policy(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from accelat_train import report
    from accelat_train.loop import build_policy, build_policy_from_config

    if args.policy_config is not None:
        policy = build_policy_from_config(_read_policy_config(args.policy_config, parser))
    elif args.policy == "plateau":
        parser.error("--policy plateau is torch's ReduceLROnPlateau: nothing to plot")
    else:
        lr_max = 0.1 if args.lr_max == "auto" else float(args.lr_max)
        policy = build_policy(args.policy, lr_max, total_steps=args.steps, epochs=args.steps)
    metrics = None
    if policy.needs_metric:
        # An illustrative saturating accuracy curve (the policy needs one metric per step).
        metrics = [0.6 * (1 - math.exp(-i / max(1, args.steps / 8))) for i in range(args.steps)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report.plot_policy(policy, args.steps, out, metrics=metrics)
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code = _run(args, parser)
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
        # Problems only found once the data or a run dir is read (bad layout, resume mismatch).
        print(f"accelat {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
