"""Datasets (digits, CIFAR readers, cache, safe unpickling) and the device loader."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from accelat_train import data as data_module
from accelat_train.data import (
    CIFAR10_CLASSES,
    ArrayData,
    DeviceLoader,
    crop_flip,
    load_splits,
)

# ../shared beside the repository root, as CI lays it out; absent on a user's machine.
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SHARED_TARBALL = SHARED_DATA / "cifar10-jpeg.tar.gz"
needs_shared = pytest.mark.skipif(
    not SHARED_TARBALL.is_file(), reason=f"shared CIFAR-10 tarball not found at {SHARED_TARBALL}"
)


def rows(x: np.ndarray) -> list[bytes]:
    """Images as sorted byte strings: compares splits as multisets, ignoring order."""
    return sorted(image.tobytes() for image in x)


# ------------------------------------------------------------------------------------ digits


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits", seed=0)


def test_digits_keep_all_seventeen_levels_and_every_image(digits):
    from sklearn.datasets import load_digits

    images = load_digits().images
    expected = np.rint(images * 255 / 16).astype(np.uint8)[..., None]
    assert digits.train.x.dtype == np.uint8 and digits.train.y.dtype == np.int64
    assert digits.train.x.shape[1:] == (8, 8, 1)
    everything = np.concatenate([digits.train.x, digits.val.x, digits.test.x])
    assert rows(everything) == rows(expected)
    assert len(np.unique(everything)) == 17
    assert not digits.augment
    assert digits.classes == tuple(str(d) for d in range(10))


def test_digits_test_split_is_fixed_and_val_comes_from_training_pool(digits):
    other = load_splits("digits", seed=1)
    np.testing.assert_array_equal(other.test.x, digits.test.x)
    np.testing.assert_array_equal(other.test.y, digits.test.y)
    assert len(digits.test) == round(0.2 * 1797)
    # train + val is the same pool for every seed; the val draw itself depends on the seed.
    pool = rows(np.concatenate([digits.train.x, digits.val.x]))
    assert pool == rows(np.concatenate([other.train.x, other.val.x]))
    assert rows(digits.val.x) != rows(other.val.x)


def test_val_and_train_subset_are_stratified(digits):
    np.testing.assert_array_equal(np.bincount(digits.val.y), np.full(10, 20))
    small = load_splits("digits", train_size=300, val_size=150, seed=3)
    pool = np.bincount(np.concatenate([digits.train.y, digits.val.y]))
    for split, size in ((small.train, 300), (small.val, 150)):
        assert len(split) == size
        share = np.bincount(split.y, minlength=10)
        assert np.all(np.abs(share - size * pool / pool.sum()) <= 1.5)


def test_mean_and_std_are_those_of_the_train_pixels(digits):
    pixels = digits.train.x.astype(np.float64) / 255
    assert digits.mean == pytest.approx(pixels.mean(axis=(0, 1, 2)), abs=1e-12)
    assert digits.std == pytest.approx(pixels.std(axis=(0, 1, 2)), abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "mnist"}, "dataset must be one of"),
        ({"name": "digits", "val_size": 5000}, "val_size must be"),
        ({"name": "digits", "train_size": 0}, "train_size must be"),
        ({"name": "digits", "train_size": 1400}, "train_size must be"),
        ({"name": "digits", "seed": -1}, "seed must be"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_splits(**kwargs)


# ------------------------------------------------------------------------------ CIFAR readers


def write_pickle(path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def cifar_rows(rng, n):
    """n random images in the official row format (3072 bytes: R, G, B planes) and as NHWC."""
    flat = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return flat, flat.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)


@pytest.fixture
def cifar10_batches(tmp_path):
    """Two 20-image training batches, a test batch and meta, in the official format."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    train_x, train_y = [], []
    for b in (1, 2):
        flat, images = cifar_rows(rng, 20)
        labels = [int(v) for v in rng.permutation(np.arange(20) % 10)]
        write_pickle(
            folder / f"data_batch_{b}",
            {b"batch_label": b"training batch", b"labels": labels, b"data": flat},
        )
        train_x.append(images)
        train_y += labels
    flat, test_x = cifar_rows(rng, 10)
    test_y = list(range(10))[::-1]
    write_pickle(folder / "test_batch", {b"labels": test_y, b"data": flat})
    write_pickle(folder / "batches.meta", {b"label_names": [c.encode() for c in CIFAR10_CLASSES]})
    return tmp_path, np.concatenate(train_x), np.array(train_y), test_x, np.array(test_y)


def test_cifar10_python_batches_are_read_exactly(cifar10_batches, tmp_path):
    root, train_x, train_y, test_x, test_y = cifar10_batches
    splits = load_splits("cifar10", root, val_size=10, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(splits.test.x, test_x)
    np.testing.assert_array_equal(splits.test.y, test_y)
    assert splits.classes == CIFAR10_CLASSES and splits.augment
    assert rows(np.concatenate([splits.train.x, splits.val.x])) == rows(train_x)
    pairs = {(x.tobytes(), int(y)) for x, y in zip(train_x, train_y, strict=True)}
    for split in (splits.train, splits.val):
        assert {(x.tobytes(), int(y)) for x, y in zip(split.x, split.y, strict=True)} <= pairs
    assert np.array_equal(np.bincount(splits.val.y), np.ones(10))
    # The pickle folder itself, and the official tar.gz of it, read the same.
    direct = load_splits("cifar10", root / "cifar-10-batches-py", val_size=10)
    np.testing.assert_array_equal(direct.train.x, splits.train.x)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    from_tar = load_splits("cifar10", archive, val_size=10, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(from_tar.train.x, splits.train.x)
    np.testing.assert_array_equal(from_tar.test.y, splits.test.y)


def test_cifar100_reads_fine_labels_and_names(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    names = [f"class{i:03d}".encode() for i in range(100)]
    train_flat, train_x = cifar_rows(rng, 200)
    fine = [int(v) for v in np.arange(200) % 100]
    coarse = [f // 5 for f in fine]
    write_pickle(
        folder / "train", {b"fine_labels": fine, b"coarse_labels": coarse, b"data": train_flat}
    )
    test_flat, test_x = cifar_rows(rng, 100)
    test_fine = [int(v) for v in rng.permutation(100)]
    write_pickle(
        folder / "test",
        {
            b"fine_labels": test_fine,
            b"coarse_labels": [f // 5 for f in test_fine],
            b"data": test_flat,
        },
    )
    write_pickle(folder / "meta", {b"fine_label_names": names, b"coarse_label_names": names[:20]})
    splits = load_splits("cifar100", tmp_path, val_size=100)
    assert splits.classes == tuple(n.decode() for n in names)
    np.testing.assert_array_equal(splits.test.x, test_x)
    np.testing.assert_array_equal(splits.test.y, test_fine)
    assert np.array_equal(np.bincount(splits.val.y), np.ones(100))
    assert rows(np.concatenate([splits.train.x, splits.val.x])) == rows(train_x)


class RunsShell:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_with_foreign_global_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    write_pickle(folder / "data_batch_1", {b"labels": [0], b"data": RunsShell()})
    write_pickle(folder / "test_batch", {b"labels": [0], b"data": np.zeros((1, 3072), np.uint8)})
    with pytest.raises(ValueError, match=r"data_batch_1.*refusing to unpickle global .*system"):
        load_splits("cifar10", tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_missing_or_wrong_data_dir_names_path_and_layouts(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=r"nowhere.*accepted layouts.*cifar-10-batches-py"):
        load_splits("cifar10", missing)
    with pytest.raises(ValueError, match=r"cache.*download=True"):
        load_splits("cifar10", cache_dir=tmp_path / "cache")  # nothing there, nothing fetched
    (tmp_path / "cifar10-jpeg.tar.gz").write_bytes(b"")  # a cifar10 archive is not cifar100
    with pytest.raises(ValueError, match=rf"{tmp_path}.*cifar-100-python.*image folder"):
        load_splits("cifar100", tmp_path, cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------ image folders


def write_image_folder(root, classes, per_class, rng) -> dict[tuple[str, str], list[np.ndarray]]:
    """PNG (lossless) folders root/{train,test}/<class>/<i>.png; returns the pixels written."""
    written = {}
    for split, count in (("train", per_class), ("test", 1)):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(count)]
            for i, pixels in enumerate(images):
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
            written[split, name] = images
    return written


def test_image_folder_uses_cifar10_label_order_and_exact_pixels(tmp_path):
    root = tmp_path / "jpeg"
    shuffled = list(CIFAR10_CLASSES)[::-1]
    written = write_image_folder(root, shuffled, 3, np.random.default_rng(2))
    splits = load_splits("cifar10", root, val_size=10, cache_dir=tmp_path / "cache")
    assert splits.classes == CIFAR10_CLASSES
    expected_test = np.stack([written["test", c][0] for c in CIFAR10_CLASSES])
    np.testing.assert_array_equal(splits.test.x, expected_test)
    np.testing.assert_array_equal(splits.test.y, np.arange(10))
    for split in (splits.train, splits.val):
        for x, y in zip(split.x, split.y, strict=True):
            assert any(np.array_equal(x, w) for w in written["train", CIFAR10_CLASSES[y]])


def test_image_folder_with_other_names_sorts_classes(tmp_path):
    names = [f"kind{d}" for d in (3, 0, 9, 1, 8, 2, 7, 4, 6, 5)]
    write_image_folder(tmp_path / "f", names, 2, np.random.default_rng(3))
    splits = load_splits("cifar10", tmp_path / "f", val_size=0, cache_dir=tmp_path / "cache")
    assert splits.classes == tuple(sorted(names))
    np.testing.assert_array_equal(splits.test.y, np.arange(10))


def test_tar_of_image_folder_reads_like_the_folder_and_is_cached_by_content(tmp_path, monkeypatch):
    root = tmp_path / "folder"
    written = write_image_folder(root, CIFAR10_CLASSES, 2, np.random.default_rng(4))
    archive = tmp_path / "cifar10-small.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("test", "train"):
            tar.add(root / split, arcname=split)
    cache = tmp_path / "cache"
    from_tar = load_splits(
        "cifar10", tmp_path, val_size=0, cache_dir=cache
    )  # finds cifar10*.tar.gz
    from_dir = load_splits("cifar10", root, val_size=0, cache_dir=cache)
    np.testing.assert_array_equal(from_tar.test.x, from_dir.test.x)
    np.testing.assert_array_equal(from_tar.train.x, from_dir.train.x)
    assert len(list(cache.glob("cifar10-*.npz"))) == 2
    assert not list(cache.glob(".*tmp"))  # atomic write leaves no temp file

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(data_module, "_decode_images", no_decoding)
    cached = load_splits("cifar10", archive, val_size=0, cache_dir=cache)
    np.testing.assert_array_equal(cached.train.x, from_tar.train.x)

    # Same size and mtime, other pixels: the content-keyed cache must miss.
    monkeypatch.undo()
    image = root / "test" / "airplane" / "0000.png"
    stat = image.stat()
    Image.fromarray(255 - written["test", "airplane"][0]).save(image)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = load_splits("cifar10", root, val_size=0, cache_dir=cache)
    np.testing.assert_array_equal(changed.test.x[0], 255 - written["test", "airplane"][0])


@needs_shared
def test_shared_tarball_layout_and_a_few_decoded_images():
    # One streamed pass: check every member's place, keep one image per split and class.
    counts = {"train": 0, "test": 0}
    chosen: dict[tuple[str, str], tuple[str, bytes]] = {}
    for path, payload in data_module._walk_tar(SHARED_TARBALL):
        split, name, file = path.split("/")
        assert split in counts and name in CIFAR10_CLASSES and file.endswith(".jpg"), path
        counts[split] += 1
        chosen.setdefault((split, name), (path, payload))
    assert counts == {"train": 50000, "test": 10000}
    # Decode those 20 through the reader's own path.
    train, test, classes = data_module._decode_images("cifar10", iter(chosen.values()))
    assert classes == CIFAR10_CLASSES
    assert train.x.shape == (10, 32, 32, 3) and test.x.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(train.y, np.arange(10))
    assert train.x.std() > 10  # real pictures, not blank decodes


# ------------------------------------------------------------------------------------ loader


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


def test_digits_are_never_augmented(digits):
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


def test_pickled_bytes_written_by_python3_protocol_2_load(tmp_path):
    # Python 3 writes bytes at protocol 2 through _codecs.encode: still only data, still allowed.
    payload = pickle.dumps({b"data": np.arange(4, dtype=np.uint8), b"x": b"\xff"}, protocol=2)
    loaded = data_module._safe_unpickle(payload, "batch")
    assert loaded["x"] == b"\xff" and loaded["data"].tolist() == [0, 1, 2, 3]
    buffer = io.BytesIO()
    pickle.dump({"f": eval}, buffer, protocol=2)
    with pytest.raises(ValueError, match=r"refusing to unpickle global .*eval"):
        data_module._safe_unpickle(buffer.getvalue(), "batch")
