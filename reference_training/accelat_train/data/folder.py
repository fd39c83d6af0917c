"""Image folders: ``train/<class>/*`` and ``test/<class>/*`` (PNG, JPEG, ...), or a tarball of one.

The one image decoder and cache of the package: the ``folder`` dataset reads any such folder
through :func:`read_image_folder`, and the CIFAR reader (:mod:`accelat_train.data.cifar`) reads
its image-folder layouts through :func:`decode_images` and :func:`cached`.

- Classes are the folder names under ``train/``, sorted; label ``i`` is ``classes[i]``. A class
  folder under ``test/`` must also exist under ``train/``. Files whose names start with a dot are
  skipped, and so is anything not exactly two levels below ``train/`` or ``test/``.
- Images may have any size, but one size for the whole dataset (train and test).
- Grey images (modes 1, L, LA) stay one channel when every image is grey; otherwise all become
  RGB (alpha dropped). 16-bit and float images (modes I, I;16, F) are refused, not clipped.
- Decoding is slow (~15 s for 60,000 images), so the result is cached as an ``.npz`` keyed by the
  sha256 of the source's bytes, in ``cache_dir`` (default ``$ACCELAT_CACHE`` or
  ``~/.cache/accelat``); a changed file changes the key.

Example::

    train, test, classes = read_image_folder("/data/flowers")  # or "/data/flowers.tar.gz"
    train.x.shape, classes[:2]  # ((2000, 64, 64, 3), ('daisy', 'rose'))
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from accelat_train.atomic_writes import atomic_write
from accelat_train.data.arrays import ArrayData, Decoded
from accelat_train.extras import needs_extra

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
LAYOUT = (
    "expected a directory holding train/<class>/* and test/<class>/* images (PNG, JPEG, ...) "
    "or a .tar.gz / .tgz / .tar of one"
)
_CACHE_FORMAT = 1
_GREY_MODES = frozenset({"1", "L", "LA", "La"})
_Entry = tuple[str, str, np.ndarray]  # (class name, path, H x W or H x W x 3 pixels)


def read_image_folder(data_dir: str | Path, *, cache_dir: str | Path | None = None) -> Decoded:
    """(train, test, classes) of the image folder or archive ``data_dir`` (the ``folder`` data set).

    ``data_dir`` is a directory with ``train/`` and ``test/`` in it, or a ``.tar.gz`` / ``.tgz`` /
    ``.tar`` of one (the two folders may sit one level down in the archive).
    """
    root = Path(data_dir).expanduser()
    if root.is_dir():
        if not ((root / "train").is_dir() and (root / "test").is_dir()):
            raise ValueError(f"dataset 'folder': '{root}' holds no train/ and test/; {LAYOUT}")
        files = walk_dir(root, ("train", "test"))
        what = f"image folder '{root}'"
    elif root.is_file() and root.name.endswith(ARCHIVE_SUFFIXES):
        files = walk_tar(root)
        what = f"image archive '{root}'"
    elif not root.exists():
        raise ValueError(f"dataset 'folder': data_dir '{root}' does not exist; {LAYOUT}")
    else:
        raise ValueError(f"dataset 'folder': '{root}' is not a directory or an archive; {LAYOUT}")
    return cached("folder", root, cache_directory(cache_dir), lambda: decode_images(files, what))


def read_folder(
    data_dir: str | Path | None, *, cache_dir: str | Path | None = None, download: bool = False
) -> Decoded:
    """The ``folder`` dataset's reader (its record: :data:`accelat_train.registry.DATASETS`):
    :func:`read_image_folder` of ``data_dir``, which it needs; nothing is downloaded."""
    if data_dir is None:
        raise ValueError(f"dataset 'folder' needs data_dir: {LAYOUT}")
    return read_image_folder(data_dir, cache_dir=cache_dir)


def cache_directory(cache_dir: str | Path | None) -> Path:
    """``cache_dir``, else ``$ACCELAT_CACHE``, else ``~/.cache/accelat``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("ACCELAT_CACHE", Path.home() / ".cache" / "accelat")).expanduser()


def walk_dir(root: Path, subdirs: tuple[str, ...] = (".",)) -> Iterator[tuple[str, bytes]]:
    """(relative posix path, bytes) of every file under ``root / subdir``, in sorted order."""
    paths = sorted(p for sub in subdirs for p in (root / sub).rglob("*") if p.is_file())
    for path in paths:
        yield path.relative_to(root).as_posix(), path.read_bytes()


def walk_tar(archive: Path) -> Iterator[tuple[str, bytes]]:
    """(member path, bytes) of every file in ``archive``, streamed in archive order; a
    truncated or damaged archive is a ``ValueError`` naming it.

    tarfile's stream mode ends quietly where a cut archive's data end, if the cut falls
    between two members; so the compressed stream is decompressed by gzip / bz2 / lzma, which
    raise ``EOFError`` when it stops before its end-of-stream marker, and read to its end."""
    try:
        with _decompressed(archive) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    yield member.name, handle.read()
            while stream.read(1 << 20):  # the rest of the stream, to its end-of-stream marker
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as error:
        raise ValueError(
            f"archive '{archive}' is truncated or damaged ({type(error).__name__}: {error})"
        ) from None


def _decompressed(archive: Path) -> io.BufferedIOBase:
    """``archive`` opened for reading, decompressed by its format's own reader (by its first
    bytes, as ``tarfile``'s ``r|*`` tells them), which checks the stream's end."""
    with open(archive, "rb") as f:
        head = f.read(6)
    if head.startswith(b"\x1f\x8b"):
        return gzip.open(archive, "rb")
    if head.startswith(b"BZh"):
        return bz2.open(archive, "rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(archive, "rb")
    return open(archive, "rb")


def decode_images(files: Iterable[tuple[str, bytes]], what: str, *, rgb: bool = False) -> Decoded:
    """Decode ``(path, bytes)`` pairs laid out as ``.../{train,test}/<class>/<file>``.

    ``what`` names the source in errors; ``rgb`` makes every image RGB, grey or not. Within a
    split the images are ordered by label, then path (an archive's order is arbitrary).

    Example (``png`` the bytes of a 9 x 7 grey PNG)::

        files = [(f"{split}/{c}/0.png", png) for split in ("train", "test") for c in "ab"]
        train, test, classes = decode_images(files, "example")
        train.x.shape, classes  # ((2, 7, 9, 1), ('a', 'b'))
    """
    images: dict[str, list[_Entry]] = {"train": [], "test": []}
    first: tuple[str, tuple[int, int]] | None = None
    for path, payload in files:
        parts = path.split("/")
        if len(parts) < 3 or parts[-3] not in images or parts[-1].startswith("."):
            continue
        pixels = _decode(path, payload, rgb)
        size = (pixels.shape[1], pixels.shape[0])
        if first is None:
            first = (path, size)
        elif size != first[1]:
            raise ValueError(
                f"{path} is {size[0]}x{size[1]} pixels but {first[0]} is "
                f"{first[1][0]}x{first[1][1]}: the images of {what} must all have one size"
            )
        images[parts[-3]].append((parts[-2], path, pixels))
    classes = tuple(sorted({name for name, _, _ in images["train"]}))
    strays = sorted({name for name, _, _ in images["test"]} - set(classes))
    if len(classes) < 2 or not images["test"] or strays:
        raise ValueError(
            f"{what} must hold images of 2 or more classes under train/<class>/ and some under "
            f"test/<class>/ for those classes; found {len(images['train'])} train images in "
            f"{len(classes)} classes and {len(images['test'])} test images"
            + (f", test classes without train images: {strays}" if strays else "")
        )
    colour = any(e[2].ndim == 3 for split in images.values() for e in split)
    index = {name: i for i, name in enumerate(classes)}

    def stack(entries: list[_Entry]) -> ArrayData:
        entries.sort(key=lambda e: (index[e[0]], e[1]))
        x = np.stack([_channels(e[2], colour) for e in entries])
        return ArrayData(x, np.array([index[e[0]] for e in entries], dtype=np.int64))

    return stack(images["train"]), stack(images["test"]), classes


def _decode(path: str, payload: bytes, rgb: bool) -> np.ndarray:
    """H x W (grey, unless ``rgb``) or H x W x 3 uint8 pixels of one image file."""
    with needs_extra("decoding images"):
        from PIL import Image

    try:
        with Image.open(io.BytesIO(payload)) as image:
            mode = image.mode
            if not mode.startswith(("I", "F")):
                grey = mode in _GREY_MODES and not rgb
                return np.asarray(image.convert("L" if grey else "RGB"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable image: {error}") from None
    raise ValueError(
        f"{path} has {mode} pixels (16-bit or float): convert it to 8 bits per channel"
    )


def _channels(pixels: np.ndarray, colour: bool) -> np.ndarray:
    """H x W x 1 for grey in an all-grey set; H x W x 3 (grey repeated, as PIL's L -> RGB)."""
    if pixels.ndim == 3:
        return pixels
    return np.repeat(pixels[..., None], 3, axis=2) if colour else pixels[..., None]


def _source_digest(source: Path) -> str:
    """sha256 of the source's content: the archive's bytes, or every file's path and bytes."""
    digest = hashlib.sha256()
    if source.is_file():
        with source.open("rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    else:
        for path, payload in walk_dir(source, ("train", "test")):
            digest.update(f"{path}\0{len(payload)}\0".encode())
            digest.update(payload)
    return digest.hexdigest()


def cached(key: str, source: Path, cache: Path, decode: Callable[[], Decoded]) -> Decoded:
    """``decode()`` of ``source``, memoised on disk as ``cache/<key>-<sha256>-v<format>.npz``.

    ``key`` names the decoding (``"folder"``, ``"cifar10"``): one source decoded two ways is
    cached twice. A damaged entry is rebuilt; a read-only cache costs speed, not correctness.
    """
    path = cache / f"{key}-{_source_digest(source)[:32]}-v{_CACHE_FORMAT}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return (
                    ArrayData(z["x_train"], z["y_train"]),
                    ArrayData(z["x_test"], z["y_test"]),
                    tuple(str(c) for c in z["classes"]),
                )
        except (OSError, ValueError, KeyError):
            pass  # rebuilt below
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
        pass
    return train, test, classes
