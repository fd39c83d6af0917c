"""DeviceLoader: order, shards and augmentation as pure functions of (seed, epoch, rank)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from accelat_train.data import load_splits
from accelat_train.data.arrays import ArrayData
from accelat_train.data.loader import DeviceLoader, crop_flip, unit_pixels


def indexed_data(n: int, size: int = 6, channels: int = 3) -> ArrayData:
    """Images whose labels are their indices, so a batch tells which examples it holds."""
    rng = np.random.default_rng(n)
    x = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    return ArrayData(x, np.arange(n, dtype=np.int64))


def collect(loader: DeviceLoader, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader.epoch(epoch))
    assert len(batches) == len(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def test_unshuffled_unaugmented_batches_are_the_pixels_in_order():
    data = indexed_data(50)
    loader = DeviceLoader(data, 16, shuffle=False)
    x, y = collect(loader, 0)
    assert len(loader) == 4 and x.dtype == torch.float32 and y.dtype == torch.int64
    assert [len(b) for b, _ in loader.epoch(0)] == [16, 16, 16, 2]
    np.testing.assert_array_equal(y.numpy(), np.arange(50))
    expected = torch.from_numpy(data.x).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(x, expected)
    assert len(DeviceLoader(data, 16, drop_last=True)) == 3


def test_order_and_augmentation_are_a_pure_function_of_seed_epoch_rank():
    data = indexed_data(64)
    first = DeviceLoader(data, 10, augment=True, seed=7)
    for e in range(3):  # a loader that ran earlier epochs ...
        collect(first, e)
    resumed = DeviceLoader(data, 10, augment=True, seed=7)  # ... and a fresh one agree
    x1, y1 = collect(first, 3)
    x2, y2 = collect(resumed, 3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    _, y3 = collect(resumed, 4)
    assert not torch.equal(y1, y3)
    assert sorted(y1.tolist()) == list(range(64))
    other_seed = collect(DeviceLoader(data, 10, augment=True, seed=8), 3)
    assert not torch.equal(other_seed[1], y1)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ddp_shards_are_disjoint_and_equal_sized(world_size):
    data = indexed_data(103)
    shards = []
    for rank in range(world_size):
        loader = DeviceLoader(data, 8, seed=1, rank=rank, world_size=world_size)
        shards.append(collect(loader, 2)[1].tolist())
    assert {len(s) for s in shards} == {103 // world_size}
    union = [i for s in shards for i in s]
    assert len(set(union)) == len(union) == world_size * (103 // world_size)


def reference_crop_flip(image: np.ndarray, dy: int, dx: int, flip: bool) -> np.ndarray:
    """C x H x W image padded by 4 zeros, cropped at (dy, dx), flipped left-right if asked."""
    _, h, w = image.shape
    out = np.pad(image, ((0, 0), (4, 4), (4, 4)))[:, dy : dy + h, dx : dx + w]
    return out[:, :, ::-1] if flip else out


def test_crop_flip_is_a_zero_padded_shift_and_an_exact_mirror():
    x = torch.from_numpy(indexed_data(4, size=8).x).permute(0, 3, 1, 2)
    for dy in range(9):
        for dx in range(9):
            for flip in (False, True):
                offsets = torch.tensor([[dy, dx]] * 4)
                flips = torch.tensor([flip] * 4)
                got = crop_flip(x, offsets, flips).numpy()
                for b in range(4):
                    expected = reference_crop_flip(x[b].numpy(), dy, dx, flip)
                    np.testing.assert_array_equal(got[b], expected)


def test_loader_augments_each_image_by_some_crop_and_flip():
    data = indexed_data(120, size=8)
    x, y = collect(DeviceLoader(data, 32, augment=True, seed=3), 0)
    originals = data.x.transpose(0, 3, 1, 2)
    seen_flips, seen_shifts = set(), set()
    for image, index in zip((x * 255).round().to(torch.uint8).numpy(), y.tolist(), strict=True):
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if np.array_equal(image, reference_crop_flip(originals[index], dy, dx, flip))
        ]
        assert matches, f"image {index} is not a padded crop (+flip) of its original"
        seen_flips.add(matches[0][2])
        seen_shifts.add(matches[0][:2])
    assert seen_flips == {False, True} and len(seen_shifts) > 20


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_loader_replays_the_cpu_loader_exactly():
    data = indexed_data(300, size=32)
    on_cpu = collect(DeviceLoader(data, 64, augment=True, seed=2), 1)
    on_gpu = collect(DeviceLoader(data, 64, augment=True, seed=2, device="cuda"), 1)
    assert on_gpu[0].is_cuda and on_gpu[1].is_cuda
    assert torch.equal(on_gpu[0].cpu(), on_cpu[0]) and torch.equal(on_gpu[1].cpu(), on_cpu[1])


def test_float32_pixels_are_batched_and_augmented_exactly_like_their_uint8_twins():
    data = indexed_data(40, size=12)
    twin = ArrayData(data.x.astype(np.float32) / np.float32(255), data.y)
    for augment in (False, True):
        ours = collect(DeviceLoader(twin, 16, augment=augment, seed=5), 2)
        theirs = collect(DeviceLoader(data, 16, augment=augment, seed=5), 2)
        assert ours[0].dtype == torch.float32
        assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


def test_unit_pixels_copies_float32_and_scales_uint8():
    x = torch.rand(2, 3)
    assert torch.equal(unit_pixels(x), x) and unit_pixels(x).data_ptr() != x.data_ptr()
    levels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(unit_pixels(levels), torch.arange(256, dtype=torch.float32) / 255)


def test_digits_are_never_augmented():
    digits = load_splits("digits", seed=0)
    loader = DeviceLoader(digits.train, 256, augment=digits.augment, shuffle=False)
    x, _ = collect(loader, 0)
    expected = torch.from_numpy(digits.train.x).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(x, expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be"),
        ({"batch_size": 4, "rank": 2, "world_size": 2}, "rank must be"),
        ({"batch_size": 4, "world_size": 0}, "world_size must be"),
        ({"batch_size": 4, "seed": -3}, "seed must be"),
    ],
)
def test_loader_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeviceLoader(indexed_data(10), **kwargs)
