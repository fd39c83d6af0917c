"""Model zoo: output shapes, sizes against the published architectures, normalisation wrapper."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch
from torch import nn

from accelat_train.models import NormalizedModel, build_model
from accelat_train.models.wideresnet import WideResNet
from accelat_train.registry import MODELS

torch.set_num_threads(1)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@functools.cache
def built(name: str) -> nn.Module:
    """Each model built once (the wide ResNets take seconds), 7-way so that a builder ignoring
    num_classes shows; in eval mode, so forwards do not change it."""
    torch.manual_seed(0)
    return build_model(name, num_classes=7).eval()


@pytest.mark.parametrize("name", tuple(MODELS))
def test_every_model_maps_cifar_images_to_class_logits(name):
    model = built(name)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["cnn", "resnet20"])
def test_small_models_take_one_channel_eight_pixel_digits(name):
    model = build_model(name, num_classes=10, in_channels=1, image_size=8)
    out = model(torch.randn(5, 1, 8, 8))
    assert out.shape == (5, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_parameter_counts_match_the_published_architectures():
    # He et al. 2016, table 6: ResNet-20 for CIFAR has 0.27M parameters.
    assert round(n_params(build_model("resnet20", 10)) / 1e6, 2) == 0.27
    # torchvision's ImageNet ResNet-50 has 25,557,032 parameters: swap its 7x7 stem conv (9,408)
    # for the CIFAR 3x3 one (1,728) and its 1000-way head (2,049,000) for a 10-way one (20,490).
    assert n_params(build_model("resnet50", 10)) == 25_557_032 - 9_408 + 1_728 - 2_049_000 + 20_490
    # torchvision's MobileNetV2 has 3,504,872; the CIFAR variant only changes strides and the
    # head (1280 x 1000 + 1000 -> 1280 x 10 + 10).
    assert n_params(build_model("mobilenetv2", 10)) == 3_504_872 - 1_281_000 + 12_810
    # PreAct-ResNet-18 (Wong et al. 2020's model): 11.17M.
    assert round(n_params(build_model("preact18", 10)) / 1e6, 2) == 11.17


def wrn_parameters(depth: int, widen: int, num_classes: int, in_channels: int = 3) -> int:
    """WRN-depth-widen's parameter count from its architecture, by hand: a 3x3 stem conv to 16
    channels; per group (16 -> 16k -> 32k -> 64k channels) n = (depth - 4) / 6 blocks, each
    BN (2 cin) + 3x3 conv (9 cin cout) + BN (2 cout) + 3x3 conv (9 cout^2), the first with a 1x1
    projection (cin cout) as cin != cout; then BN (2 * 64k) and a linear layer."""
    n = (depth - 4) // 6
    widths = (16, 16 * widen, 32 * widen, 64 * widen)
    total = 9 * in_channels * 16
    for cin, cout in itertools.pairwise(widths):
        total += 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout + cin * cout
        total += (n - 1) * (4 * cout + 18 * cout * cout)
    return total + 2 * widths[-1] + widths[-1] * num_classes + num_classes


def test_wide_resnets_have_the_published_parameter_counts():
    # RobustBench's Standard WRN-28-10 and the TRADES WRN-34-10 (10 classes): 36.5M and 46.2M.
    assert wrn_parameters(28, 10, num_classes=10) == 36_479_194
    assert wrn_parameters(34, 10, num_classes=10) == 46_160_474
    assert n_params(built("wrn28-10")) == wrn_parameters(28, 10, num_classes=7)
    assert n_params(built("wrn34-10")) == wrn_parameters(34, 10, num_classes=7)
    assert len(built("wrn28-10").layers) == 12 and len(built("wrn34-10").layers) == 15


def test_wide_resnet_groups_are_16k_32k_64k_wide_at_full_half_quarter_resolution():
    model = built("wrn28-10")
    shapes = []
    hooks = [
        model.layers[i].register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
        for i in (3, 7, 11)  # the last block of each group
    ]
    try:
        with torch.no_grad():
            model(torch.randn(1, 3, 32, 32))
    finally:
        for hook in hooks:
            hook.remove()
    assert shapes == [(1, 160, 32, 32), (1, 320, 16, 16), (1, 640, 8, 8)]


def test_wide_resnet_takes_eight_pixel_and_one_channel_input():
    with torch.no_grad():
        assert built("wrn34-10")(torch.randn(2, 3, 8, 8)).shape == (2, 7)
    # The same class with one input channel (a small instance: the 1-channel stem is the change).
    small = WideResNet(depth=10, widen=2, num_classes=10, in_channels=1)
    assert n_params(small) == wrn_parameters(10, 2, num_classes=10, in_channels=1)
    out = small(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in small.parameters())


def test_wide_resnet_in_normalized_model_sees_normalised_input_and_passes_input_gradients():
    net = built("wrn28-10")
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    model = NormalizedModel(net, mean, std)
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = model(x)
    with torch.no_grad():
        by_hand = net((x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1))
    torch.testing.assert_close(out, by_hand)
    # An attack's input gradient flows through the normalisation (no parameter gradients).
    (grad,) = torch.autograd.grad(out[0, 0], x)
    assert grad.shape == x.shape and grad.abs().sum() > 0


@pytest.mark.parametrize(("depth", "widen"), [(28.0, 10), (27, 10), (4, 10), (28, 0)])
def test_wide_resnet_rejects_impossible_depth_or_width(depth, widen):
    with pytest.raises(ValueError, match="depth must be 6n" if widen else "widen must be"):
        WideResNet(depth, widen, num_classes=10)


def test_resnet20_stages_halve_resolution_and_double_width():
    model = build_model("resnet20", 10)
    shapes = []
    model.layers.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    for block in (model.layers[3], model.layers[6]):
        block.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    model(torch.randn(1, 3, 32, 32))
    assert shapes == [(1, 32, 16, 16), (1, 64, 8, 8), (1, 64, 8, 8)]


@pytest.mark.parametrize("name", ["cnn", "resnet20", "preact18", "mobilenetv2"])
def test_models_train_under_channels_last_and_bf16_autocast(name):
    torch.manual_seed(0)
    model = build_model(name, 10).to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (2, 10) and out.dtype == torch.bfloat16
    nn.functional.cross_entropy(out.float(), torch.tensor([1, 2])).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_normalized_model_normalises_per_channel_before_the_net():
    net = build_model("cnn", 10).eval()
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    model = NormalizedModel(net, mean, std)
    assert model.net is net and model.mean.shape == (3, 1, 1) and model.std.shape == (3, 1, 1)
    x = torch.rand(4, 3, 32, 32)
    by_hand = torch.stack([(x[:, c] - mean[c]) / std[c] for c in range(3)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(by_hand))
    state = model.state_dict()
    assert torch.equal(state["mean"].flatten(), torch.tensor(mean))
    assert torch.equal(state["std"].flatten(), torch.tensor(std))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("vgg16", 10), "model must be one of"),
        (("cnn", 1), "num_classes must be"),
        (("cnn", 10, 0), "in_channels must be"),
        (("cnn", 10, 3, 4), "image_size must be"),
    ],
)
def test_build_model_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        build_model(*args)


def test_normalized_model_rejects_non_positive_std():
    with pytest.raises(ValueError, match="std must be positive"):
        NormalizedModel(nn.Identity(), (0.5,), (0.0,))
