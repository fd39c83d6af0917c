"""One check of a path a command will write, before the work: :func:`check_output_path`.

A file to write (``export --out``, ``plot-policy --out``) or a folder to fill (a run's or a
comparison's ``--out``) is refused, with one ``ValueError`` naming the flag and the path,
when it cannot be written: an empty name; a name longer than the file system allows
(``ENAMETOOLONG``, per name or for the whole path); a dangling symbolic link or a loop of
them, at the path or above it; a file where a folder is wanted (at the path or above it);
a folder, a device or another special file where a file is wanted; a place where no file
can be created (``/proc``, a read-only file system, a folder without write permission),
found by creating and removing a hidden empty file there, which holds for root too; a file
of a run (``config.json``, ``checkpoint.pt``, ...) in the folder of that run.

Nothing is created: the folders a command would make are made by its work.

>>> check_output_path("/proc/model.pt2", "--out")
Traceback (most recent call last):
ValueError: --out /proc/model.pt2: cannot create files in /proc (...)
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

#: The limits where ``os.pathconf`` cannot tell (POSIX's usual NAME_MAX and PATH_MAX).
NAME_MAX, PATH_MAX = 255, 4096
#: The files a run writes in its folder (:attr:`accelat_train.run_dir.RunDir.run_files`'
#: names; named here as well, since this module imports no torch).
RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.pt", "best.pt", "report.json",
             "curves.png", "lr_find.png")  # fmt: skip


def check_output_path(
    path: str | Path, flag: str, *, folder: bool = False, run_file: bool = False
) -> Path:
    """``path`` as a ``Path`` if the command can write it (a file, or with ``folder`` a
    folder to create or fill), else ``ValueError("{flag} {path}: {why}")``. ``run_file``: the
    path is a file the run in its folder writes itself (its ``curves.png``), not one a user
    named, so being a file of that run is no refusal."""
    text = str(path)
    if not text.strip():
        raise ValueError(
            f"{flag} must name a {'run directory' if folder else 'file'}, got {text!r}"
        )
    target = Path(os.path.abspath(os.path.expanduser(text)))
    try:
        _check(target, folder, run_file)
    except _Refused as why:
        raise ValueError(f"{flag} {text}: {why}") from None
    return Path(text).expanduser()


class _Refused(Exception):
    """Why a path cannot be written (the message after ``{flag} {path}: ``)."""


def _check(target: Path, folder: bool, run_file: bool) -> None:
    chain = [target, *target.parents]
    existing = next(p for p in chain if os.path.lexists(p))  # "/" at worst
    _check_lengths(target, existing)
    for link in chain[: chain.index(existing) + 1]:
        if os.path.islink(link) and not os.path.exists(link):
            raise _Refused(_dangling(link, target))
    if existing != target:  # the folders between are made by the command
        if not existing.is_dir():
            raise _Refused(f"{existing} is a file, not a folder")
        _probe(existing)
        return
    if folder:
        if not target.is_dir():
            raise _Refused("is a file, not a folder")
        _probe(target)
        return
    if target.is_dir():
        raise _Refused("is a folder; name a file in it")
    if not stat.S_ISREG(os.stat(target).st_mode):
        raise _Refused("is not a regular file (a device, a pipe or a socket)")
    others = [n for n in RUN_FILES if n != target.name and (target.parent / n).exists()]
    if target.name in RUN_FILES and others and not run_file:
        raise _Refused(
            f"is the {target.name} of the run in {target.parent} (beside its "
            f"{', '.join(others)}); name another file"
        )
    _probe(target.parent)


def _check_lengths(target: Path, existing: Path) -> None:
    base = existing if existing.is_dir() else existing.parent
    name_max = _pathconf(base, "PC_NAME_MAX", NAME_MAX)
    path_max = _pathconf(base, "PC_PATH_MAX", PATH_MAX)
    for part in target.parts[1:]:
        size = len(os.fsencode(part))
        if size > name_max:
            raise _Refused(
                f"a name in it is {size} bytes long; the file system allows {name_max} "
                f"({part[:20]}...)"
            )
    size = len(os.fsencode(str(target)))
    if size >= path_max:
        raise _Refused(
            f"the path is {size} bytes long; the file system allows paths of {path_max - 1}"
        )


def _pathconf(path: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(path, name))
    except (OSError, ValueError):
        return default


def _dangling(link: Path, target: Path) -> str:
    where = "" if link == target else f"{link} "
    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{where}is a loop of symbolic links"
    return f"{where}is a symbolic link to {os.readlink(link)}, which does not exist"


def _probe(directory: Path) -> None:
    """Create and remove a hidden empty file in ``directory``: the one test of writability
    that holds for every user and file system (``os.access`` says yes to root on ``/proc``)."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".accelat-probe-", suffix=".tmp")
    except OSError as exc:
        raise _Refused(f"cannot create files in {directory} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(name)
