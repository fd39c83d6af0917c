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
