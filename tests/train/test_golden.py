"""The trainer's outputs equal those recorded before its redesign (tests/train/golden.json).

Fixed-seed CPU runs (free AT with accelat, step, plateau and the lr finder; fgsm-rs with the
overfitting check; pgd; a run resumed after a NaN stop; 2-rank DDP; ``accelat compare`` on
two policies and two seeds): each run's metrics rows and report without seconds, and a
sha256 of its final weights. Keys added since the recording (new report sections) are not
compared; every recorded key must be there with the same value.
"""

from __future__ import annotations

import json

import pytest

from tests.train import golden_runs

pytestmark = pytest.mark.slow

GOLDEN = json.loads(golden_runs.GOLDEN.read_text())


def _assert_contains(got, want, where="") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: {got!r} is not a dict"
        for key, value in want.items():
            assert key in got, f"{where}/{key} is missing"
            _assert_contains(got[key], value, f"{where}/{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_contains(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("name", sorted(golden_runs.TRAIN_RUNS))
def test_train_run_matches_its_golden_record(name, tmp_path):
    _assert_contains(golden_runs.run_train(name, tmp_path), GOLDEN[name], name)


def test_compare_matches_its_golden_record(tmp_path):
    _assert_contains(golden_runs.run_compare(tmp_path), GOLDEN["compare"], "compare")


def test_two_rank_ddp_run_matches_its_golden_record(tmp_path):
    _assert_contains(golden_runs.run_ddp(tmp_path), GOLDEN["ddp"], "ddp")
