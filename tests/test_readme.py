"""The README's promises: its Python quickstart runs as printed, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block_after(marker: str) -> str:
    match = re.search(re.escape(marker) + r"\s*```bash\n(.+?)\n```", README, re.S)
    assert match, f"README.md has no bash block after {marker}"
    return match.group(1).strip()


def test_core_quickstart_runs_and_prints_the_decision_it_shows():
    heading = "## Quickstart: the core in a plain Python loop"
    code = re.search(re.escape(heading) + r"\s*```python\n(.+?)```", README, re.S)
    assert code, "README.md lost its core quickstart"
    out = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, check=True
    ).stdout
    # The comment in the README says what the print shows; hold the README to it.
    shown = re.search(r"print\(accelat.decisions\)\s*# (.+)", code.group(1)).group(1)
    prefix = shown.split("gain=")[0]
    assert out.strip().startswith(prefix), (out, shown)
    assert "new_lr=0.05)" in out


def test_ci_runs_the_readme_test_command_word_for_word():
    # Run CI's own extraction line (``cmd=$(...)`` in .ci/run) and compare what it finds
    # with the README's block: a change to either that makes CI run something else fails.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    extraction = re.findall(r"^cmd=\$\(.+\)$", ci, re.M)
    assert len(extraction) == 1, "CI no longer reads its command with one cmd=$(...) line"
    assert re.search(r'^bash -c "set -e; \$cmd"$', ci, re.M), "CI no longer runs $cmd"
    found = subprocess.run(
        ["bash", "-c", f'{extraction[0]}\nprintf %s "$cmd"'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    command = _block_after("<!-- test-command -->")
    assert found == command
    assert command.startswith("python3 -m venv .venv")
    assert "python -m pytest" in command


def test_demo_command_installs_torch_first_and_runs_accelat_demo():
    command = _block_after("<!-- demo-command -->")
    assert command.startswith("python3 -m venv .venv")
    assert command.index("torch==2.13.0") < command.index('".[train]"')
    assert command.endswith("accelat demo")


# -- every other code block is run, or stands in an example that the tests run --------------
def _blocks(language: str, marker: str = "") -> list[tuple[str, str]]:
    """(the marker's argument, the block) for each ``language`` block after ``<!-- marker``."""
    pattern = rf"<!-- {re.escape(marker)}\s*(\S*)\s*-->\s*```{language}\n(.+?)```"
    return re.findall(pattern, README, re.S)


def _normal(line: str) -> str:
    return line.split("  # fmt: skip")[0].strip()


def test_every_excerpt_of_an_example_stands_in_it_in_order():
    excerpts = _blocks("python", "from")
    assert {path for path, _ in excerpts} >= {
        "examples/torch_loop.py", "examples/torch_ema.py", "examples/keras_fit.py",
        "examples/optax_loop.py", "examples/fit_own_model.py",
    }  # fmt: skip
    for path, block in excerpts:
        source = iter(_normal(line) for line in (ROOT / path).read_text().splitlines())
        for line in filter(None, map(_normal, block.splitlines())):
            assert any(line == have for have in source), f"{path} lacks, in order: {line!r}"


def test_every_python_block_is_an_excerpt_or_run():
    blocks = re.findall(r"(<!--[^>]*-->\s*)?```python\n", README)
    marked = [b for b in blocks if b.strip().startswith(("<!-- from", "<!-- runs"))]
    assert len(blocks) == len(marked) + 1  # + the quickstart, which the first test runs


def test_the_readme_and_the_help_give_the_demo_the_same_measured_time():
    from accelat_train.flags import DEMO_TIME, build_parser

    sub = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    demo_help = next(a.help for a in sub._choices_actions if a.dest == "demo")
    assert f"(CPU, {DEMO_TIME})" in demo_help
    assert README.count(DEMO_TIME) == 2  # the two-commands intro and the command listing
    assert "~1 min" not in README and "a few minutes" not in README


def test_the_load_run_block_runs_on_the_demos_folder(tmp_path):
    ((_, block),) = _blocks("python", "runs-after-demo")
    from accelat_train import TrainConfig, train

    folder = tmp_path / "accelat-demo" / "accelat" / "seed0"
    cfg = TrainConfig(dataset="digits", eps=0.1, epochs=1, train_size=100, val_size=40,
                      monitor_size=40, monitor_steps=1, eval_size=40, eval_steps=1,
                      lr_max=0.05, monitor_every=1, device="cpu", out=str(folder))  # fmt: skip
    train(cfg, quiet=True)
    done = subprocess.run([sys.executable, "-c", block + "\nprint(float(accuracy))"],
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert 0.0 <= float(done.stdout.split()[-1]) <= 1.0


def test_every_accelat_command_line_in_the_readme_parses():
    from accelat_train.flags import build_parser

    lines = []
    for block in re.findall(r"```bash\n(.+?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("accelat "):
                lines.append(line.split()[1:])
            elif "-m accelat_train.cli" in line:
                lines.append(line.split("-m accelat_train.cli", 1)[1].split())
    assert len(lines) >= 10
    for argv in lines:
        build_parser().parse_args(argv)  # exits (fails the test) on an unknown flag or value


def test_the_readme_names_no_path_outside_the_repository():
    assert "../" not in README and "/work" not in README
