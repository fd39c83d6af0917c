"""Optional packages: which ``pip install 'accelat[EXTRA]'`` brings each, and the one error a
missing one raises.

Every import of an optional package goes through :func:`needs_extra` (at the import) or
:func:`require` (before the work, without importing). A missing package is then one
:class:`MissingExtra` naming what needed it, the package and the extra, which the command line
prints as one line (exit 2). An ``ImportError`` of anything else passes through unchanged.

>>> with needs_extra("--log tensorboard"):  # doctest: +SKIP
...     from torch.utils.tensorboard import SummaryWriter
MissingExtra: --log tensorboard needs the tensorboard package: pip install 'accelat[tensorboard]'
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

#: Import name -> (the package pip installs, the accelat extra that holds it).
EXTRAS: dict[str, tuple[str, str]] = {
    "foolbox": ("foolbox", "train"),
    "eagerpy": ("eagerpy", "train"),
    "matplotlib": ("matplotlib", "train"),
    "sklearn": ("scikit-learn", "train"),
    "PIL": ("pillow", "train"),
    "tqdm": ("tqdm", "train"),
    "yaml": ("pyyaml", "train"),
    "art": ("adversarial-robustness-toolbox", "eval"),
    "schedulefree": ("schedulefree", "peers"),
    "prodigyopt": ("prodigyopt", "peers"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
}


class MissingExtra(ImportError):
    """An optional package is not installed; the message says which extra installs it."""


def missing(module: str, what: str) -> MissingExtra:
    """The error for the optional package ``module`` (an import name of :data:`EXTRAS`),
    which ``what`` (a flag, a feature) needs."""
    package, extra = EXTRAS[module]
    return MissingExtra(
        f"{what} needs the {package} package: pip install 'accelat[{extra}]'", name=module
    )


@contextlib.contextmanager
def needs_extra(what: str) -> Iterator[None]:
    """Turn the ``ImportError`` of a missing optional package inside the block into a
    :class:`MissingExtra` naming ``what`` needed it; other import errors pass through."""
    try:
        yield
    except MissingExtra:
        raise
    except ImportError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in EXTRAS:
            raise
        raise missing(top, what) from None


def require(modules: tuple[str, ...] | list[str], what: str) -> None:
    """Raise :class:`MissingExtra` if any optional package of ``modules`` (import names of
    :data:`EXTRAS`) is not installed; nothing is imported (a check before the work)."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent missing, or a module set to None
            found = False
        if not found:
            raise missing(module, what)
