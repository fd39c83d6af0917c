"""``RunDir``: one run's folder, its layout, its lock and its writes.

Every file name of a run lives here: ``config.json`` (the resolved config), ``metrics.jsonl``
(one line per epoch), ``checkpoint.pt`` (the whole run, for ``--resume``), ``best.pt`` (the
best robust-validation epoch's weights), ``report.json`` and ``curves.png`` (after the final
evaluation), ``lr_find.png`` (the range test's curve) and ``.lock``. Any one of those files
(:meth:`RunDir.held`) means the folder holds a run, which is never overwritten: it is
continued, or moved aside whole (:meth:`RunDir.move_aside`) to start over
(:mod:`accelat_train.training.resume` decides which, before anything is written).

``claimed()`` holds an exclusive lock (``fcntl.flock`` on ``.lock``, which holds the pid): a
second process on the same folder fails at once, naming the folder and the holder's pid. The
kernel drops the lock when its process dies, however it dies, so a killed run never blocks
its ``--resume``. Once the lock is held, the temporary files a killed writer left behind
(``.NAME.*.tmp``) are removed. Writes are atomic (:mod:`accelat_train.atomic_writes`); a write
that fails (a full disk) raises :class:`RunDirError` naming the file and saying that the
previous version is intact.

>>> run = RunDir("runs/a")
>>> run.checkpoint.name, run.best.name
('checkpoint.pt', 'best.pt')
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from accelat_train.atomic_writes import atomic_write_text
from accelat_train.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint

try:  # POSIX; elsewhere the folder is not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class RunDirError(ValueError):
    """A run folder that cannot be used: in use, not a folder, unreadable or unwritable, or
    holding a run that may not be overwritten. ``flags`` is the same message in the command
    line's words (``--resume`` where Python says ``resume=True``)."""

    def __init__(self, message: str, flags: str | None = None) -> None:
        super().__init__(message)
        self.flags = message if flags is None else flags


class RunDir:
    """The folder ``path`` of one run: its file names and the operations on them."""

    def __init__(self, path: str | Path) -> None:
        if not str(path).strip():
            raise RunDirError(f"a run directory must be named, got {str(path)!r}")
        self.path = Path(path)

    # -- the layout ---------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def report(self) -> Path:
        return self.path / "report.json"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def lr_find_plot(self) -> Path:
        return self.path / "lr_find.png"

    @property
    def lock(self) -> Path:
        return self.path / ".lock"

    @property
    def run_files(self) -> tuple[Path, ...]:
        """Every file a run writes here: any one of them means the folder holds a run."""
        return (self.config, self.metrics, self.checkpoint, self.best, self.report,
                self.curves, self.lr_find_plot)  # fmt: skip

    def held(self) -> list[Path]:
        """The files of a run this folder holds (:attr:`run_files` that exist, a dangling
        link included); empty when it holds none."""
        return [p for p in self.run_files if p.exists() or p.is_symlink()]

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- claiming the folder ------------------------------------------------------------------
    def create(self) -> None:
        """Make the folder (and its parents), or raise naming what is in the way."""
        for parent in (self.path, *self.path.parents):
            if parent.exists() and not parent.is_dir():
                raise RunDirError(f"run directory {self.path}: {parent} is a file, not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"run directory {self.path} cannot be made: {exc.strerror}") from None

    @contextlib.contextmanager
    def claimed(self) -> Iterator[RunDir]:
        """Create the folder, hold its lock and clear a killed writer's temp files."""
        self.create()
        with open(self.lock, "a+", encoding="utf-8") as handle:
            if fcntl is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise RunDirError(
                        f"run directory {self.path} is in use by process {holder} "
                        f"(lock {self.lock}); wait for it to end or choose another folder"
                    ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            self.remove_temp_files()
            yield self

    def move_aside(self) -> Path:
        """Move everything in the folder but its lock into a new sibling folder
        (:func:`aside_name`) and return it; nothing is deleted. Call it on a claimed folder."""
        target = aside_name(self.path.resolve())
        try:
            target.mkdir()
            for entry in sorted(self.path.iterdir()):
                if entry.name != self.lock.name:
                    os.rename(entry, target / entry.name)
        except OSError as exc:
            raise RunDirError(
                f"could not move the earlier run in {self.path} to {target}: {exc.strerror}; "
                "nothing was deleted"
            ) from None
        return target

    def holder(self) -> str | None:
        """The pid a live process holding the folder's lock wrote, or None when no process
        holds it (a shared lock is tried and let go at once; nothing is created)."""
        if fcntl is None or not self.lock.is_file():
            return None
        with open(self.lock, encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return handle.read().strip() or "unknown"
            fcntl.flock(handle, fcntl.LOCK_UN)
        return None

    def remove_temp_files(self) -> list[Path]:
        """Remove the ``.NAME.*.tmp`` files an interrupted atomic write left behind."""
        stale = sorted(self.path.glob(".*.tmp"))
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return stale

    # -- reading and writing -------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        """``config.json`` as a dict, or :class:`RunDirError` naming the file and the fault."""
        return read_json(self.config)

    def write_config(self, config: dict[str, Any]) -> None:
        self.write_text(self.config, json.dumps(config, indent=2) + "\n")

    def write_text(self, path: Path, text: str) -> None:
        """Write ``text`` to ``path`` atomically; a failure names the file."""
        try:
            atomic_write_text(path, text)
        except OSError as exc:
            raise RunDirError(_unwritten(path, exc)) from None

    def save_checkpoint(self, path: Path, state: dict[str, Any]) -> None:
        """Save a checkpoint atomically; a failure (a full disk) names the file."""
        try:
            save_checkpoint(path, state)
        except (OSError, RuntimeError) as exc:
            raise RunDirError(_unwritten(path, exc)) from None

    def load_checkpoint(self, path: Path | None = None) -> dict[str, Any]:
        """``checkpoint.pt`` (or ``path``), weights-only; a :class:`CheckpointError` names it."""
        return load_checkpoint(self.checkpoint if path is None else path)

    def checkpoint_epoch(self) -> int | str:
        """The epoch of ``checkpoint.pt``: an int, ``"none yet"`` or ``"unreadable"``."""
        if not self.checkpoint.exists():
            return "none yet"
        try:
            return int(load_weights(self.checkpoint)["epoch"])
        except CheckpointError:
            return "unreadable"

    def append_metrics(self, line: str) -> int:
        """Append one epoch's line durably; return the file's new length in bytes."""
        with open(self.metrics, "ab") as f:
            f.write(line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
            return f.tell()

    def truncate_metrics(self, length: int) -> None:
        """Cut ``metrics.jsonl`` back to ``length`` bytes (lines after the checkpoint go); a
        length beyond the file's end is refused (a cut never extends the file)."""
        size = self.metrics.stat().st_size if self.metrics.is_file() else 0
        if not 0 <= length <= size:
            raise RunDirError(f"{self.metrics} holds {size} bytes; cannot cut it to {length}")
        with open(self.metrics, "ab") as f:
            f.truncate(length)
            f.flush()
            os.fsync(f.fileno())

    def rows(self) -> list[dict[str, Any]]:
        """``metrics.jsonl``: one dict per completed epoch, in file order."""
        if not self.metrics.is_file():
            raise RunDirError(f"no metrics.jsonl in run directory {str(self.path)!r}")
        rows = []
        with self.metrics.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                rows.append(parse_json(line, f"{self.metrics}: line {number}"))
        return rows


def aside_name(path: Path, suffix: str = "") -> Path:
    """Where an earlier ``path`` goes when a run starts over in its place: the sibling
    ``<name>.previous-<N>`` (a file keeps its ``suffix`` last: ``lr_find_seed0.previous-1.json``),
    N one more than the largest there is, so that the newest has the largest number.

    >>> aside_name(Path("/nonexistent/run")).name
    'run.previous-1'
    """
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    pattern = re.escape(stem) + r"\.previous-(\d+)" + re.escape(suffix)
    taken = [
        int(m.group(1))
        for p in path.parent.glob(glob.escape(stem) + ".previous-*")
        if (m := re.fullmatch(pattern, p.name))
    ]
    return path.parent / f"{stem}.previous-{max(taken, default=0) + 1}{suffix}"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; any fault is a :class:`RunDirError` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunDirError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} cannot be read: {exc}") from None
    return parse_json(text, str(path))


def parse_json(text: str, source: str) -> dict[str, Any]:
    """The JSON object ``text``; invalid JSON, nesting too deep for Python's parser or
    another kind of value is a :class:`RunDirError` naming ``source``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{source} is not valid JSON (truncated?): {exc}") from None
    except RecursionError:
        raise RunDirError(f"{source} is JSON nested too deeply to read") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{source} must hold a JSON object, got {type(data).__name__}")
    return data


def _unwritten(path: Path, exc: BaseException) -> str:
    # torch.save reports a write that failed (ENOSPC) as "[enforce fail at
    # inline_container.cc:...] unexpected pos": the OSError behind it says what happened.
    os_error = _os_error(exc)
    cause = (os_error and os_error.strerror) or str(exc).splitlines()[0][:200]
    kept = "the previous version is intact" if path.exists() else "nothing was written"
    return f"could not write {path}: {cause}; {kept}"


def _os_error(exc: BaseException | None) -> OSError | None:
    """The first ``OSError`` with a message in ``exc``'s chain (its cause or context)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.strerror:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
