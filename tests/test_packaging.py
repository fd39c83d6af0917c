"""The distribution: one version number, its citation file, and the API reference.

``accelat_core.__version__`` is the one source of the version: pyproject.toml reads it,
the adapters re-export it, CITATION.cff repeats it (checked here) and ``accelat --version``
prints it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import runpy
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

import accelat_core

ROOT = Path(__file__).resolve().parents[1]
VERSION = accelat_core.__version__
PAPER_DOI = "10.1109/ACCESS.2022.3213734"


def test_the_version_is_a_pep440_string():
    from packaging.version import Version

    assert str(Version(VERSION)) == VERSION


@pytest.mark.parametrize("adapter", ["accelat_torch", "accelat_keras", "accelat_optax"])
def test_each_adapter_re_exports_the_core_version(adapter):
    assert importlib.import_module(adapter).__version__ == VERSION


def test_pyproject_reads_the_version_from_the_core():
    # pyproject.toml's build-system asks for setuptools>=77 (an SPDX license string).
    pytest.importorskip("setuptools", minversion="77")
    tomllib = pytest.importorskip("tomllib")
    from setuptools.config import pyprojecttoml

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in declared["project"], "the version belongs in accelat_core only"
    assert declared["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "accelat_core.__version__"
    }
    resolved = pyprojecttoml.read_configuration(ROOT / "pyproject.toml", expand=True)
    assert resolved["project"]["version"] == VERSION


def _installed_from() -> Path | None:
    """The folder the installed ``accelat`` distribution was built from, if pip recorded it."""
    try:
        record = importlib.metadata.distribution("accelat").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    url = urlparse(json.loads(record)["url"]) if record else None
    return Path(unquote(url.path)).resolve() if url and url.scheme == "file" else None


def test_installed_metadata_carries_the_core_version():
    if _installed_from() != ROOT:
        pytest.skip(f"the installed accelat was not built from {ROOT} ({_installed_from()})")
    installed = importlib.metadata.version("accelat")
    assert installed == VERSION, (
        f"installed metadata says {installed}, accelat_core says {VERSION}: "
        "run `pip install -e .` again after changing the version"
    )


def test_the_command_line_prints_the_version():
    done = subprocess.run(
        [sys.executable, "-m", "accelat_train.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert VERSION in done.stdout.split()


# CITATION.cff ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def citation():
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


def test_citation_file_is_cff_1_2_0_for_this_software(citation):
    assert citation["cff-version"] == "1.2.0"
    assert citation["type"] == "software"
    assert citation["title"] == "accelat"
    assert citation["license"] == "MIT"
    assert citation["message"].strip()
    assert citation["authors"] == [{"name": "accelat contributors"}]


def test_citation_version_is_the_core_version(citation):
    assert citation["version"] == VERSION


def test_citation_references_the_accelat_paper(citation):
    (paper,) = [ref for ref in citation["references"] if ref.get("doi") == PAPER_DOI]
    assert paper["type"] == "article"
    assert paper["title"].startswith("AccelAT: A Framework for Accelerating")
    assert paper["journal"] == "IEEE Access"
    assert (paper["volume"], paper["year"]) == (10, 2022)
    assert [a["family-names"] for a in paper["authors"]] == [
        "Nikfam",
        "Marchisio",
        "Martina",
        "Shafique",
    ]


# The API reference (docs/build_api.py) ----------------------------------------------------

# Each package's page and names it must show: its public classes and functions.
API_PAGES = {
    "accelat_core.html": ["AccelAT", "OneCycle", "Plateau", "warmup", "join", "from_config"],
    "accelat_torch.html": ["PolicyScheduler", "PlateauPolicyScheduler", "scheduler_for"],
    "accelat_keras.html": ["PolicyCallback", "PolicySchedule", "SGD"],
    "accelat_optax.html": ["Controller", "schedule", "momentum_schedule"],
    "accelat_train.html": ["TrainConfig", "train", "load_run"],
}


@pytest.fixture(scope="module")
def api_reference(tmp_path_factory):
    pytest.importorskip("pdoc")
    build = runpy.run_path(str(ROOT / "docs" / "build_api.py"))["build"]
    return build(tmp_path_factory.mktemp("api"))


@pytest.mark.slow  # pdoc imports and renders every module, TensorFlow included (~30 s)
@pytest.mark.parametrize("page", list(API_PAGES))
def test_api_reference_documents_each_package(api_reference, page):
    html = (api_reference / page).read_text(encoding="utf-8")
    for name in API_PAGES[page]:
        assert f'id="{name}"' in html, f"{page} has no entry for {name}"


@pytest.mark.slow
def test_api_reference_has_a_page_per_module_and_an_index(api_reference):
    assert (api_reference / "index.html").is_file()
    assert (api_reference / "search.js").is_file()
    for module in ("accelat_core/policies/accelat", "accelat_train/training/events"):
        assert (api_reference / f"{module}.html").is_file(), module
    assert not (api_reference / "accelat_train" / "__main__.html").exists()
