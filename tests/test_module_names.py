"""Within each package no two modules share a file name (``__init__.py`` aside): a name says
what one module holds, and a reader who sees ``checkpoint.py`` knows which one is meant."""

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


def repeated_module_names(package: Path) -> list[str]:
    """The file names that more than one module of ``package`` has (``__init__.py`` aside)."""
    names = Counter(p.name for p in package.rglob("*.py") if p.name != "__init__.py")
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
