"""CIFAR-10 and CIFAR-100 from disk: the official python batches, image folders, tarballs.

``read_cifar`` finds the data under a directory or archive, never downloading it unless
``download=True``, in any of these layouts:

- the official python layouts, ``cifar-10-batches-py/`` or ``cifar-100-python/`` (pickled batches,
  loaded with an unpickler that refuses every global except numpy's array reconstruction), or the
  official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` holding them;
- an image folder ``train/<class>/*`` and ``test/<class>/*`` (PNG, JPEG, ...), or a ``.tar.gz`` of
  one, such as the shared ``cifar10-jpeg.tar.gz``.

Image folders are decoded and cached by :mod:`accelat_train.data.folder` (always as RGB, in
``CIFAR10_CLASSES`` order when the folder names are CIFAR-10's). Pickled batches are raw arrays
already and are read directly.

Example::

    train, test, classes = read_cifar("cifar10", "/data/cifar10-jpeg.tar.gz")
    train.x.shape, classes[0]  # ((50000, 32, 32, 3), 'airplane')
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import tarfile
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from accelat_train.atomic_writes import atomic_write
from accelat_train.data.arrays import ArrayData, Decoded
from accelat_train.data.folder import (
    ARCHIVE_SUFFIXES,
    cache_directory,
    cached,
    decode_images,
    walk_dir,
    walk_tar,
)

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


def read_cifar(
    name: str,
    data_dir: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    download: bool = False,
) -> Decoded:
    """(train, test, class names) of ``name`` ("cifar10" or "cifar100") found at ``data_dir``.

    ``data_dir`` is a directory or an archive in one of the layouts of the module docstring;
    None means ``cache_dir`` (where ``download=True`` puts the official archive). Decoded
    image folders are memoised in ``cache_dir`` (None: ``$ACCELAT_CACHE`` or ``~/.cache/accelat``).
    """
    if name not in _PICKLE_DIR:
        raise ValueError(f"name must be one of {tuple(_PICKLE_DIR)}, got {name!r}")
    cache = cache_directory(cache_dir)
    root = Path(data_dir).expanduser() if data_dir is not None else cache
    source = _find_source(name, root)
    if source is None and download:
        source = _download(name, root)
    if source is None:
        raise ValueError(f"no {name} data found at '{root}'; {_layouts(name)}")
    if source.is_dir():
        if (source / "train").is_dir() and (source / "test").is_dir():
            files = walk_dir(source, ("train", "test"))
            return cached(name, source, cache, lambda: _decode_images(name, files))
        return _read_pickles(name, walk_dir(source))
    # An archive: peek at its first file to tell pickled batches from images.
    try:
        with tarfile.open(source, "r:*") as tar:
            first = next((m.name for m in tar if m.isfile()), "")
    except (tarfile.TarError, OSError) as error:
        raise ValueError(f"cannot read archive '{source}' ({error}); {_layouts(name)}") from None
    if any(part in first for part in _PICKLE_DIR.values()):
        return _read_pickles(name, walk_tar(source))
    return cached(name, source, cache, lambda: _decode_images(name, walk_tar(source)))


def read_cifar10(
    data_dir: str | Path | None, *, cache_dir: str | Path | None = None, download: bool = False
) -> Decoded:
    """The ``cifar10`` dataset's reader: :func:`read_cifar` of CIFAR-10."""
    return read_cifar("cifar10", data_dir, cache_dir=cache_dir, download=download)


def read_cifar100(
    data_dir: str | Path | None, *, cache_dir: str | Path | None = None, download: bool = False
) -> Decoded:
    """The ``cifar100`` dataset's reader: :func:`read_cifar` of CIFAR-100."""
    return read_cifar("cifar100", data_dir, cache_dir=cache_dir, download=download)


def _layouts(name: str) -> str:
    folder = _PICKLE_DIR[name]
    return (
        f"accepted layouts: a directory holding '{folder}/' (official python batches) or "
        f"the official '{folder.replace('-batches-py', '-python')}.tar.gz'; an image folder "
        "'train/<class>/*' + 'test/<class>/*'; a .tar.gz of such an image folder (or a "
        f"directory holding one named {name}*.tar.gz); pass download=True to fetch the official "
        "archive"
    )


def _find_source(name: str, root: Path) -> Path | None:
    """The directory or archive under ``root`` that holds ``name``, or None."""
    if root.is_file():
        return root if root.name.endswith(ARCHIVE_SUFFIXES) else None
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

    def write(f: IO[bytes]) -> None:
        f.write(payload)

    atomic_write(target, write)
    return target


def _read_pickles(name: str, files: Iterator[tuple[str, bytes]]) -> Decoded:
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
    try:
        return _stack(train_parts, label_key), _stack(test_parts, label_key), classes
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(
            f"{name} python batches hold unexpected contents ({type(error).__name__}: {error})"
        ) from None


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
    except Exception as error:  # a truncated or garbage file: UnpicklingError, EOFError, ...
        raise ValueError(
            f"{path} is not a readable CIFAR python batch (truncated or damaged?): "
            f"{type(error).__name__}: {error}"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {_text(k): v for k, v in obj.items()}


def _decode_images(name: str, files: Iterable[tuple[str, bytes]]) -> Decoded:
    """An image folder of ``name``: RGB, ``_NUM_CLASSES[name]`` classes, CIFAR-10's label order
    when the folder names are CIFAR-10's class names (sorted names otherwise)."""
    train, test, classes = decode_images(files, f"{name} image folder", rgb=True)
    if len(classes) != _NUM_CLASSES[name]:
        raise ValueError(
            f"{name} image folder must hold train/ and test/ with {_NUM_CLASSES[name]} class "
            f"folders, found {len(train)} train and {len(test)} test images in {len(classes)} "
            f"classes; {_layouts(name)}"
        )
    if set(classes) != set(CIFAR10_CLASSES):
        return train, test, classes
    relabel = np.array([CIFAR10_CLASSES.index(c) for c in classes])
    return _relabelled(train, relabel), _relabelled(test, relabel), CIFAR10_CLASSES


def _relabelled(data: ArrayData, relabel: np.ndarray) -> ArrayData:
    """Labels mapped through ``relabel``, images reordered by new label (paths stay in order)."""
    y = relabel[data.y]
    order = np.argsort(y, kind="stable")
    return ArrayData(data.x[order], y[order])
