"""Datasets as uint8 arrays, and a loader that batches and augments them on the device.

Three datasets: ``digits`` (scikit-learn's embedded 8x8 digits), ``cifar10`` and ``cifar100``.
CIFAR is read from any of the layouts below, never downloaded unless ``download=True``:

- the official python layouts, ``cifar-10-batches-py/`` or ``cifar-100-python/`` (pickled batches,
  loaded with an unpickler that refuses every global except numpy's array reconstruction), or the
  official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` holding them;
- an image folder ``train/<class>/*`` and ``test/<class>/*`` (PNG, JPEG, ...), or a ``.tar.gz`` of
  one, such as the shared ``cifar10-jpeg.tar.gz``.

Decoding 60,000 images takes ~15 s, so decoded image folders are cached as an ``.npz`` keyed by
the sha256 of the source's bytes (``cache_dir``, default ``$ACCELAT_CACHE`` or
``~/.cache/accelat``). Pickled batches are raw arrays already and are read directly.

Example::

    splits = load_splits("digits", val_size=200, seed=0)
    loader = DeviceLoader(splits.train, batch_size=128, augment=splits.augment, seed=0)
    for x, y in loader.epoch(0):  # x: float32 B x C x H x W in [0, 1], y: int64
        ...
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import tarfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from accelat_train.checkpoint import atomic_write

DATASET_NAMES = ("digits", "cifar10", "cifar100")

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# Held out from the training set when val_size is None.
DEFAULT_VAL_SIZE = {"digits": 200, "cifar10": 1000, "cifar100": 1000}

# The digits train/test split is part of the benchmark's definition, so its seed is fixed and
# independent of the run's seed.
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 20220101

# Official archives (https://www.cs.toronto.edu/~kriz/cifar.html): url, md5.
_OFFICIAL_ARCHIVES = {
    "cifar10": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": (
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
}
_PICKLE_DIR = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
_PAD = 4  # random-crop padding in pixels (zero padding), as in He et al. 2016
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class ArrayData:
    """One split in host memory: ``x`` uint8 N x H x W x C, ``y`` int64 N."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.dtype != np.uint8 or self.x.ndim != 4:
            raise ValueError(f"x must be uint8 N x H x W x C, got {self.x.dtype} {self.x.shape}")
        if self.y.dtype != np.int64 or self.y.shape != (len(self.x),):
            raise ValueError(
                f"y must be int64 of shape ({len(self.x)},), got {self.y.dtype} {self.y.shape}"
            )

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> ArrayData:
        return ArrayData(self.x[index], self.y[index])


@dataclass(frozen=True)
class Splits:
    """Train/val/test of one dataset; ``mean``/``std`` are per channel on [0, 1] pixels of train."""

    name: str
    train: ArrayData
    val: ArrayData
    test: ArrayData
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool


# (train, test, class names) of a dataset before any val/train_size split
_Decoded = tuple[ArrayData, ArrayData, tuple[str, ...]]


def load_splits(
    name: str,
    data_dir: str | Path | None = None,
    *,
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    cache_dir: str | Path | None = None,
) -> Splits:
    """Load ``name`` and split it: val is held out of the training set, stratified by ``seed``.

    ``train_size`` then takes a stratified subset of what is left (None: all of it).
    ``val_size`` None means ``DEFAULT_VAL_SIZE[name]``; 0 gives an empty val split.
    For CIFAR, ``data_dir`` None means ``cache_dir`` (where ``download=True`` puts the archive).

    >>> splits = load_splits("digits", train_size=500, val_size=100)
    >>> splits.train.x.shape, splits.classes[:3]
    ((500, 8, 8, 1), ('0', '1', '2'))
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"dataset must be one of {DATASET_NAMES}, got {name!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    cache = _cache_dir(cache_dir)
    if name == "digits":
        train, test, classes = _digits()
    else:
        root = Path(data_dir).expanduser() if data_dir is not None else cache
        train, test, classes = _read_cifar(name, root, cache, download)

    val_size = DEFAULT_VAL_SIZE[name] if val_size is None else val_size
    if not isinstance(val_size, int) or not 0 <= val_size < len(train):
        raise ValueError(f"val_size must be an int in [0, {len(train)}), got {val_size!r}")
    rng = np.random.default_rng(seed)
    val_index, rest = _stratified_split(train.y, val_size, rng)
    val = train.take(val_index)
    if train_size is not None:
        if not isinstance(train_size, int) or not 0 < train_size <= len(rest):
            raise ValueError(
                f"train_size must be an int in [1, {len(rest)}] (training set minus "
                f"{val_size} for val), got {train_size!r}"
            )
        keep, _ = _stratified_split(train.y[rest], train_size, rng)
        rest = rest[keep]
    train = train.take(rest)
    mean, std = _channel_stats(train.x)
    return Splits(name, train, val, test, classes, mean, std, augment=name != "digits")


def _digits() -> _Decoded:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Values are 0..16; round(v * 255 / 16) keeps all 17 levels distinct in uint8.
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    data = ArrayData(x, bunch.target.astype(np.int64))
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test, train = _stratified_split(data.y, round(DIGITS_TEST_FRACTION * len(data)), rng)
    return data.take(np.sort(train)), data.take(np.sort(test)), tuple(str(c) for c in range(10))


def _stratified_split(
    y: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (picked, rest): ``k`` picked at random with each class in proportion (±1)."""
    order = rng.permutation(len(y))
    classes, inverse, counts = np.unique(y[order], return_inverse=True, return_counts=True)
    # Position of each element within its class, in shuffled order, as a fraction of the class:
    # sorting by it interleaves the classes evenly, so any prefix is stratified.
    rank = np.empty(len(y), dtype=np.int64)
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        rank[members] = np.arange(len(members))
    key = (rank + 0.5) / counts[inverse]
    order = order[np.argsort(key, kind="stable")]
    return order[:k], order[k:]


def _channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of ``x / 255`` from 256-bin histograms (no float copy)."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    mean, std = [], []
    for c in range(x.shape[-1]):
        hist = np.bincount(x[..., c].ravel(), minlength=256).astype(np.float64)
        m = float(hist @ levels / hist.sum())
        var = float(hist @ (levels - m) ** 2 / hist.sum())
        mean.append(m)
        std.append(max(var**0.5, 1e-6))
    return tuple(mean), tuple(std)


def _cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("ACCELAT_CACHE", Path.home() / ".cache" / "accelat")).expanduser()


# ------------------------------------------------------------------------------------ CIFAR


def _layouts(name: str) -> str:
    folder = _PICKLE_DIR[name]
    return (
        f"accepted layouts: a directory holding '{folder}/' (official python batches) or "
        f"the official '{folder.replace('-batches-py', '-python')}.tar.gz'; an image folder "
        "'train/<class>/*' + 'test/<class>/*'; a .tar.gz of such an image folder (or a "
        f"directory holding one named {name}*.tar.gz); pass download=True to fetch the official "
        "archive"
    )


def _read_cifar(name: str, root: Path, cache: Path, download: bool) -> _Decoded:
    source = _find_source(name, root)
    if source is None and download:
        source = _download(name, root)
    if source is None:
        raise ValueError(f"no {name} data found at '{root}'; {_layouts(name)}")
    if source.is_dir():
        if (source / "train").is_dir() and (source / "test").is_dir():
            files = _walk_dir(source, ("train", "test"))
            return _cached(name, source, cache, lambda: _decode_images(name, files))
        return _read_pickles(name, _walk_dir(source))
    # An archive: peek at its first file to tell pickled batches from images.
    try:
        with tarfile.open(source, "r:*") as tar:
            first = next((m.name for m in tar if m.isfile()), "")
    except (tarfile.TarError, OSError) as error:
        raise ValueError(f"cannot read archive '{source}' ({error}); {_layouts(name)}") from None
    if any(part in first for part in _PICKLE_DIR.values()):
        return _read_pickles(name, _walk_tar(source))
    return _cached(name, source, cache, lambda: _decode_images(name, _walk_tar(source)))


def _find_source(name: str, root: Path) -> Path | None:
    """The directory or archive under ``root`` that holds ``name``, or None."""
    if root.is_file():
        return root if root.name.endswith((".tar.gz", ".tgz", ".tar")) else None
    if not root.is_dir():
        return None
    pickled = root / _PICKLE_DIR[name]
    if pickled.is_dir():
        return pickled
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root
    markers = {"cifar10": ("data_batch_1", "test_batch"), "cifar100": ("train", "test", "meta")}
    if all((root / marker).is_file() for marker in markers[name]):
        return root  # root is the pickle folder itself
    # "cifar-10" must not match "cifar-100": no digit may follow the dataset's number.
    number = name.removeprefix("cifar")
    pattern = re.compile(rf"^cifar-?{number}(?!\d).*\.(tar\.gz|tgz|tar)$")
    archives = sorted(p for p in root.iterdir() if p.is_file() and pattern.match(p.name))
    return archives[0] if archives else None


def _download(name: str, root: Path) -> Path:
    url, md5 = _OFFICIAL_ARCHIVES[name]
    target = root / url.rsplit("/", 1)[1]
    root.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url) as response:
        payload = response.read()
    if hashlib.md5(payload).hexdigest() != md5:
        raise ValueError(f"download of {url} is corrupt (md5 mismatch); try again")
    atomic_write(target, lambda f: f.write(payload))
    return target


def _walk_dir(root: Path, subdirs: tuple[str, ...] = (".",)) -> Iterator[tuple[str, bytes]]:
    """(relative posix path, bytes) of every file under ``root / subdir``, in sorted order."""
    paths = sorted(p for sub in subdirs for p in (root / sub).rglob("*") if p.is_file())
    for path in paths:
        yield path.relative_to(root).as_posix(), path.read_bytes()


def _walk_tar(archive: Path) -> Iterator[tuple[str, bytes]]:
    """(member path, bytes) of every file in ``archive``, streamed in archive order."""
    with tarfile.open(archive, "r|*") as tar:
        for member in tar:
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                yield member.name, handle.read()


def _read_pickles(name: str, files: Iterator[tuple[str, bytes]]) -> _Decoded:
    wanted = (
        {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"}
        | {"test_batch", "batches.meta"}
        if name == "cifar10"
        else {"train", "test", "meta"}
    )
    found = {}
    for path, payload in files:
        base = path.rsplit("/", 1)[-1]
        if base in wanted:
            found[base] = _safe_unpickle(payload, path)
    label_key = "labels" if name == "cifar10" else "fine_labels"
    if name == "cifar10":
        train_parts = [found[k] for k in sorted(found) if k.startswith("data_batch_")]
        test_parts = [found[k] for k in ("test_batch",) if k in found]
        meta = found.get("batches.meta", {})
        classes = tuple(_text(c) for c in meta.get("label_names", CIFAR10_CLASSES))
    else:
        train_parts = [found[k] for k in ("train",) if k in found]
        test_parts = [found[k] for k in ("test",) if k in found]
        classes = tuple(_text(c) for c in found.get("meta", {}).get("fine_label_names", ()))
    if not train_parts or not test_parts or not classes:
        raise ValueError(
            f"incomplete {name} python batches (found {sorted(found)}); {_layouts(name)}"
        )
    return _stack(train_parts, label_key), _stack(test_parts, label_key), classes


def _stack(parts: list[dict], label_key: str) -> ArrayData:
    x = np.concatenate([np.asarray(p["data"], dtype=np.uint8) for p in parts])
    y = np.concatenate([np.asarray(p[label_key], dtype=np.int64) for p in parts])
    # Rows are 3072 bytes: the red, green, blue 32 x 32 planes.
    x = np.ascontiguousarray(x.reshape(len(x), 3, 32, 32).transpose(0, 2, 3, 1))
    return ArrayData(x, y)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _BatchUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, bytes, str, ints and numpy arrays; refuses every other global."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            # bytes pickled by Python 3 at protocol 2 (a pure str -> bytes conversion)
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        if (module, name) not in self.ALLOWED:
            raise ValueError(
                f"refusing to unpickle global {module}.{name}: a CIFAR batch holds only "
                "dicts, lists, bytes, ints and numpy arrays"
            )
        return super().find_class(module, name)


def _safe_unpickle(payload: bytes, path: str) -> dict:
    try:
        obj = _BatchUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {_text(k): v for k, v in obj.items()}


def _decode_images(name: str, files: Iterator[tuple[str, bytes]]) -> _Decoded:
    from PIL import Image

    images: dict[str, list[tuple[str, str, np.ndarray]]] = {"train": [], "test": []}
    for path, payload in files:
        parts = path.split("/")
        if len(parts) < 3 or parts[-3] not in images or parts[-1].startswith("."):
            continue
        with Image.open(io.BytesIO(payload)) as image:
            pixels = np.asarray(image.convert("RGB"))
        images[parts[-3]].append((parts[-2], path, pixels))
    names = {c for split in images.values() for c, _, _ in split}
    classes = CIFAR10_CLASSES if names == set(CIFAR10_CLASSES) else tuple(sorted(names))
    if len(classes) != _NUM_CLASSES[name] or not images["train"] or not images["test"]:
        raise ValueError(
            f"{name} image folder must hold train/ and test/ with {_NUM_CLASSES[name]} class "
            f"folders, found {len(images['train'])} train and {len(images['test'])} test images "
            f"in {len(classes)} classes; {_layouts(name)}"
        )
    index = {c: i for i, c in enumerate(classes)}

    def stack(entries: list[tuple[str, str, np.ndarray]]) -> ArrayData:
        entries.sort(key=lambda e: (index[e[0]], e[1]))  # archive order is arbitrary
        shapes = {e[2].shape for e in entries}
        if len(shapes) != 1:
            raise ValueError(f"{name} images must all have one size, found {sorted(shapes)}")
        x = np.stack([e[2] for e in entries])
        return ArrayData(x, np.array([index[e[0]] for e in entries], dtype=np.int64))

    return stack(images["train"]), stack(images["test"]), classes


def _source_digest(source: Path) -> str:
    """sha256 of the source's content: the archive's bytes, or every file's path and bytes."""
    digest = hashlib.sha256()
    if source.is_file():
        with source.open("rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    else:
        for path, payload in _walk_dir(source, ("train", "test")):
            digest.update(f"{path}\0{len(payload)}\0".encode())
            digest.update(payload)
    return digest.hexdigest()


def _cached(name: str, source: Path, cache: Path, decode: Callable[[], _Decoded]) -> _Decoded:
    """``decode()``, memoised on disk under the sha256 of the source's content."""
    path = cache / f"{name}-{_source_digest(source)[:32]}-v{_CACHE_FORMAT}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return (
                    ArrayData(z["x_train"], z["y_train"]),
                    ArrayData(z["x_test"], z["y_test"]),
                    tuple(str(c) for c in z["classes"]),
                )
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt below
    train, test, classes = decode()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write(
            path,
            lambda f: np.savez(
                f,
                x_train=train.x,
                y_train=train.y,
                x_test=test.x,
                y_test=test.y,
                classes=np.array(classes, dtype=str),
            ),
        )
    except OSError:
        pass  # a read-only cache costs speed, not correctness
    return train, test, classes


# ------------------------------------------------------------------------------------ loader


class DeviceLoader:
    """Batches from tensors held on one device (CPU or CUDA); no DataLoader, no worker processes.

    The images stay uint8 on the device; each batch is gathered, augmented and converted to
    float32 in [0, 1] there. The order and the augmentation are a pure function of
    ``(seed, epoch, rank)``, drawn on the CPU, so a resumed run (or a run on another device)
    replays them exactly. With ``world_size > 1`` the epoch's permutation is cut to a multiple of
    ``world_size`` and rank r takes every ``world_size``-th element from r: disjoint, equal shards.

    Augmentation (He et al. 2016): pad 4 px with zeros, crop back at a random offset in [0, 8]^2,
    flip horizontally with probability 1/2.

    >>> loader = DeviceLoader(load_splits("digits").train, batch_size=64)
    >>> x, y = next(loader.epoch(0))
    >>> x.shape, x.dtype, y.dtype
    (torch.Size([64, 1, 8, 8]), torch.float32, torch.int64)
    """

    def __init__(
        self,
        data: ArrayData,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        shuffle: bool = True,
        augment: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive int, got {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in [0, {world_size}), got {rank!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if len(data) < world_size:
            raise ValueError(f"data has {len(data)} examples, fewer than world_size={world_size}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        # N x C x H x W uint8, contiguous: a quarter of the float32 footprint.
        self.x = torch.from_numpy(data.x).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.y = torch.from_numpy(data.y).to(self.device)
        self.num_samples = len(data) // world_size  # examples per epoch on this rank

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches of epoch ``epoch`` (0-based) for this rank."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        total = self.num_samples * self.world_size
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.y))
        else:
            order = np.arange(len(self.y))
        shard = torch.from_numpy(order[:total][self.rank :: self.world_size].copy())
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, self.rank, 1])
            offsets = rng.integers(0, 2 * _PAD + 1, size=(len(shard), 2))
            flips = rng.random(len(shard)) < 0.5
            offsets_d = torch.from_numpy(offsets).to(self.device)
            flips_d = torch.from_numpy(flips).to(self.device)
        shard = shard.to(self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = shard[start : start + self.batch_size]
            x = self.x.index_select(0, index)  # 5x faster than x[index] on CPU
            if self.augment:
                stop = start + len(index)
                x = crop_flip(x, offsets_d[start:stop], flips_d[start:stop])
            yield x.float().div_(255.0), self.y.index_select(0, index)


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Per-sample random crop with 4-px zero padding, then horizontal flip, in one gather.

    ``out[b, c, i, j] = padded[b, c, offsets[b, 0] + i, offsets[b, 1] + j']`` with
    ``j' = W - 1 - j`` where ``flips[b]`` and ``j`` otherwise; ``padded`` is ``x`` with 4 zero
    pixels on every side, so ``offsets == (4, 4)`` and no flip is the identity.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (_PAD, _PAD, _PAD, _PAD))
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # B x H
    cols = torch.arange(w, device=x.device).expand(b, w)
    cols = torch.where(flips[:, None], cols.flip(1), cols) + offsets[:, 1:]  # B x W
    # One gather over the flattened padded plane: far cheaper than 4-way advanced indexing on CPU.
    flat = rows[:, :, None] * (w + 2 * _PAD) + cols[:, None, :]  # B x H x W
    index = flat.view(b, 1, h * w).expand(b, c, h * w)
    return padded.view(b, c, -1).gather(2, index).view(b, c, h, w)
