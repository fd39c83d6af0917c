"""The network is checked against one batch of the data before training: a network whose
outputs do not match the data's classes, or that cannot take its images, is one error
naming what does not fit (expected and got), before the lr finder, the optimizer or the
weight average read anything; lazy layers get their shapes from that same dry pass.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from accelat_train import fit
from accelat_train.cli import main

HERE = "tests.train.factories"
TINY = [
    "--dataset", "digits", "--eps", "0.1", "--batch-size", "40", "--train-size", "200",
    "--val-size", "40", "--monitor-size", "40", "--monitor-steps", "2", "--eval-size", "40",
    "--eval-steps", "2", "--device", "cpu", "--quiet", "--policy", "step", "--epochs", "1",
]  # fmt: skip


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _data(n: int = 60, labels: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` float images 1 x 8 x 8 in [0, 1] and labels ``0 .. labels - 1`` in turn."""
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    return x, torch.arange(n) % labels


def _net(outputs: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, outputs))


FIT = dict(eps=0.1, epochs=1, batch_size=20, lr_max=0.05, policy="step", monitor_size=6,
           monitor_steps=1, eval_steps=1, device="cpu", ema_epochs=0.0)  # fmt: skip


# -- outputs that do not match the classes -------------------------------------------------------
def test_a_model_with_too_few_outputs_is_refused_before_the_lr_finder(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _run(["train", *TINY, "--lr-max", "auto", "--model", f"{HERE}:three_logits",
                      "--out", str(out)], capsys)  # fmt: skip
    assert code == 2
    assert err == (
        f"accelat train: error: --model {HERE}:three_logits does not fit the data: for a "
        "batch of 2 images it returns outputs of shape [2, 3], expected [2, 10] (one logit "
        "per class; the data have 10 classes, labels 0 to 9)\n"
    )
    assert not (out / "lr_find.png").exists() and not (out / "metrics.jsonl").exists()


def test_fit_with_a_three_output_network_on_ten_classes_names_both(tmp_path):
    with pytest.raises(ValueError, match=r"returns outputs of shape \[2, 3\], expected \[2, 10\]"):
        fit(_net(3), _data(), out=str(tmp_path / "run"), **FIT)


def test_a_label_beyond_the_networks_outputs_is_named(tmp_path):
    x, y = _data()
    y[7] = 42  # the classes become 0 .. 42
    with pytest.raises(ValueError, match=r"the data have 43 classes, labels 0 to 42\)"):
        fit(_net(10), (x, y), out=str(tmp_path / "run"), **FIT)


def test_a_network_for_cifar_on_digits_says_which_images_it_cannot_take(tmp_path, capsys):
    code, err = _run(["train", *TINY, "--lr-max", "0.05", "--model", f"{HERE}:for_cifar",
                      "--out", str(tmp_path / "run")], capsys)  # fmt: skip
    assert code == 2
    assert err.startswith(
        f"accelat train: error: --model {HERE}:for_cifar cannot take the data's images: a batch "
        "of shape [2, 1, 8, 8] (N x C x H x W, float32 in [0, 1]) fails with RuntimeError: "
        "mat1 and mat2 shapes cannot be multiplied"
    )
    assert "Traceback" not in err


def test_a_network_that_returns_no_tensor_is_named(tmp_path):
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _net(10)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.net(x), x

    with pytest.raises(ValueError, match=r"returns a tuple, expected a tensor of logits"):
        fit(Pair(), _data(), out=str(tmp_path / "run"), **FIT)


def test_a_network_without_trainable_parameters_is_named(tmp_path):
    frozen = _net(10).requires_grad_(False)
    with pytest.raises(ValueError, match=r"the model given to fit\(\) has no trainable param"):
        fit(frozen, _data(), out=str(tmp_path / "run"), **FIT)


# -- not a network at all ----------------------------------------------------------------------
@pytest.mark.parametrize("model", ["notamodule", None, _net])
def test_fit_with_something_other_than_a_module_names_model(model, tmp_path):
    with pytest.raises(TypeError, match=r"^model must be a torch.nn.Module"):
        fit(model, _data(), out=str(tmp_path / "run"), **FIT)
    assert not (tmp_path / "run").exists()


# -- lazy layers -----------------------------------------------------------------------------------
def test_lazy_layers_get_their_shapes_before_the_lr_finder_and_the_average(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _run(["train", *TINY, "--lr-max", "auto", "--lr-find-steps", "5",
                      "--ema-epochs", "1", "--model", f"{HERE}:lazy", "--out", str(out)],
                     capsys)  # fmt: skip
    assert code == 0, err
    assert (out / "report.json").exists()


def test_fit_trains_a_lazy_network_and_the_dry_pass_draws_its_weights_from_the_seed(tmp_path):
    def lazy() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(10))

    first, second = lazy(), lazy()
    fit(first, _data(), out=str(tmp_path / "a"), **FIT)
    fit(second, _data(), out=str(tmp_path / "b"), **FIT)
    assert isinstance(first[1], nn.Linear) and first[1].weight.shape == (10, 64)
    assert torch.equal(first[1].weight, second[1].weight)  # the same seed, the same weights


def test_the_dry_pass_leaves_batchnorm_statistics_as_they_were():
    from accelat_train.config import TrainConfig
    from accelat_train.training.build import build

    setup = build(TrainConfig(dataset="digits", eps=0.1, lr_max=0.05, device="cpu"))
    norms = [m for m in setup.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(int(m.num_batches_tracked) == 0 for m in norms)
    assert all(bool((m.running_mean == 0).all()) for m in norms)
    assert setup.model.training


def test_a_network_on_the_meta_device_is_named_before_it_is_moved(tmp_path):
    with torch.device("meta"):
        ghost = _net(10)
    with pytest.raises(ValueError, match=r"the model given to fit\(\) has no data in 1.weight"):
        fit(ghost, _data(), out=str(tmp_path / "run"), **FIT)
