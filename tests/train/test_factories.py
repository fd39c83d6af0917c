"""``module:factory`` datasets and models: the forms accepted, the conversion, every refusal.

The factories live in tests/train/factories.py, named as ``tests.train.factories:<fn>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from accelat_train.adversarial.evaluation import as_tensors
from accelat_train.data import DEFAULT_VAL_FRACTION, DeviceLoader, load_splits
from accelat_train.factory import call_factory, is_factory_name
from accelat_train.models import NormalizedModel, build_model
from tests.train import factories

HERE = "tests.train.factories"


def rows(x: np.ndarray) -> list[bytes]:
    """Images as sorted byte strings: compares splits as multisets, ignoring order."""
    return sorted(image.tobytes() for image in x)


# ------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("mypkg.nets:wrn", True),
        ("m:f", True),
        ("pkg.mod:Class.build", True),
        ("resnet20", False),
        ("mypkg.nets:", False),
        (":wrn", False),
        ("a:b:c", False),
        ("my-pkg:f", False),
        ("/data/cifar:x", False),
        (None, False),
    ],
)
def test_factory_names_are_dotted_module_colon_dotted_attribute(name, valid):
    assert is_factory_name(name) is valid


def test_call_factory_passes_keywords_and_lets_the_factorys_own_errors_through():
    assert call_factory("number", "fractions:Fraction", numerator=3, denominator=6) == 0.5
    with pytest.raises(RuntimeError, match="the factory's own bug"):
        call_factory("dataset", f"{HERE}:raises_inside")


# ------------------------------------------------------------------------------------ datasets


def test_uint8_dataset_is_split_with_a_tenth_held_out_for_val():
    splits = load_splits(f"{HERE}:uint8_nhwc", seed=0)
    x, y = factories.pixels()
    assert splits.classes == factories.CLASSES
    assert len(splits.val) == round(DEFAULT_VAL_FRACTION * 30) == 3
    assert np.array_equal(np.bincount(splits.val.y), [1, 1, 1])  # stratified
    assert rows(np.concatenate([splits.train.x, splits.val.x])) == rows(x[:30])
    np.testing.assert_array_equal(splits.test.x, x[30:])
    np.testing.assert_array_equal(splits.test.y, y[30:])
    assert splits.train.x.dtype == np.uint8 and splits.train.y.dtype == np.int64
    assert splits.augment  # 16 px images
    pixels = splits.train.x.astype(np.float64) / 255
    assert splits.mean == pytest.approx(pixels.mean(axis=(0, 1, 2)), abs=1e-12)


@pytest.mark.parametrize("form", ["float32_tensors_on_grid", "float64_on_grid", "float16_on_grid"])
def test_float_images_on_the_8_bit_grid_become_the_same_uint8_images(form):
    reference = load_splits(f"{HERE}:uint8_nhwc", seed=3)
    splits = load_splits(f"{HERE}:{form}", seed=3)
    for ours, theirs in ((splits.train, reference.train), (splits.test, reference.test)):
        assert ours.x.dtype == np.uint8 and ours.x.flags.c_contiguous
        np.testing.assert_array_equal(ours.x, theirs.x)
        np.testing.assert_array_equal(ours.y, theirs.y)
    assert splits.mean == reference.mean and splits.std == reference.std


def test_float_images_off_the_grid_stay_float32_and_reach_the_loader_unchanged():
    splits = load_splits(f"{HERE}:float_off_grid", val_size=0)
    given = torch.from_numpy(np.random.default_rng(1).random((40, 3, 16, 16)).astype(np.float32))
    assert splits.train.x.dtype == np.float32 and splits.train.x.shape == (30, 16, 16, 3)
    x, _ = next(DeviceLoader(splits.test, 10, shuffle=False).epoch(0))  # test keeps its order
    assert torch.equal(x, given[30:]) and x.dtype == torch.float32
    train = given[:30].double()
    assert splits.mean == pytest.approx(train.mean(dim=(0, 2, 3)).tolist(), abs=1e-7)
    assert splits.std == pytest.approx(train.std(dim=(0, 2, 3), correction=0).tolist(), abs=1e-7)


def test_one_split_off_the_grid_makes_both_float32_with_the_same_values():
    splits = load_splits(f"{HERE}:off_grid_test_split", val_size=0)
    x, _ = factories.pixels()
    assert splits.train.x.dtype == splits.test.x.dtype == np.float32
    assert rows(splits.train.x) == rows(x[:30].astype(np.float32) / np.float32(255))
    assert splits.test.x[5, 0, 0, 0] == 0.5


def test_float_dataset_reaches_the_evaluation_unchanged():
    splits = load_splits(f"{HERE}:float_off_grid", val_size=0)
    x, _ = as_tensors(splits.test, torch.device("cpu"))
    expected = np.random.default_rng(1).random((40, 3, 16, 16))[30:].astype(np.float32)
    assert torch.equal(x, torch.from_numpy(expected))


def test_small_grey_dataset_keeps_one_channel_and_is_not_augmented():
    splits = load_splits(f"{HERE}:small_grey", val_size=0)
    assert splits.train.x.shape == (30, 8, 8, 1) and not splits.augment


def test_data_dir_is_passed_to_the_factory_as_a_path(tmp_path):
    splits = load_splits(f"{HERE}:with_data_dir", tmp_path, val_size=0)
    assert splits.classes[0] == f"from {tmp_path}"


DATASET_REFUSALS = [
    ("no_such_module_here:make", r"cannot import module 'no_such_module_here'.*PYTHONPATH"),
    (f"{HERE}:missing", rf"'{HERE}:missing': module '{HERE}' has no attribute 'missing'"),
    (f"{HERE}:NOT_CALLABLE", r"'NOT_CALLABLE' is a int, not a callable factory"),
    (f"{HERE}:needs_an_argument", r"cannot be called as needs_an_argument\(\).*size"),
    (f"{HERE}:returns_a_pair", r"must return \(train, test, classes\), got tuple of 2 items"),
    (f"{HERE}:train_not_a_pair", r"train must be a pair \(x, y\), got tuple"),
    (f"{HERE}:x_a_list", r"train x must be a numpy array or torch tensor, got list"),
    (f"{HERE}:x_channels_first_uint8", r"train x looks channels-first \(30, 3, 16, 16\)"),
    (f"{HERE}:x_grey_without_channel_axis", r"uint8 \(30, 16, 16\).*x\[\.\.\., None\]"),
    (f"{HERE}:x_float_channels_last", r"train x looks channels-last \(30, 16, 16, 3\)"),
    (f"{HERE}:x_float_above_one", r"train x must lie in \[0, 1\], got values in \[0\.0, 2\.0\]"),
    (f"{HERE}:x_float_nan", r"train x must lie in \[0, 1\], got values in \[nan"),
    (f"{HERE}:x_int32", r"train x must be uint8 N x H x W x C or floating .* got int32"),
    (f"{HERE}:y_float", r"train y must be 30 integer labels .* got float32"),
    (f"{HERE}:y_one_short", r"train y must be 30 integer labels .* \(29,\)"),
    (f"{HERE}:labels_out_of_range", r"train labels must lie in \[0, 3\) for 3 classes, got 1..3"),
    (f"{HERE}:negative_labels", r"train labels must lie in \[0, 3\) .* got -1..1"),
    (f"{HERE}:classes_a_string", r"classes must be a sequence of 2 or more distinct str"),
    (f"{HERE}:classes_repeated", r"classes must be .* got tuple \('cat', 'cat', 'owl'\)"),
    (f"{HERE}:classes_not_str", r"classes must be .* distinct str, got tuple \(0, 1, 2\)"),
    (f"{HERE}:sizes_differ", r"train images are H x W x C = \(16, 16, 3\) but test .*\(8, 8, 3\)"),
    (f"{HERE}:empty_test", r"test holds no images"),
]


@pytest.mark.parametrize(("name", "message"), DATASET_REFUSALS)
def test_a_broken_dataset_factory_is_refused_naming_it_and_the_problem(name, message):
    with pytest.raises(ValueError, match=message) as caught:
        load_splits(name)
    assert str(caught.value).startswith(f"dataset '{name}': ")


def test_data_dir_for_a_factory_without_that_parameter_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"cannot be called as uint8_nhwc\(data_dir=\.\.\.\)"):
        load_splits(f"{HERE}:uint8_nhwc", tmp_path)


def test_a_name_that_is_neither_a_dataset_nor_a_factory_is_refused():
    with pytest.raises(ValueError, match=r"dataset must be one of .*'folder'.*'module:factory'"):
        load_splits("tests.train.factories")


# ------------------------------------------------------------------------------------ models


def test_model_factory_is_called_with_classes_and_channels_and_wrapped_like_a_built_in():
    net = build_model(f"{HERE}:tiny_net", num_classes=5, in_channels=1, image_size=8)
    assert net[0].in_channels == 1 and net[-1].out_features == 5
    model = NormalizedModel(net, mean=(0.5,), std=(0.25,))
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 5)


def test_a_factory_dataset_and_model_train_together():
    splits = load_splits(f"{HERE}:small_grey", val_size=0)
    net = build_model(f"{HERE}:tiny_net", len(splits.classes), in_channels=1, image_size=8)
    model = NormalizedModel(net, splits.mean, splits.std)
    x, y = next(DeviceLoader(splits.train, 8, augment=splits.augment).epoch(0))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_module_here:net", r"model 'no_such_module_here:net': cannot import module"),
        (f"{HERE}:missing", r"model '.*:missing': module .* has no attribute 'missing'"),
        (f"{HERE}:NOT_CALLABLE", r"model '.*:NOT_CALLABLE': 'NOT_CALLABLE' is a int"),
        (f"{HERE}:not_a_module", r"model '.*:not_a_module': returned a str, not a torch.nn.Module"),
        (
            f"{HERE}:net_without_in_channels",
            r"as net_without_in_channels\(num_classes=\.\.\., in_channels=\.\.\.\): .*in_channels",
        ),
        ("tests.train.factories", r"model must be one of .*'wrn28-10'.*'module:factory'"),
    ],
)
def test_a_broken_model_factory_is_refused_naming_it_and_the_problem(name, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, num_classes=10)


def test_factory_module_path_is_the_repository_root():
    # The factories are importable by name because the repository root is on sys.path.
    assert Path(factories.__file__).resolve().parent == Path(__file__).resolve().parent


def test_a_factory_module_in_the_current_folder_is_found_as_python_m_finds_it(
    tmp_path, monkeypatch
):
    """The ``accelat`` script's folder, not the current one, heads ``sys.path``: a user's
    ``mynets/`` beside them must still import."""
    package = tmp_path / "mynets_here"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "small.py").write_text(
        "from torch import nn\n\n\ndef net(num_classes, in_channels):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64 * in_channels, num_classes))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "mynets_here", raising=False)
    monkeypatch.delitem(sys.modules, "mynets_here.small", raising=False)
    net = build_model("mynets_here.small:net", num_classes=4, in_channels=1, image_size=8)
    assert net[1].out_features == 4
