"""Within each package no two modules share a file name (``__init__.py`` aside): a name says
what one module holds, and a reader who sees ``checkpoint.py`` knows which one is meant.

A module kept at an old path only to warn until 0.4 (its whole body a
``__getattr__ = moved(...)``, :mod:`accelat_train.deprecations`) holds nothing and is not
counted."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    "accelat_core",
    "adapters/accelat_torch",
    "adapters/accelat_keras",
    "adapters/accelat_optax",
    "adapters/accelat_tables",
    "reference_training/accelat_train",
]


def is_moved_alias(path: Path) -> bool:
    """A module left at an old path: it defines nothing, its names are ``moved``'s."""
    text = path.read_text(encoding="utf-8")
    defines = ("\ndef ", "\nclass ", "\nimport torch")
    return "__getattr__ = moved(__name__" in text and not any(d in text for d in defines)


def repeated_module_names(package: Path) -> list[str]:
    """The file names that more than one module of ``package`` has (``__init__.py`` and moved
    aliases aside)."""
    modules = [p for p in package.rglob("*.py") if p.name != "__init__.py"]
    names = Counter(p.name for p in modules if not is_moved_alias(p))
    return sorted(name for name, count in names.items() if count > 1)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_two_modules_of_a_package_share_a_file_name(package):
    folder = ROOT / package
    assert folder.is_dir(), folder
    assert repeated_module_names(folder) == []


def test_the_check_finds_a_repeated_name(tmp_path):
    for room in ("a", "b"):
        (tmp_path / room).mkdir()
        (tmp_path / room / "schedule.py").write_text("")
        (tmp_path / room / "__init__.py").write_text("")
    assert repeated_module_names(tmp_path) == ["schedule.py"]
    alias = "from accelat_train.deprecations import moved\n\n__getattr__ = moved(__name__, {})\n"
    (tmp_path / "b" / "schedule.py").write_text(alias)
    assert repeated_module_names(tmp_path) == []
