"""Model zoo: output shapes, sizes against the published architectures, normalisation wrapper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from accelat_train.models import MODEL_NAMES, NormalizedModel, build_model

torch.set_num_threads(1)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_maps_cifar_images_to_class_logits(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7).eval()
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
