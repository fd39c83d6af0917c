"""The trainer's range test: its size, its cost, its reading and its fallback."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from accelat_core.finder import CHANCE, LRFindResult, Suggestion, _cut, smooth_losses, suggest
from accelat_train.config import TrainConfig
from accelat_train.training import lr_finder
from accelat_train.training.build import build

torch.set_num_threads(1)

# ../shared beside the repository root, as CI lays it out; absent on a user's machine.
SHARED_TARBALL = Path(__file__).resolve().parents[4] / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(scope="module")
def setup():
    cfg = TrainConfig(dataset="digits", eps=0.1, batch_size=128, lr_max=0.05, seed=3)
    return build(cfg)


def test_smoothing_time_constant_is_a_tenth_of_the_test():
    assert lr_finder.finder_smooth(100) == 0.9
    assert lr_finder.finder_smooth(40) == 0.75
    assert lr_finder.finder_smooth(10) == 0.0


def test_default_size_is_one_step_per_training_batch_clamped(setup):
    # digits: 1437 - 200 validation images in batches of 128 -> 10 batches -> clamped to 20
    assert len(setup.loader) == 10
    assert lr_finder.finder_steps(setup) == lr_finder.MIN_STEPS == 20


def _result(losses):
    lrs = [10 ** (-5 + 6 * i / (len(losses) - 1)) for i in range(len(losses))]
    return LRFindResult(Suggestion(1.0, 0.1, "minimum", 0, None, ()), lrs, losses)


def test_a_flat_curve_falls_back_with_a_warning_that_says_why(setup, monkeypatch):
    monkeypatch.setattr(lr_finder, "_range_test", lambda *a: _result([2.3] * 20))
    with pytest.warns(UserWarning, match="never left its plateau.*Using lr_max 0.1 instead"):
        finding = lr_finder.find_lr(setup)
    assert (finding.lr_max, finding.lr_min) == (0.1, 0.1 / 10)
    assert finding.record()["method"] == "fallback"
    assert "plateau" in finding.record()["problem"]


def test_an_unreadable_curve_falls_back_too(setup, monkeypatch):
    def fail(*_):
        raise ValueError("suggest needs at least 5 usable points, got 2 of 2")

    monkeypatch.setattr(lr_finder, "_range_test", fail)
    with pytest.warns(UserWarning, match="no readable curve"):
        finding = lr_finder.find_lr(setup)
    assert finding.lr_max == lr_finder.FALLBACK_LR_MAX and finding.result is None


def _grid(n):
    return [10 ** (-5 + 6 * i / (n - 1)) for i in range(n)]


def _read(losses, smooth):
    lrs = _grid(len(losses))
    return LRFindResult(suggest(lrs, losses, "minimum", smooth), lrs, losses)


def test_a_spike_then_a_fall_to_chance_is_warned_and_recorded_with_its_lr(setup, monkeypatch):
    # 20 steps (smoothing 0.5): a dip to 2.8, a spike from point 9, then a fall to 2.4.
    losses = [3.1] * 5 + [3.0, 2.9, 2.8, 2.8, 4.5, 4.5, 4.0] + [2.4] * 8
    lrs = _grid(20)
    monkeypatch.setattr(
        lr_finder, "_range_test", lambda setup, steps, smooth: _read(losses, smooth)
    )
    said = re.escape(f"lr finder: the loss diverged at lr {lrs[9]:.3g} (")
    with pytest.warns(UserWarning, match=said) as caught:
        finding = lr_finder.find_lr(setup)
    read = smooth_losses(losses, 0.5)[:9]
    assert finding.lr_max == lrs[read.index(min(read))] / 10 < lrs[9] / 10
    record = finding.record()
    assert record["cut"] == {"reason": "diverged", "lr": lrs[9]}
    assert record["notes"] == [str(w.message).removeprefix("lr finder: ") for w in caught]
    assert record["notes"] == finding.result.notes and len(record["notes"]) == 1
    assert record["edge"] is None and record["method"] == "minimum"


def test_a_suggestion_at_the_end_of_the_range_is_warned_and_recorded(setup, monkeypatch):
    falling = [3.0 - 0.05 * k for k in range(20)]
    monkeypatch.setattr(
        lr_finder, "_range_test", lambda setup, steps, smooth: _read(falling, smooth)
    )
    with pytest.warns(UserWarning, match="the suggestion sits at the last edge of the range test"):
        finding = lr_finder.find_lr(setup)
    assert finding.lr_max == 1.0 and finding.record()["edge"] == "last"
    assert finding.record()["cut"] is None and len(finding.record()["notes"]) == 1


def test_the_range_test_counts_its_passes_and_reads_the_minimum(setup):
    finding = lr_finder.find_lr(setup)
    # fgsm-rs loss: one attack forward+backward and one training forward+backward per image
    images = sum(len(y) for _, (_, y) in zip(range(20), _stream(setup), strict=False))
    assert finding.passes == 2 * images
    assert finding.steps == 20 and len(finding.result.lrs) <= 20
    if finding.problem is None:
        s = finding.result.suggestion
        assert s.method == "minimum" and finding.lr_max == s.lr_max
        assert finding.lr_max == finding.result.lrs[s.index] / 10


def _stream(setup):
    from accelat_train.data import stream
    from accelat_train.data.loader import DeviceLoader

    loader = DeviceLoader(setup.splits.train, 128, device=setup.device, seed=3)
    return stream(loader, 0, None)


@pytest.mark.slow
@pytest.mark.skipif(
    not SHARED_TARBALL.is_file(), reason=f"shared CIFAR-10 tarball not found at {SHARED_TARBALL}"
)
def test_a_cifar10_spike_then_fall_to_chance_is_read_before_the_divergence():
    # The case, smaller (about 30 s on one thread): Free AT's range test on ResNet-20,
    # 2,560 CIFAR-10 images in batches of 64 (40 steps, 1e-5 .. 10). The adversarial loss dips
    # to 2.8, spikes to 6 near lr 1, then falls to 2.4-2.55 (ln 10 = 2.30) with flat
    # predictions; the minimum of the whole curve is at lr 10, and read as lr_max 1.
    cfg = TrainConfig(
        dataset="cifar10", data_dir=str(SHARED_TARBALL), model="resnet20", method="free",
        eps=8 / 255, batch_size=64, train_size=2560, seed=1,
    )  # fmt: skip
    with pytest.warns(UserWarning, match="lr finder: the loss diverged at lr "):
        finding = lr_finder.find_lr(build(cfg))
    result, cut = finding.result, finding.result.suggestion.cut
    usable = _cut(result.losses, lr_finder.finder_smooth(finding.steps))
    whole = usable.index(min(usable))  # the reading without a cut
    assert finding.problem is None and finding.steps == len(result.lrs) == 40
    assert cut is not None and whole >= cut.index and cut.lower_lr == result.lrs[whole]
    assert min(result.losses[cut.index :]) <= CHANCE * math.log(10)  # a fall to chance
    assert result.suggestion.index < cut.index
    assert finding.lr_max == result.lrs[result.suggestion.index] / 10 < result.lrs[whole] / 1000
    assert finding.record()["cut"] == {"reason": "diverged", "lr": cut.lr}
