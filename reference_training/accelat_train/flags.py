"""The command line's flags, made from :class:`~accelat_train.config.TrainConfig` and the
policy catalogue, and the way back from flags (and ``--config`` files) to a config.

Every run flag is a TrainConfig field (its type, default and help live there, a new option
is a new field); ``--help`` shows each default as the user would type it (``8/255``,
``linfpgd``), lists every policy, method and attack with its one-line meaning, and shows no
default for a required flag. ``lr-find`` takes only the flags a range test reads.

``--config FILE`` (JSON, or YAML with PyYAML installed) gives the fields' values, a run's own
``config.json`` included; flags given beside it override it. A run's ``config.json`` keeps
``lr_max`` as asked (``"auto"``) and the finder's record (``lr_find``) apart: the rerun
reuses the recorded lr, skipping the finder and reproducing the run's metrics, only for the
setting it was found for (the same data, network, method, ...); on any other it finds again,
saying so in one line. ``--print-config`` prints the config without running (and without
``--out``).

>>> parser = build_parser()
>>> args = parser.parse_args(["train", "--eps", "2/255", "--out", "runs/a"])
>>> round(args.eps * 255, 6), args.attacks
(2.0, ['linfpgd'])
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from accelat_core import __version__
from accelat_train.catalogue import BASELINE, CATALOGUE
from accelat_train.config import TrainConfig, check_data_dir, check_policy_config
from accelat_train.extras import needs_extra
from accelat_train.parsers import (
    MAX_PLOT_STEPS,
    MAX_THREADS,
    PLOT_STEPS,
    POSITIVE,
    SEED,
    THREADS,
    fraction,
    names,
    parse_eps,
    parse_lr_max,
)
from accelat_train.registry import ATTACKS, LOGGERS, METHODS

#: The fields a range test reads (``accelat lr-find`` shows only these).
LR_FIND_FIELDS = (
    "dataset", "data_dir", "download", "model", "method", "eps", "replays", "pgd_steps",
    "batch_size", "train_size", "val_size", "seed", "device", "momentum", "weight_decay",
    "nesterov", "lr_find_steps",
)  # fmt: skip
#: Fields each command sets itself, or that are no flag (the finder's record).
_OWN = ("policy", "seed", "out", "policy_config", "lr_find", "log")
#: ``--out``'s help where it has no default.
_OUT_HELP = "{} (required, unless --print-config)"
#: Keys of a run's config.json that describe how it ran, not what to run.
_RECORDED_ONLY = ("world_size", "resolved_device", "updates_per_epoch")
#: Free AT's recipe (the baseline: step, no averaging), onecycle, constant and AccelAT, the
#: last three with the trainer's defaults (weight averaging on).
DEMO_POLICIES = "step:ema_epochs=0,onecycle,constant,accelat"
#: ``accelat demo``: a small CNN on digits, 20 epochs: long enough for AccelAT to stop by
#: itself (after 16 on seed 0), in DEMO_TIME on one idle CPU core.
DEMO_DEFAULTS = {
    "model": "cnn", "method": "free", "eps": 0.1, "epochs": 20, "batch_size": 64,
    "eval_steps": 10, "monitor_steps": 3, "device": "cpu",
    "threads": 1,  # a model this small runs fastest on one thread (and shares the machine)
}  # fmt: skip


#: The demo's wall time, measured (docs/benchmarks.md); ``--help`` and the README say it.
DEMO_TIME = "about 70 s"


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except an unset or off one (the help line says in words what
    happens without the flag); the description and the epilog's lists kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action) or ""


def _listing(title: str, helps: dict[str, str]) -> str:
    width = max(map(len, helps))
    lines = [f"  {name:<{width}}  {text}" for name, text in helps.items()]
    return f"{title}:\n" + "\n".join(lines)


def _epilog(*parts: str, policy_flags: str = "--policy") -> str:
    lists = {
        "policies": _listing(
            f"policies ({policy_flags})", {n: e.help for n, e in CATALOGUE.items()}
        ),
        "methods": _listing("methods (--method)", METHODS.helps()),
        "attacks": _listing("attacks (--attacks)", ATTACKS.helps()),
    }
    return "\n\n".join(lists[p] for p in parts)


#: ``accelat compare --help``: what it does and the two tables it prints.
COMPARE_DESCRIPTION = """\
Train every policy of --policies on every seed of --seeds, one run folder each under
--out, and compare them by the gradient passes (forward + backward of one image) each
needed to reach a target robust validation accuracy (--target; unset: 95 % of the best
policy's final one). Two tables are printed and saved in --out/compare.json:

- training alone: per policy, its passes to the target relative to the baseline's
  (--baseline; below 1 is faster), without the lr finder's and the monitor's passes,
  with its passes and seconds to the target, on how many seeds it got there, its final
  clean and robust test accuracy, and its ratio to the fastest fixed-shape policy (one
  whose lr follows a set curve);
- every pass counted: the passes to the target with them (the lr finder's, the monitor's
  and any other overhead's passes added), the median over seeds of their ratio to the
  baseline's with a 90 % interval, the passes each policy spent in all, and the robust
  test accuracy of its best checkpoint.

compare.png plots robust validation accuracy against passes. --budgets adds a sweep:
every policy at every epoch budget, and the accuracy each reaches for the passes it spends."""


def _add_field(group: argparse._ArgumentGroup, f: dataclasses.Field[Any]) -> None:
    meta = {k: v for k, v in f.metadata.items() if k not in ("flag", "shown")}
    if meta.get("action") is None and "type" not in meta and "choices" not in meta:
        meta["type"] = str
    # A string default goes through the flag's parser, so it may be shown as typed.
    default = f.metadata.get("shown", f.default)
    group.add_argument("--" + f.name.replace("_", "-"), default=default, **meta)


def _run_flags(fields: Sequence[str] | None = None, *, title: str = "training") -> Any:
    """A parent parser with one flag per TrainConfig field (all but the commands' own, or
    just ``fields``), and the flags every running command has."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group(title)
    for f in dataclasses.fields(TrainConfig):
        wanted = f.name in fields if fields is not None else f.name not in _OWN
        if wanted and f.metadata.get("flag", True):
            _add_field(g, f)
    e = p.add_argument_group("execution")
    e.add_argument(
        "--threads",
        type=THREADS,
        help=f"CPU threads torch may use, at most this machine's {MAX_THREADS} (default: "
        "torch's choice, one per core)",
    )
    e.add_argument("--quiet", action="store_true", help="print no progress bars")
    e.add_argument(
        "--config",
        help="take these settings from a JSON or YAML file of config "
        "fields (a run's own config.json too); flags given beside it win",
    )
    e.add_argument(
        "--print-config",
        action="store_true",
        help="print the settings as config.json would hold them, and stop",
    )
    return p


def _field(name: str) -> dataclasses.Field[Any]:
    return next(f for f in dataclasses.fields(TrainConfig) if f.name == name)


def build_parser(config: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """The ``accelat`` parser; ``config`` (a ``--config`` file's fields) gives the defaults."""
    parser = argparse.ArgumentParser(
        prog="accelat", formatter_class=_Formatter,
        description="Train, evaluate and compare learning-rate policies for adversarial training.",
        epilog="Start with: accelat demo --out accelat-demo",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"accelat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, help: str, parents: list[Any], epilog: str = "", description: str = ""
    ) -> Any:
        return sub.add_parser(name, parents=parents, help=help, description=description or help,
                              epilog=epilog, formatter_class=_Formatter)  # fmt: skip

    lists = _epilog("policies", "methods", "attacks")
    t = command("train", "train one run", [_run_flags()], lists)
    own = t.add_argument_group("the run: its policy, seed and folder")
    for name in ("policy", "seed"):
        _add_field(own, _field(name))
    own.add_argument("--policy-config", help="a JSON file with an accelat_core policy config, "
                     "used instead of --policy and its settings")  # fmt: skip
    own.add_argument("--out", default=argparse.SUPPRESS,
                     help=_OUT_HELP.format("the run's folder: config, metrics, checkpoints, "
                                           "report"))  # fmt: skip
    again = own.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    again.add_argument(
        "--restart", action="store_true",
        help="move the run in --out to a new folder OUT.previous-N and start over",
    )  # fmt: skip
    own.add_argument("--log", type=names(LOGGERS), default=argparse.SUPPRESS,
                     help=f"also log each epoch to these, a comma list: {', '.join(LOGGERS)} "
                     "(default: none)")  # fmt: skip

    compare_lists = _epilog("policies", "methods", "attacks", policy_flags="--policies, --baseline")
    c = command("compare", "train several policies on several seeds and compare their cost",
                [_run_flags()], compare_lists, description=COMPARE_DESCRIPTION)  # fmt: skip
    _comparison_flags(c, out_default=None)
    d = command("demo", "compare step, onecycle, constant and accelat on digits and say what "
                f"it found (CPU, {DEMO_TIME})", [_run_flags()], compare_lists)  # fmt: skip
    d.set_defaults(**DEMO_DEFAULTS)
    _comparison_flags(d, out_default="accelat-demo")

    f = command("lr-find", "lr range test on the adversarial loss",
                [_run_flags(LR_FIND_FIELDS, title="range test")], _epilog("methods"))  # fmt: skip
    f.add_argument("--out", default=argparse.SUPPRESS,
                   help=_OUT_HELP.format("the folder that gets the range test's plot, "
                                         "lr_find.png"))  # fmt: skip

    _eval_flags(command("eval", "robust evaluation of a trained run on its test set", [],
                        _epilog("attacks")))  # fmt: skip
    _export_flags(command("export", "the evaluated weights as a file plain torch loads", []))
    _plot_flags(command("plot-policy", "plot a policy's lr (and momentum) shape", [],
                        _epilog("policies")))  # fmt: skip
    if config:
        for name, subparser in sub.choices.items():
            if name in ("train", "compare", "demo", "lr-find"):
                subparser.set_defaults(**_flag_values(config, subparser))
    return parser


def _comparison_flags(p: argparse.ArgumentParser, *, out_default: str | None) -> None:
    g = p.add_argument_group("the comparison")
    g.add_argument(
        "--policies", type=_arms, default=DEMO_POLICIES,
        help="the arms to compare, a comma list of policies (the list below), each with "
        "optional changes to its settings (accelat:ema_epochs=2 is accelat with --ema-epochs 2)",
    )  # fmt: skip
    g.add_argument("--seeds", type=_seed_list, default="0",
                   help="train every arm once per seed of this comma list")  # fmt: skip
    g.add_argument(
        "--budgets",
        type=_int_list,
        help="a comma list of epoch budgets: train "
        "every arm at each, and compare the accuracy each reaches for its passes",
    )
    g.add_argument(
        "--baseline",
        type=str,
        help="the arm whose passes to the target the others are divided by, one of "
        f"--policies (default: {BASELINE}, Free AT's recipe, when it is among them)",
    )
    g.add_argument(
        "--target",
        type=_target,
        help="the robust validation accuracy, in (0, 1], an arm must reach "
        "(default: 95 %% of the best arm's final one)",
    )
    g.add_argument("--jobs", type=POSITIVE, default=1, help="runs trained at once")
    g.add_argument(
        "--restart", action="store_true",
        help="move each run in --out made with other settings to RUN.previous-N and train it "
        "again (runs of these settings are reused)",
    )  # fmt: skip
    what = "folder of the comparison: one run folder per arm and seed, compare.json, compare.png"
    g.add_argument("--out", default=argparse.SUPPRESS if out_default is None else out_default,
                   help=what if out_default else _OUT_HELP.format(what))  # fmt: skip


def _eval_flags(e: argparse.ArgumentParser) -> None:
    e.add_argument("--checkpoint", required=True, default=argparse.SUPPRESS,
                   help="a run's folder, or a checkpoint file in one (required)")  # fmt: skip
    e.add_argument(
        "--which", choices=("last", "best"), default="last",
        help="with a run folder: the weights of its last epoch (checkpoint.pt) or of its best "
        "robust validation epoch (best.pt)",
    )  # fmt: skip
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--attacks", type=names(ATTACKS, ATTACKS.canonical), default="linfpgd",
                   help="the attacks to run, a comma list (the list below)")  # fmt: skip
    e.add_argument("--eps", type=_eps_list, help="the attack radii, a comma list like "
                   "2/255,8/255 (default: the eps the run trained at)")  # fmt: skip
    e.add_argument("--steps", type=POSITIVE, default=20, help="steps of each attack")
    e.add_argument(
        "--eval-size",
        type=POSITIVE,
        help="attack this many test images, the "
        "same fixed subset every time (default: the run's own --eval-size)",
    )
    e.add_argument(
        "--device",
        default="auto",
        help="where to evaluate: auto (CUDA if available), cpu, cuda or cuda:N",
    )
    e.add_argument("--data-dir", help="where the run's data lie now, if they moved "
                   "(default: where the run read them)")  # fmt: skip


def _export_flags(e: argparse.ArgumentParser) -> None:
    e.add_argument("run", help="the run's folder")
    e.add_argument(
        "--which",
        choices=("last", "best"),
        default="best",
        help="export the weights of the best robust validation epoch or of the last",
    )
    e.add_argument("--out", required=True, default=argparse.SUPPRESS,
                   help="the file to write, ending in .pt2 (required); its note goes beside it "
                   "with the ending .json")  # fmt: skip


def _plot_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", choices=tuple(CATALOGUE), default="onecycle",
                   help="the policy to draw (the list below)")  # fmt: skip
    p.add_argument("--policy-config", help="draw this JSON file's accelat_core policy config "
                   "instead of --policy")  # fmt: skip
    p.add_argument(
        "--steps", type=PLOT_STEPS, default=1000, help=f"steps to draw, at most {MAX_PLOT_STEPS:,}"
    )
    p.add_argument("--lr-max", type=parse_lr_max, default=0.1, help="the policy's peak lr")
    p.add_argument(
        "--out", required=True, default=argparse.SUPPRESS, help="the PNG file to write (required)"
    )


def _eps_list(text: str) -> list[float]:
    return _once_each(text, [parse_eps(t) for t in text.split(",") if t.strip()], "eps")


def _int_list(text: str) -> list[int]:
    return _once_each(text, [POSITIVE(t) for t in text.split(",") if t.strip()], "budget")


def _seed_list(text: str) -> list[int]:
    return _once_each(text, [SEED(t) for t in text.split(",") if t.strip()], "seed")


def _once_each(text: str, values: list[Any], what: str) -> list[Any]:
    """``values``, parsed from the comma list ``text``, if it names each once and is not empty."""
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r}: name at least one {what}")
    twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if twice is not None:
        raise argparse.ArgumentTypeError(f"{text!r} names {what} {twice} twice")
    return values


def _target(text: str) -> float:
    """A robust accuracy to reach: a number in (0, 1]."""
    try:
        value = fraction(text)
    except argparse.ArgumentTypeError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a number in (0, 1] (a robust accuracy, 0.45 for 45 %)"
        )
    return value


def _arms(text: str) -> list[str]:
    """Comparison arms ``policy[:field=value...]``; the policy names are checked here, the
    changes when the arm's config is made."""
    arms = [t.strip() for t in text.split(",") if t.strip()]
    bad = [a for a in arms if a.split(":", 1)[0] not in CATALOGUE]
    if bad or not arms:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown {', '.join(bad) or 'empty list'}; choose from "
            f"{', '.join(CATALOGUE)}"
        )
    return _once_each(text, arms, "arm")


# -- from flags and files to a config ------------------------------------------------------------
def read_config_file(path: str) -> dict[str, Any]:
    """A ``--config`` file's fields: JSON, or YAML (``.yaml``/``.yml``, needs PyYAML); a
    run's own ``config.json`` loads (its record-only keys are dropped). Unknown keys and
    unreadable files raise ``ValueError`` naming the file."""
    from accelat_train.run_dir import RunDirError, read_json  # torch: only with a --config

    file = Path(path)
    if file.suffix in (".yaml", ".yml"):
        data = _read_yaml(file)
    else:
        try:
            data = read_json(file)
        except RunDirError as exc:
            raise ValueError(f"--config: {exc}") from None
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - fields - set(_RECORDED_ONLY))
    if unknown:
        raise ValueError(f"--config {file}: unknown fields {', '.join(unknown)}")
    return {k: v for k, v in data.items() if k in fields and k != "out"}


def _read_yaml(file: Path) -> dict[str, Any]:
    with needs_extra(f"--config {file} (YAML)"):
        import yaml
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"--config {file} cannot be read: {exc}") from None
    except RecursionError:
        raise ValueError(f"--config {file} is YAML nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {file} must hold a mapping of fields")
    return data


def _flag_values(config: dict[str, Any], parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The file's fields that ``parser`` has flags for, as flag values (lists for tuples)."""
    dests = {a.dest for a in parser._actions}
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in config.items()
        if k in dests or k in ("policy_config", "lr_find")
    }


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrainConfig:
    """The run's TrainConfig, validated once as it is made; a problem is a ``parser.error``
    (exit 2) naming the flag. ``--out`` is required unless the command only prints the
    config."""
    if not hasattr(args, "out") and not getattr(args, "print_config", False):
        parser.error("the following arguments are required: --out")
    check_data_dir_exists(args.data_dir, parser)
    try:
        check_data_dir(args.dataset, args.data_dir, download=args.download)
    except ValueError as exc:
        parser.error(as_flags(str(exc)))
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if hasattr(args, f.name) and f.name not in ("policy_config", "lr_find")
    }
    for name in ("attacks", "log"):
        if name in values:
            values[name] = tuple(values[name])
    if isinstance(getattr(args, "policy_config", None), str):
        values["policy_config"] = _read_policy_config(args.policy_config, parser)
    elif isinstance(getattr(args, "policy_config", None), dict):
        values["policy_config"] = args.policy_config
    if isinstance(getattr(args, "lr_find", None), dict):
        values["lr_find"] = args.lr_find
    try:
        return TrainConfig(**values)
    except ValueError as exc:
        parser.error(as_flags(str(exc)))


def check_data_dir_exists(data_dir: str | None, parser: argparse.ArgumentParser) -> None:
    """``--data-dir``, of ``train`` and of ``eval`` alike, must exist."""
    if data_dir is not None and not Path(data_dir).expanduser().exists():
        parser.error(f"--data-dir {data_dir}: no such file or directory")


def as_flags(message: str) -> str:
    """A TrainConfig error in the command line's words: ``eps must ...`` -> ``--eps must ...``."""
    name = message.split(" ", 1)[0]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return "--" + name.replace("_", "-") + message[len(name) :] if name in fields else message


def _read_policy_config(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    from accelat_train.run_dir import read_json

    try:
        config = read_json(Path(path))
        check_policy_config(config)
    except ValueError as exc:
        parser.error(f"--policy-config {path}: {exc}")
    return config


def print_config(config: dict[str, Any]) -> None:
    """``--print-config``: the resolved config (:meth:`TrainConfig.to_json`) as JSON, as
    ``config.json`` would begin."""
    print(json.dumps(config, indent=2))
