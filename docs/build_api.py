"""Build the API reference (HTML) from the docstrings with pdoc.

    python docs/build_api.py              # writes build/api/index.html and one page per module
    python docs/build_api.py OUT_DIR

The packages must import, so install them first (``pip install -e ".[dev]"``: pdoc is in
the ``dev`` extra); pdoc imports every module it documents, Keras and TensorFlow included.
Each package's page shows its public names (its ``__all__``) and every module has a page of
its own: ``pdoc.pdoc`` would follow ``__all__`` and leave out the modules it does not list.
The docstrings are reStructuredText (````code````, ``:func:``), so pdoc reads them as such.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings
from pathlib import Path

PACKAGES = ("accelat_core", "accelat_torch", "accelat_keras", "accelat_optax", "accelat_train")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "build" / "api"


def modules(package: str) -> list[str]:
    """``package`` and the names of its public modules (imported, as pdoc will import them).

    Private modules (``_validate``) are left out, and so is ``__main__``: it runs the CLI.
    """
    path = importlib.import_module(package).__path__
    found = pkgutil.walk_packages(path, prefix=f"{package}.")
    return [package, *(m.name for m in found if not m.name.rpartition(".")[2].startswith("_"))]


def build(out: Path = DEFAULT_OUT) -> Path:
    """Write one page per module of :data:`PACKAGES`, ``index.html`` and ``search.js``."""
    import pdoc.doc
    import pdoc.render

    pdoc.render.configure(docformat="restructuredtext", footer_text="accelat API reference")
    names = [name for package in PACKAGES for name in modules(package)]
    documented = {name: pdoc.doc.Module.from_name(name) for name in names}
    for name, module in documented.items():
        page = out / f"{name.replace('.', '/')}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # optax.OptState is an alias whose ArrayTree pdoc cannot resolve; the page shows
            # the annotation as written, which is all a reader needs.
            warnings.filterwarnings("ignore", "Error parsing type annotation optax.OptState")
            html = pdoc.render.html_module(module, documented)
        page.write_text(html, encoding="utf-8")
    (out / "index.html").write_text(pdoc.render.html_index(documented), encoding="utf-8")
    (out / "search.js").write_text(pdoc.render.search_index(documented), encoding="utf-8")
    return out


if __name__ == "__main__":
    out = build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
    print(f"API reference: {out / 'index.html'}")
