"""A hostile user's probe, not a test: bad inputs to the CLI and the Python API, each run
once in its own process and classified (issue 25's last step).

    python -m tools.probe_inputs --out /tmp/probe              # every case (about 10 min)
    python -m tools.probe_inputs --out /tmp/probe --only seed  # the cases whose name has it

Each case is (name, group, how it is run, the issue's input it names or None for a new
one). Its outcome is one of:

- ``clean``: refused as it should be: exit 2 for the CLI, a ``ValueError`` (``CheckpointError``,
  ``RunDirError``) or ``TypeError`` for the Python API, with a message naming the parameter,
  the value or the file (the case's ``names``); or, for a case that must work, it worked;
- ``unclear``: refused, but the message names none of them;
- ``traceback``: any other exception or exit code (a traceback the user sees);
- ``silent``: accepted what it should refuse;
- ``hang``: still running after ``--timeout`` seconds;
- ``loss``: a file of an earlier run changed (checked on every case's ``watch`` folders).

A table and the counts per class (the issue's inputs, the new ones) are printed, and
``OUT/probe.json`` holds every case's outcome and the message it ended with. The cases reuse
one tiny trained run (``OUT/base``) and a second one of another policy (``OUT/step``); each
case that changes a run works on its own copy. Run it on a quiet machine: it trains on the CPU,
one process at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
if not CIFAR.exists():
    CIFAR = Path("/work/shared/data/cifar10-jpeg.tar.gz")

#: The tiny run every training case starts from (digits, one epoch, a few images).
TINY = [
    "--dataset", "digits", "--epochs", "1", "--train-size", "80", "--val-size", "40",
    "--monitor-size", "40", "--monitor-steps", "1", "--eval-size", "40", "--eval-steps", "1",
    "--lr-max", "0.05", "--device", "cpu", "--threads", "1", "--quiet",
]  # fmt: skip
#: ``fit()``'s keywords of the same tiny run.
FIT = (
    "epochs=1, val_size=20, monitor_size=20, monitor_steps=1, eval_size=20, eval_steps=1, "
    "lr_max=0.05, device='cpu', quiet=True"
)
CLASSES = ("clean", "unclear", "traceback", "silent", "hang", "loss")

#: Factories a hostile ``--model`` / ``--dataset module:factory`` names (written to WORK).
FACTORIES = """
import numpy as np
import torch
from torch import nn


def three_logits(num_classes, in_channels):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(3))


def for_cifar(num_classes, in_channels):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))


def no_parameters(num_classes, in_channels):
    class Fixed(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], num_classes)
    return Fixed()


def nan_logits(num_classes, in_channels):
    class Nan(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64 * in_channels, num_classes)
        def forward(self, x):
            return self.lin(x.flatten(1)) * float("nan")
    return Nan()


def label_42():
    x = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    y = np.arange(40) % 3
    y[5] = 42
    return (x[:30], y[:30]), (x[30:], y[30:]), ("a", "b", "c")
"""

#: The prelude of a Python API case: a refusal exits 2 with its message, anything else as is.
API = """
import sys, traceback
sys.setrecursionlimit(3000)
try:
{body}
except (ValueError, TypeError) as exc:
    where = traceback.extract_tb(exc.__traceback__)[-1]
    print(f"REFUSED {{type(exc).__name__}}: {{exc}}", file=sys.stderr)
    print(f"  (raised at {{where.filename}}:{{where.lineno}})", file=sys.stderr)
    sys.exit(2)
print("ACCEPTED")
"""


@dataclass
class Case:
    """One bad input: run ``argv`` (the CLI's words) or ``code`` (Python) in WORK."""

    name: str
    group: str
    item: int | None  # the issue's input number; None: a new one
    argv: list[str] | None = None
    code: str | None = None
    setup: Callable[[Path, Path], None] | None = None  # (work, out)
    names: tuple[str, ...] = ()  # a clean message names one of these
    expect: str = "refuse"  # refuse | work | either
    watch: tuple[str, ...] = ()  # folders (templates) whose files must not change


# -- setups --------------------------------------------------------------------------------------
def _copy_base(name: str = "base") -> Callable[[Path, Path], Path]:
    def copy(work: Path, out: Path) -> Path:
        target = work / "run"
        shutil.copytree(out / name, target, ignore=shutil.ignore_patterns(".lock"))
        return target

    return copy


def _edit_ckpt(edit: Callable[[dict[str, Any]], None], which: str = "checkpoint.pt",
               source: str = "base") -> Callable[[Path, Path], None]:  # fmt: skip
    def setup(work: Path, out: Path) -> None:
        import torch

        run = _copy_base(source)(work, out)
        state = torch.load(run / which, weights_only=True)
        edit(state)
        torch.save(state, run / which)

    return setup


def _edit_file(name: str, edit: Callable[[str], str]) -> Callable[[Path, Path], None]:
    def setup(work: Path, out: Path) -> None:
        run = _copy_base()(work, out)
        path = run / name
        path.write_text(edit(path.read_text()))

    return setup


def _edit_config(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path, Path], None]:
    def change(text: str) -> str:
        config = json.loads(text)
        edit(config)
        return json.dumps(config)

    return _edit_file("config.json", change)


def _write(name: str, text: str) -> Callable[[Path, Path], None]:
    def setup(work: Path, out: Path) -> None:
        (work / name).write_text(text)

    return setup


DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJ = '{"a": ' * 50_000 + "1" + "}" * 50_000


def _nan_weights(state: dict[str, Any]) -> None:
    for key in ("model", "evaluated"):
        for tensor in state.get(key, {}).values():
            if tensor.is_floating_point():
                tensor.fill_(float("nan"))


def _wrong_shape(state: dict[str, Any]) -> None:
    import torch

    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(2, 2)


def _no_ckpt(work: Path, out: Path) -> None:
    (_copy_base()(work, out) / "checkpoint.pt").unlink()


def _truncated_cifar(work: Path, out: Path) -> None:
    with open(CIFAR, "rb") as src:
        (work / "cifar10-jpeg.tar.gz").write_bytes(src.read(3_000_000))


def _links(work: Path, out: Path) -> None:
    os.symlink(work / "nothing-here", work / "dangling")
    os.symlink(work / "loop-b", work / "loop-a")
    os.symlink(work / "loop-a", work / "loop-b")


def _early_folder(work: Path, out: Path) -> None:
    (work / "early").mkdir()
    (work / "early" / ".lock").write_text("")


def _other_policy_ckpt(work: Path, out: Path) -> None:
    run = _copy_base()(work, out)
    for name in ("checkpoint.pt", "metrics.jsonl"):
        shutil.copy(out / "step" / name, run / name)


def _empty_ckpt(work: Path, out: Path) -> None:
    (_copy_base()(work, out) / "checkpoint.pt").write_bytes(b"")


def _metrics_garbage(text: str) -> str:
    """The first line (an epoch the checkpoint holds) garbled, at the same length."""
    first, _, rest = text.partition("\n")
    return "#" * len(first) + "\n" + rest


def _ckpt_set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        state[key] = value

    return edit


def _ckpt_del(key: str) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        del state[key]

    return edit


def _cfg_set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config[key] = value

    return edit


def _cfg_del(key: str) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        del config[key]

    return edit


# -- the cases -----------------------------------------------------------------------------------
RUN = "{work}/run"
RESUME = ["train", *TINY, "--resume", "--out", RUN]
EVAL = ["eval", "--device", "cpu", "--eval-size", "20", "--steps", "1"]
CMP = ["compare", *TINY, "--policies", "step,accelat", "--seeds", "0", "--out", "{work}/cmp"]
PLOT = ["plot-policy", "--policy", "onecycle", "--steps", "100"]
DIGITS = (
    "import numpy as np, torch\n"
    "from sklearn.datasets import load_digits\n"
    "d = load_digits()\n"
    "x = (d.images[:120, None] / 16).astype('float32'); y = d.target[:120].copy()\n"
    "net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))\n"
)
OPT = (
    "import torch\n"
    "from accelat_core import AccelAT, OneCycle\n"
    "from accelat_torch import PolicyScheduler, PlateauPolicyScheduler\n"
    "w = torch.zeros(1, requires_grad=True)\n"
    "opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)\n"
)


def cases() -> list[Case]:
    """Every case: the issue's inputs, then the new ones."""
    c: list[Case] = []
    # fmt: off

    def add(*args: Any, **kwargs: Any) -> None:
        c.append(Case(*args, **kwargs))

    # ---- the issue's inputs (numbered as the issue's list, 39 in all) ----------------------
    add("run-without-checkpoint --resume", "run folder", 1, RESUME, setup=_no_ckpt,
        names=("checkpoint.pt",), watch=(RUN,))
    add("run-without-checkpoint (no --resume)", "run folder", 1, ["train", *TINY, "--out", RUN],
        setup=_no_ckpt, names=("already holds",), watch=(RUN,))
    add("checkpoint metrics_bytes 1e12", "checkpoint", 2, RESUME,
        setup=_edit_ckpt(_ckpt_set("metrics_bytes", 10**12)), names=("metrics_bytes",),
        watch=(RUN,))
    add("empty metrics.jsonl, checkpoint past it", "run folder", 3, RESUME,
        setup=_edit_file("metrics.jsonl", lambda t: ""), names=("metrics",), watch=(RUN,))
    add("truncated cifar10 archive", "data", 4,
        ["train", *TINY, "--dataset", "cifar10", "--data-dir", "{work}/cifar10-jpeg.tar.gz",
         "--out", "{work}/new"], setup=_truncated_cifar, names=("truncated",))
    add("plot-policy --steps 1e10", "plot-policy", 5,
        [*PLOT[:-1], "10000000000", "--out", "{work}/p.png"], names=("--steps",))
    add("train --lr-max 0.1 --lr-min 5", "train flags", 6,
        ["train", *TINY, "--lr-max", "0.1", "--lr-min", "5", "--out", "{work}/new"],
        names=("--lr-min",))
    add("eval: checkpoint epoch -3", "checkpoint", 7, [*EVAL, "--checkpoint", RUN],
        setup=_edit_ckpt(_ckpt_set("epoch", -3)), names=("epoch",))
    add("eval --which best, best.pt NaN", "checkpoint", 8,
        [*EVAL, "--checkpoint", RUN, "--which", "best"],
        setup=_edit_ckpt(_nan_weights, "best.pt"), names=("non-finite", "nan"))
    add("eval --eval-size 99999999", "eval flags", 9,
        [*EVAL[:-4], "--eval-size", "99999999", "--steps", "1", "--checkpoint", "{base}"],
        names=("--eval-size",))
    add("eval --data-dir /nonexistent (digits)", "eval flags", 10,
        [*EVAL, "--data-dir", "/nonexistent", "--checkpoint", "{base}"], names=("--data-dir",))
    add("compare --target 2", "compare flags", 11, [*CMP, "--target", "2"], names=("--target",))
    add("compare --target nan", "compare flags", 12, [*CMP, "--target", "nan"],
        names=("--target",))
    add("compare --baseline onecycle (not in --policies)", "compare flags", 13,
        [*CMP, "--baseline", "onecycle"], names=("--baseline",))
    add("compare --seeds 0,0", "compare flags", 14, [*CMP[:-4], "--seeds", "0,0", "--out",
        "{work}/cmp"], names=("--seeds",))  # fmt: skip
    for cmd, out, argv in (("export", "m.pt2", ["export", "{base}"]),
                           ("plot-policy", "p.png", PLOT)):  # fmt: skip
        add(f"{cmd} --out a folder", "output path", 15, [*argv, "--out", "{work}"],
            names=("--out",))
        add(f"{cmd} --out under /proc", "output path", 16, [*argv, "--out", f"/proc/{out}"],
            names=("--out",))
        add(f"{cmd} --out an existing file", "output path", 17,
            [*argv, "--out", f"{{work}}/{out}"], setup=_write(out, "old"), names=("--out",),
            expect="either")
        add(f"{cmd} --out read-only place (/sys)", "output path", 18,
            [*argv, "--out", f"/sys/{out}"], names=("--out",))
    add("--model returns 3 logits for 10 classes", "network", 19,
        ["train", *TINY, "--model", "probe_factories:three_logits", "--out", "{work}/new"],
        names=("--model", "3"))
    add("fit() with a 3-output net", "python api", 20, code=DIGITS + (
        "net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))\n"
        f"from accelat_train import fit\nfit(net, (x, y), out='{{work}}/new', {FIT})"),
        names=("3",))
    add("fit() with a label 42", "python api", 21, code=DIGITS + (
        f"y[7] = 42\nfrom accelat_train import fit\nfit(net, (x, y), out='{{work}}/new', {FIT})"),
        names=("42",))
    add("--model expecting 32x32x3 on digits", "network", 22,
        ["train", *TINY, "--model", "probe_factories:for_cifar", "--out", "{work}/new"],
        names=("--model",))
    add("train --out name over NAME_MAX", "output path", 23,
        ["train", *TINY, "--out", "{work}/" + "a" * 300], names=("--out",))
    add("--config deeply nested JSON", "config", 24,
        ["train", *TINY, "--config", "{work}/deep.json", "--out", "{work}/new"],
        setup=_write("deep.json", DEEP), names=("deep.json",))
    add("eval: run's config.json deeply nested", "run folder", 25,
        [*EVAL, "--checkpoint", RUN], setup=_edit_file("config.json", lambda t: DEEP),
        names=("config.json",))
    add("resume: scheduler state deeply nested", "checkpoint", 26, RESUME,
        setup=_edit_ckpt(_ckpt_set("scheduler", DEEP_OBJ)), names=("scheduler",), watch=(RUN,))
    add("load_run on a deeply nested config.json", "python api", 27,
        code="from accelat_train import load_run\nload_run('{work}/run')",
        setup=_edit_file("config.json", lambda t: DEEP), names=("config.json",))
    add("PolicyScheduler.load_state_dict deeply nested", "adapters", 28, code=OPT + (
        "s = PolicyScheduler(opt, OneCycle(0.1, total_steps=10))\nd = {}\nx = d\n"
        "for _ in range(100000):\n    x['a'] = {}\n    x = x['a']\n"
        "state = s.state_dict()\nstate['policy']['state'] = d\ns.load_state_dict(state)"),
        names=("policy",))
    add("resume: checkpoint without optimizer", "checkpoint", 29, RESUME,
        setup=_edit_ckpt(_ckpt_del("optimizer")), names=("optimizer",), watch=(RUN,))
    add("resume: checkpoint epoch 'abc'", "checkpoint", 30, RESUME,
        setup=_edit_ckpt(_ckpt_set("epoch", "abc")), names=("epoch",), watch=(RUN,))
    add("resume: checkpoint metrics_bytes -1", "checkpoint", 31, RESUME,
        setup=_edit_ckpt(_ckpt_set("metrics_bytes", -1)), names=("metrics_bytes",),
        watch=(RUN,))
    add("resume: tensors of the wrong shape", "checkpoint", 32, RESUME,
        setup=_edit_ckpt(_wrong_shape), names=("shape",), watch=(RUN,))
    add("resume: a dict as the scheduler state", "checkpoint", 33, RESUME,
        setup=_edit_ckpt(_ckpt_set("scheduler", {"lr": 0.1})), names=("scheduler",),
        watch=(RUN,))
    add("fit('notamodule', ...)", "python api", 34,
        code=DIGITS + f"from accelat_train import fit\nfit('notamodule', (x, y), {FIT})",
        names=("model",))
    add("load_run: config.json without model", "python api", 35,
        code="from accelat_train import load_run\nload_run('{work}/run')",
        setup=_edit_config(_cfg_del("model")), names=("model",))
    add("train --seed 99999999999999999999999", "train flags", 36,
        ["train", *TINY, "--seed", "99999999999999999999999", "--out", "{work}/new"],
        names=("--seed",))
    add("train --out a dangling symlink", "output path", 37,
        ["train", *TINY, "--out", "{work}/dangling"], setup=_links, names=("--out",))
    add("train --out a symlink loop", "output path", 37,
        ["train", *TINY, "--out", "{work}/loop-a"], setup=_links, names=("--out",))
    add("eval before config.json exists", "run folder", 38,
        [*EVAL, "--checkpoint", "{work}/early"], setup=_early_folder, names=("config.json",))
    add("export before config.json exists", "run folder", 38,
        ["export", "{work}/early", "--out", "{work}/m.pt2"], setup=_early_folder,
        names=("config.json",))
    add("PlateauPolicyScheduler.step(metrics=0.5)", "adapters", 39, code=OPT + (
        "s = PlateauPolicyScheduler(opt, AccelAT(0.1, 0.01, window=1))\n"
        "s.step(metrics=0.5)\ns.step(metrics=0.5)"), expect="work")

    # ---- new inputs, not named by the issue ------------------------------------------------
    new = "{work}/new"

    def train(name: str, flags: list[str], names: tuple[str, ...], **kw: Any) -> None:
        add(name, kw.pop("group", "train flags"), None, ["train", *TINY, *flags, "--out", new],
            names=names, **kw)

    train("--val-size 99999 (digits has 1797)", ["--val-size", "99999"], ("--val-size",))
    train("--attacks '' (empty)", ["--attacks", ""], ("--attacks",))
    train("--attacks linfpgd,,linfpgd", ["--attacks", "linfpgd,,linfpgd"], ("--attacks",))
    train("--device cuda:7 (no GPU)", ["--device", "cuda:7"], ("--device",))
    train("--dataset '' (empty)", ["--dataset", ""], ("--dataset",))
    train("--model 'cnn\\u200b' (zero-width space)", ["--model", "cnn\u200b"], ("--model",))
    train("--resume --restart together", ["--resume", "--restart"], ("--restart", "--resume"))
    train("--policy-config malformed JSON", ["--policy-config", "{work}/pc.json"],
          ("--policy-config", "pc.json"), setup=_write("pc.json", "{not json"), group="config")
    train("--policy-config unknown policy", ["--policy-config", "{work}/pc.json"],
          ("--policy-config", "Nope"), setup=_write("pc.json", '{"policy": "Nope"}'),
          group="config")
    train("--config {'momentum': 'high'}", ["--config", "{work}/c.json"], ("momentum",),
          setup=_write("c.json", '{"momentum": "high"}'), group="config")
    train("--config with a misspelt key", ["--config", "{work}/c.json"], ("epoch",),
          setup=_write("c.json", '{"epoch": 3}'), group="config")
    train("--config a JSON list", ["--config", "{work}/c.json"], ("c.json",),
          setup=_write("c.json", "[1, 2]"), group="config")
    train("--model with no parameters", ["--model", "probe_factories:no_parameters"],
          ("--model", "parameters"), group="network")
    train("--dataset factory with a label 42", ["--dataset", "probe_factories:label_42"],
          ("42",), group="data")
    add("train --out an existing file", "output path", None,
        ["train", *TINY, "--out", "{work}/f"], setup=_write("f", "x"), names=("--out",))
    add("--resume with another --eps", "run folder", None,
        [*RESUME[:-2], "--eps", "0.2", "--out", RUN], setup=_copy_base(), names=("eps",),
        watch=(RUN,))
    add("--resume: config.json not JSON", "run folder", None, RESUME,
        setup=_edit_file("config.json", lambda t: t[:40]), names=("config.json",),
        watch=(RUN,))
    add("--resume: config.json epochs '1' (a string)", "run folder", None, RESUME,
        setup=_edit_config(_cfg_set("epochs", "1")), names=("epochs",), watch=(RUN,))
    add("--resume: config.json eps 'big'", "run folder", None, RESUME,
        setup=_edit_config(_cfg_set("eps", "big")), names=("eps",), watch=(RUN,))
    add("--resume: metrics.jsonl garbage line", "run folder", None, RESUME,
        setup=_edit_file("metrics.jsonl", _metrics_garbage), names=("metrics",), watch=(RUN,))
    add("--resume: checkpoint of a step run", "checkpoint", None, RESUME,
        setup=_other_policy_ckpt, names=("checkpoint",), watch=(RUN,))
    add("eval: report.json corrupted", "run folder", None, [*EVAL, "--checkpoint", RUN],
        setup=_edit_file("report.json", lambda t: t[:30]), names=("report.json",))
    add("eval: metrics.jsonl garbage line", "run folder", None, [*EVAL, "--checkpoint", RUN],
        setup=_edit_file("metrics.jsonl", _metrics_garbage), names=("metrics.jsonl",))
    add("eval --checkpoint config.json (not a .pt)", "eval flags", None,
        [*EVAL, "--checkpoint", "{base}/config.json"], names=("config.json",))
    add("eval: empty checkpoint.pt", "checkpoint", None, [*EVAL, "--checkpoint", RUN],
        setup=_empty_ckpt, names=("checkpoint.pt",))
    add("eval --attacks nosuch", "eval flags", None,
        [*EVAL, "--attacks", "nosuch", "--checkpoint", "{base}"], names=("--attacks",))
    add("export --out under a file", "output path", None,
        ["export", "{base}", "--out", "{work}/f/m.pt2"], setup=_write("f", "x"),
        names=("--out",))
    add("export --out the run's own checkpoint.pt", "output path", None,
        ["export", RUN, "--out", RUN + "/checkpoint.pt"], setup=_copy_base(),
        names=("--out", "checkpoint.pt"), watch=(RUN,))
    add("plot-policy --out the run's own config.json", "output path", None,
        [*PLOT, "--out", RUN + "/config.json"], setup=_copy_base(),
        names=("--out", "config.json"), watch=(RUN,))
    add("plot-policy --lr-max nan", "plot-policy", None,
        [*PLOT, "--lr-max", "nan", "--out", "{work}/p.png"], names=("--lr-max",))
    add("plot-policy --policy-config a JSON list", "plot-policy", None,
        ["plot-policy", "--policy-config", "{work}/pc.json", "--steps", "10", "--out",
         "{work}/p.png"], setup=_write("pc.json", "[1]"), names=("--policy-config",))
    add("compare --policies step,nosuch", "compare flags", None,
        [*CMP[:-6], "--policies", "step,nosuch", "--seeds", "0", "--out", "{work}/cmp"],
        names=("--policies", "nosuch"))
    add("compare --policies accelat:bogus=1", "compare flags", None,
        [*CMP[:-6], "--policies", "accelat:bogus=1", "--seeds", "0", "--out", "{work}/cmp"],
        names=("--policies", "bogus"))
    add("compare --out an earlier run's folder", "output path", None,
        [*CMP[:-2], "--out", RUN], setup=_copy_base(), names=("--out", "run"), watch=(RUN,))
    add("PolicyScheduler on an SGD of lr 0", "adapters", None, code=OPT + (
        "opt = torch.optim.SGD([w], lr=0.0, momentum=0.9)\n"
        "PolicyScheduler(opt, OneCycle(0.1, total_steps=10))"), names=("lr",))
    add("PlateauPolicyScheduler.step('abc')", "adapters", None, code=OPT + (
        "s = PlateauPolicyScheduler(opt, AccelAT(0.1, 0.01, window=1))\ns.step('abc')"),
        names=("metric", "abc"))
    add("from_config OneCycle lr 'high'", "core", None, code=(
        "from accelat_core import from_config\n"
        "from_config({'policy': 'OneCycle', 'lr_max': 'high', 'total_steps': 10})"),
        names=("lr_max", "high"))
    add("AccelAT(lr 0.1, lr_min 1.0)", "core", None,
        code="from accelat_core import AccelAT\nAccelAT(0.1, 1.0)", names=("min_lr",))
    add("TrainConfig(attacks='linfpgd') (a str)", "python api", None, code=(
        "from accelat_train import TrainConfig\nTrainConfig(attacks='linfpgd', out='x')"),
        names=("attacks",), expect="either")
    add("load_run(which='middle')", "python api", None,
        code="from accelat_train import load_run\nload_run('{base}', 'middle')",
        names=("which",))
    add("fit() with 10 labels for 120 images", "python api", None, code=DIGITS + (
        f"from accelat_train import fit\nfit(net, (x, y[:10]), out='{{work}}/new', {FIT})"),
        names=("10", "120"))
    add("fit() with an unknown keyword", "python api", None, code=DIGITS + (
        f"from accelat_train import fit\nfit(net, (x, y), out='{{work}}/new', epoks=3, {FIT})"),
        names=("epoks",))
    add("eval: checkpoint stopped.restored_epoch 'abc'", "checkpoint", None,
        [*EVAL, "--checkpoint", RUN], setup=_edit_ckpt(_ckpt_set("stopped", {
            "restored_epoch": "abc"})), names=("restored_epoch", "stopped"))
    add("eval: checkpoint rollback a string", "checkpoint", None,
        [*EVAL, "--checkpoint", RUN], setup=_edit_ckpt(_ckpt_set("rollback", "yes")),
        names=("rollback",))
    add("resume: checkpoint callbacks {'Averaging': 5}", "checkpoint", None, RESUME,
        setup=_edit_ckpt(_ckpt_set("callbacks", {"Averaging": 5})),
        names=("callbacks['Averaging']",), watch=(RUN,))
    add("resume: checkpoint Averaging updates 'many'", "checkpoint", None, RESUME,
        setup=_edit_ckpt(_ckpt_set("callbacks", {"Averaging": {"updates": "many"}})),
        names=("callbacks['Averaging']",), watch=(RUN,))
    add("load_run().test_data(): config eval_size 'forty'", "python api", None,
        code="from accelat_train import load_run\nload_run('{work}/run').test_data()",
        setup=_edit_config(_cfg_set("eval_size", "forty")), names=("eval_size",))
    add("eval: config.json train_size '80' (a string)", "run folder", None,
        [*EVAL, "--checkpoint", RUN], setup=_edit_config(_cfg_set("train_size", "80")),
        names=("config.json: train_size",))
    add("eval: config.json model resnet20 (a cnn run)", "run folder", None,
        [*EVAL, "--checkpoint", RUN], setup=_edit_config(_cfg_set("model", "resnet20")),
        names=("checkpoint.pt", "weights"))
    add("lr-find --out an earlier run's folder", "output path", None,
        ["lr-find", "--dataset", "digits", "--train-size", "80", "--val-size", "40",
         "--device", "cpu", "--threads", "1", "--out", RUN], setup=_copy_base(),
        names=("--out",), watch=(RUN,))
    # fmt: on
    return c


# -- running -------------------------------------------------------------------------------------
def _fill(text: str, work: Path, out: Path) -> str:
    return text.replace("{work}", str(work)).replace("{base}", str(out / "base"))


def _timeless(value: Any) -> Any:
    """A JSON value without its timings (a resumed run's report measures them again)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if "seconds" not in k}
    return [_timeless(v) for v in value] if isinstance(value, list) else value


def _digest(folder: Path) -> dict[str, str]:
    """Each file under ``folder`` (but ``.lock``) by a hash of its content (a JSON file's
    without its timings)."""
    if not folder.is_dir():
        return {}
    found = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name == ".lock":
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            with contextlib.suppress(ValueError):
                data = json.dumps(_timeless(json.loads(data)), sort_keys=True).encode()
        found[str(path.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return found


def _env(work: Path) -> dict[str, str]:
    paths = [str(work), str(ROOT), str(ROOT / "adapters"), str(ROOT / "reference_training")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip


def _command(case: Case, work: Path, out: Path) -> list[str]:
    if case.argv is not None:
        return [sys.executable, "-m", "accelat_train.cli", *(_fill(a, work, out)
                                                            for a in case.argv)]  # fmt: skip
    body = textwrap.indent(_fill(case.code or "", work, out), "    ")
    script = work / "case.py"
    script.write_text(API.format(body=body))
    return [sys.executable, str(script)]


def classify(case: Case, code: int | None, text: str, lost: list[str]) -> str:
    """The class of one outcome (the module docstring)."""
    if code is None:
        return "hang"
    if lost:
        return "loss"
    if "Traceback (most recent call last)" in text or code not in (0, 2):
        return "traceback"
    if code == 0:
        return "silent" if case.expect == "refuse" else "clean"
    if case.expect == "work":
        return "traceback"
    message = text.lower()
    return "clean" if any(n.lower() in message for n in case.names) else "unclear"


def run_case(case: Case, index: int, out: Path, timeout: float) -> dict[str, Any]:
    work = out / "cases" / f"{index:02d}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "probe_factories.py").write_text(FACTORIES)
    if case.setup is not None:
        case.setup(work, out)
    watched = [Path(_fill(w, work, out)) for w in (*case.watch, "{base}")]
    before = {str(w): _digest(w) for w in watched}
    command = _command(case, work, out)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=work, env=_env(work), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip
        code: int | None = done.returncode
        text = (done.stdout or "") + (done.stderr or "")
    except subprocess.TimeoutExpired as exc:
        code, text = None, f"(still running after {timeout:.0f} s) {exc.stderr or ''!s}"
    seconds = time.perf_counter() - start
    # A file of an earlier run changed or gone (one added beside them is not a loss).
    after = {w: _digest(Path(w)) for w in before}
    lost = [f"{w}/{name}" for w, files in before.items() for name, digest in files.items()
            if after[w].get(name) != digest]  # fmt: skip
    outcome = classify(case, code, text, lost)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return {
        "name": case.name, "group": case.group, "item": case.item,
        "issue": case.item is not None, "expect": case.expect, "outcome": outcome,
        "exit": code, "seconds": round(seconds, 1), "lost": lost,
        "message": " | ".join(lines[-3:])[-600:],
        "run": ["accelat", *case.argv] if case.argv is not None else case.code,
    }  # fmt: skip


def train_fixtures(out: Path) -> None:
    """The earlier runs the cases read: ``base`` (accelat) and ``step``, one tiny epoch each."""
    for name, policy in (("base", "accelat"), ("step", "step")):
        if (out / name / "report.json").exists():
            continue
        shutil.rmtree(out / name, ignore_errors=True)
        argv = ["train", *TINY, "--policy", policy, "--out", str(out / name)]
        subprocess.run([sys.executable, "-m", "accelat_train.cli", *argv], check=True,
                       env=_env(out), cwd=out)  # fmt: skip


def counts(results: list[dict[str, Any]], issue: bool) -> dict[str, int]:
    chosen = [r for r in results if r["issue"] == issue]
    return {k: sum(r["outcome"] == k for r in chosen) for k in CLASSES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="a scratch folder (cases/ is replaced)")
    parser.add_argument("--only", help="run only the cases whose name holds this")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a hang")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    train_fixtures(out)
    chosen = [(i, c) for i, c in enumerate(cases()) if not args.only or args.only in c.name]
    results = []
    for index, case in chosen:
        result = run_case(case, index, out, args.timeout)
        results.append(result)
        tag = f"#{case.item}" if case.item is not None else "new"
        print(f"{index:3d} {tag:>4} {result['outcome']:<9} {result['seconds']:6.1f}s  "
              f"{case.name}: {result['message'][-160:]}", flush=True)  # fmt: skip
    summary = {
        "issue": counts(results, True),
        "new": counts(results, False),
        "issue_items": len({r["item"] for r in results if r["issue"]}),
        "results": results,
    }
    (out / "probe.json").write_text(json.dumps(summary, indent=1))
    for key, title in (("issue", "the issue's inputs"), ("new", "new inputs")):
        n = sum(summary[key].values())
        print(f"{title} ({n} cases): " + ", ".join(f"{k} {v}" for k, v in summary[key].items()))
    print(f"wrote {out / 'probe.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
