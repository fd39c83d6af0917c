"""CIFAR readers: official python batches, image folders, tarballs, the cache, safe unpickling."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from accelat_train.data import cifar, folder, load_splits
from accelat_train.data.cifar import CIFAR10_CLASSES, read_cifar

# ../shared beside the repository root, as CI lays it out; absent on a user's machine.
SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
SHARED_TARBALL = SHARED_DATA / "cifar10-jpeg.tar.gz"
needs_shared = pytest.mark.skipif(
    not SHARED_TARBALL.is_file(), reason=f"shared CIFAR-10 tarball not found at {SHARED_TARBALL}"
)


def rows(x: np.ndarray) -> list[bytes]:
    """Images as sorted byte strings: compares splits as multisets, ignoring order."""
    return sorted(image.tobytes() for image in x)


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


def test_read_cifar_rejects_a_dataset_it_does_not_read(tmp_path):
    with pytest.raises(
        ValueError, match=r"name must be one of \('cifar10', 'cifar100'\), got 'digits'"
    ):
        read_cifar("digits", tmp_path)


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
    # As decoded (and cached): by CIFAR-10 label, then by path within a class.
    train, _, _ = read_cifar("cifar10", root, cache_dir=tmp_path / "cache")
    expected_train = np.stack([w for c in CIFAR10_CLASSES for w in written["train", c]])
    np.testing.assert_array_equal(train.x, expected_train)
    np.testing.assert_array_equal(train.y, np.repeat(np.arange(10), 3))


def test_image_folder_with_the_wrong_number_of_classes_is_refused(tmp_path):
    write_image_folder(tmp_path / "f", ["a", "b", "c"], 1, np.random.default_rng(5))
    with pytest.raises(ValueError, match=r"cifar10 image folder must hold .* 10 class folders, "
                       r"found 3 train and 3 test images in 3 classes"):  # fmt: skip
        load_splits("cifar10", tmp_path / "f", cache_dir=tmp_path / "cache")


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

    monkeypatch.setattr(cifar, "_decode_images", no_decoding)
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
    for path, payload in folder.walk_tar(SHARED_TARBALL):
        split, name, file = path.split("/")
        assert split in counts and name in CIFAR10_CLASSES and file.endswith(".jpg"), path
        counts[split] += 1
        chosen.setdefault((split, name), (path, payload))
    assert counts == {"train": 50000, "test": 10000}
    # Decode those 20 through the reader's own path.
    train, test, classes = cifar._decode_images("cifar10", iter(chosen.values()))
    assert classes == CIFAR10_CLASSES
    assert train.x.shape == (10, 32, 32, 3) and test.x.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(train.y, np.arange(10))
    assert train.x.std() > 10  # real pictures, not blank decodes


def test_pickled_bytes_written_by_python3_protocol_2_load(tmp_path):
    # Python 3 writes bytes at protocol 2 through _codecs.encode: still only data, still allowed.
    payload = pickle.dumps({b"data": np.arange(4, dtype=np.uint8), b"x": b"\xff"}, protocol=2)
    loaded = cifar._safe_unpickle(payload, "batch")
    assert loaded["x"] == b"\xff" and loaded["data"].tolist() == [0, 1, 2, 3]
    buffer = io.BytesIO()
    pickle.dump({"f": eval}, buffer, protocol=2)
    with pytest.raises(ValueError, match=r"refusing to unpickle global .*eval"):
        cifar._safe_unpickle(buffer.getvalue(), "batch")


# -- damaged data ----------------------------------------------------------------------------
def _cifar_batch(images: int) -> bytes:
    rng = np.random.default_rng(0)
    data = {b"data": rng.integers(0, 256, (images, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, images)]}  # fmt: skip
    return pickle.dumps(data, protocol=2)


def _write_pickles(root: Path, damage: bytes | None) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(_cifar_batch(4))
    (folder / "test_batch").write_bytes(_cifar_batch(4))
    if damage is not None:
        (folder / "data_batch_1").write_bytes(damage)
    return root


@pytest.mark.parametrize(
    "damage", [b"garbage, not a pickle", _cifar_batch(4)[:100]], ids=["garbage", "truncated"]
)
def test_a_damaged_cifar_batch_is_an_error_naming_the_file(tmp_path, damage):
    root = _write_pickles(tmp_path, damage)
    with pytest.raises(ValueError, match=r"data_batch_1 is not a readable CIFAR python batch"):
        read_cifar("cifar10", root, cache_dir=tmp_path / "cache")


def test_a_truncated_archive_is_an_error_naming_it(tmp_path):
    root = _write_pickles(tmp_path / "src", None)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(ValueError, match=rf"archive '{archive}' is truncated or damaged"):
        read_cifar("cifar10", archive, cache_dir=tmp_path / "cache")
