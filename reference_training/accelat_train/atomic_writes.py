"""Atomic file writes: a file is replaced whole or not at all.

:func:`atomic_write` writes to a temporary file in the same directory, flushes and fsyncs it,
renames it over the target with ``os.replace`` and fsyncs the directory: a crash at any
moment leaves either the old file or the new one, never a partial one. Checkpoints, reports,
figures, run configs, CSV logs and the data caches are all written this way.

>>> atomic_write_text("runs/a/note.txt", "done")  # doctest: +SKIP
PosixPath('runs/a/note.txt')
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a temp file next to ``path``, then atomically move it to ``path``.

    If ``write`` raises, the temp file is removed and ``path`` is left as it was. The file
    gets mode 0644 (mkstemp's 0600 would hide reports and shared caches from other users).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is; not possible on Windows.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
