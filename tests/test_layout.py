"""Where the tests live (docs/testing.md, "Where the tests live"): the layout is checked, not
only described.

- ``tests/core`` tests the framework-free core and imports no framework itself: a test that
  compares with torch's or Keras' own schedulers sits beside that adapter's tests
  (``tests/torch``, ``tests/keras``), so the core's suite (and its mutation runs) needs none.
- ``tests/train`` mirrors :mod:`accelat_train`: a folder of it that holds tests is named for a
  sub-package of the trainer, and a test file that tests one sub-package only sits in its
  folder; the tests of the top-level modules stay in ``tests/train`` itself.
- No two test files share a name anywhere under ``tests`` (pytest imports them by their base
  name: the folders have no ``__init__.py``).
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
TRAINER = ROOT / "reference_training" / "accelat_train"
FRAMEWORKS = frozenset({"torch", "keras", "tensorflow", "jax", "jaxlib", "optax", "flax"})
#: Calls that import the module their first (string) argument names.
IMPORTING_CALLS = frozenset({"importorskip", "import_module", "__import__", "find_spec"})


def imported_modules(source: str) -> set[str]:
    """Every module ``source`` imports: its import statements, and the calls that import a
    module named by a string (``pytest.importorskip("torch")``, ``importlib.import_module``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if name in IMPORTING_CALLS and isinstance(getattr(first, "value", None), str):
                names.add(first.value)
    return names


def frameworks_imported(path: Path) -> list[str]:
    modules = imported_modules(path.read_text(encoding="utf-8"))
    return sorted({m.split(".")[0] for m in modules} & FRAMEWORKS)


def trainer_subpackages() -> set[str]:
    return {p.parent.name for p in TRAINER.glob("*/__init__.py")}


def subpackages_imported(path: Path) -> set[str]:
    """The sub-packages of accelat_train a test file imports (``accelat_train.data.cifar``
    counts as ``data``; a top-level module, ``accelat_train.cli``, as none)."""
    subpackages = trainer_subpackages()
    parts = [m.split(".") for m in imported_modules(path.read_text(encoding="utf-8"))]
    return {p[1] for p in parts if p[0] == "accelat_train" and len(p) > 1 and p[1] in subpackages}


@pytest.mark.parametrize("path", sorted((TESTS / "core").rglob("*.py")), ids=lambda p: p.name)
def test_the_core_tests_import_no_framework(path):
    assert frameworks_imported(path) == []


def test_the_framework_check_sees_imports_and_importorskip(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json\nimport torch.nn\nfrom keras import ops\n"
        "def f():\n    import jax\n"
        "np = pytest.importorskip('numpy')\ntf = pytest.importorskip('tensorflow')\n"
        "optax = importlib.import_module('optax')\n"
    )
    assert frameworks_imported(probe) == ["jax", "keras", "optax", "tensorflow", "torch"]


def test_each_folder_of_the_trainer_tests_is_named_for_a_subpackage():
    subpackages = trainer_subpackages()
    folders = {p.parent for p in (TESTS / "train").rglob("test_*.py")} - {TESTS / "train"}
    assert all(f.parent == TESTS / "train" for f in folders), "one level of folders only"
    assert sorted(f.name for f in folders if f.name not in subpackages) == []


def test_a_trainer_test_of_one_subpackage_sits_in_its_folder():
    """A test file at the top of tests/train that imports from exactly one sub-package of the
    trainer and from none of its top-level modules belongs in that sub-package's folder."""
    misplaced = {}
    for path in sorted((TESTS / "train").glob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        imported = subpackages_imported(path)
        top_level = {
            m
            for m in imported_modules(text)
            if m.startswith("accelat_train.") and m.split(".")[1] not in trainer_subpackages()
        }
        if len(imported) == 1 and not top_level:
            misplaced[path.name] = imported.pop()
    assert misplaced == {}


def test_no_two_test_files_share_a_name():
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert sorted(name for name, count in names.items() if count > 1) == []
