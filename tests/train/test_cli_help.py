"""``accelat --help`` and ``--version``: fast (no torch imported), and every help text in words.

Parsing must not import torch: the names and help lines come from torch-free modules
(the records of :mod:`accelat_train.registry`, the policy catalogue, the config), and the
commands import what they run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from accelat_train.flags import build_parser

_PROBE = """
import atexit, runpy, sys
atexit.register(lambda: print("torch imported: %s" % ("torch" in sys.modules), file=sys.stderr))
sys.argv = ["accelat_train", *sys.argv[1:]]
runpy.run_module("accelat_train", run_name="__main__", alter_sys=True)
"""


def _module(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m accelat_train ARGS``, reporting at exit whether torch was imported."""
    return subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], ["train", "--help"], ["compare", "--help"], ["eval", "--help"]],
)
def test_version_and_help_answer_without_importing_torch(argv):
    done = _module(*argv)
    assert done.returncode == 0, done.stderr
    assert "torch imported: False" in done.stderr
    assert ("accelat 0." in done.stdout) if argv == ["--version"] else ("usage:" in done.stdout)


def test_a_command_that_runs_still_imports_what_it_needs(tmp_path):
    done = _module("plot-policy", "--policy", "step", "--steps", "20", "--out",
                   str(tmp_path / "p.png"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "p.png").stat().st_size > 0


def _sub(name: str) -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_compare_help_lists_its_policies_under_the_flag_it_has_and_marks_out_required():
    text = _flat(_sub("compare").format_help())
    assert "policies (--policies, --baseline):" in text
    assert "(--policy)" not in text
    assert "--out OUT folder of the comparison: one run folder per arm and seed" in text
    assert "(required, unless" in text.rsplit("--out OUT", 1)[1].split("--", 1)[0]


@pytest.mark.parametrize("command", ["train", "compare", "demo", "lr-find", "eval", "export"])
def test_out_says_required_wherever_it_is(command):
    sub = _sub(command)
    for action in sub._actions:
        if action.required and action.option_strings:
            assert "(required)" in action.help, action.option_strings


def test_compare_help_explains_the_two_ratio_tables():
    text = _flat(_sub("compare").format_help())
    assert "passes to the target relative to the baseline's" in text
    assert "without the lr finder's and the monitor's passes" in text
    assert "with them" in text


@pytest.mark.parametrize("command", ["train", "compare", "demo", "lr-find"])
def test_option_groups_say_what_they_hold(command):
    titles = [g.title for g in _sub(command)._action_groups]
    assert "run" not in titles and "this run" not in titles
    assert all(t for t in titles)


@pytest.mark.parametrize(
    "command", ["train", "compare", "demo", "lr-find", "eval", "export", "plot-policy"]
)
def test_help_lines_are_words_not_code(command):
    """No ``(default: None)`` or ``False`` noise, no ``None:``, ``//`` or ``..`` shorthand: an
    unset option says in words what happens without it."""
    text = _flat(_sub(command).format_help())
    for noise in ("(default: None)", "(default: False)", "None:", "//", "1..2"):
        assert noise not in text, noise


def test_epochs_and_window_say_what_they_mean():
    actions = {a.dest: a for a in _sub("train")._actions}
    assert "one pass of gradient work over the training set" in actions["epochs"].help
    assert "epochs" in actions["window"].help and "a tenth of --epochs" in actions["window"].help


def test_every_records_code_is_where_it_says():
    from accelat_train import registry
    from accelat_train.adversarial.methods import Method
    from accelat_train.callbacks.loggers import make_loggers

    kinds = (registry.METHODS, registry.ATTACKS, registry.DATASETS, registry.MODELS,
             registry.LOGGERS, registry.OPTIMIZERS)  # fmt: skip
    for kind in kinds:
        for name, entry in kind.items():
            code = entry.load()
            assert callable(code) or kind is registry.ATTACKS, (kind.kind, name)
    assert all(issubclass(e.load(), Method) for e in registry.METHODS.values())
    assert all(e.load().describe(3) for e in registry.ATTACKS.values())
    assert [type(x).__name__ for x in make_loggers(["csv"], "runs/x")] == ["CSVLogger"]
