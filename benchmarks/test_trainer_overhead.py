"""The trainer's epochs against the hand-written Free AT loop (benchmarks/trainer_overhead.py),
in one process, one thread: ``python -m pytest benchmarks/test_trainer_overhead.py
--benchmark-only``. The target, the trainer at >= 0.98x the hand loop's passes/s, and the
figures are in docs/benchmarks.md."""

from __future__ import annotations

import pytest

from benchmarks.trainer_overhead import passes_per_second

EPOCHS = 10


@pytest.mark.parametrize("side", ["hand", "trainer"])
def test_training_passes_per_second(benchmark, side):
    speed = benchmark.pedantic(passes_per_second, args=(side, EPOCHS), rounds=5, iterations=1)
    benchmark.extra_info["passes_per_s"] = speed
    assert speed > 0
