"""``fit``: the trainer on your own model and data, from Python.

The run is the command line's (:func:`accelat_train.train`, the same folder and files);
only the model and the data come from the caller instead of a name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from accelat_train.callbacks.callback import Callback
from accelat_train.config import GIVEN, TrainConfig
from accelat_train.data.given import given_splits
from accelat_train.trained import Run, load_run
from accelat_train.training.loop import train as train_run


def fit(
    model: torch.nn.Module,
    train: Any,
    val: Any = None,
    test: Any = None,
    *,
    classes: Sequence[str] | None = None,
    callbacks: Sequence[Callback] = (),
    quiet: bool = False,
    resume: bool = False,
    restart: bool = False,
    **config: Any,
) -> Run:
    """Adversarially train your own ``model`` on your own data, as ``accelat train`` would.

    ``model`` is any ``nn.Module`` that takes images in [0, 1] (N x C x H x W) and returns
    logits; it trains in place. ``train``, ``val`` and ``test`` are ``(x, y)`` arrays or
    tensors or map-style datasets of ``(image, label)``
    (:func:`accelat_train.data.given.given_splits`: without ``val`` a tenth of ``train`` is
    held out; without ``test`` the final evaluation runs on ``val``). Every other keyword is a
    :class:`TrainConfig` field and means what its flag means (``method``, ``eps``,
    ``policy``, ``lr_max="auto"``, ``ema_epochs``, ``monitor``, ``attacks``, ``out``, ...);
    the run folder is the same as the command line's. A folder holding a run is never
    overwritten: ``resume=True`` continues the run in ``out`` (give the same model class and
    data; a larger ``epochs`` extends a finished run whose schedule does not depend on its
    budget), ``restart=True`` moves it to ``<out>.previous-N`` and starts over. Returns the
    trained run: its evaluated
    model (the averaged one with ``ema_epochs``), metrics and report.

    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    >>> run = fit(net, (x, y), eps=0.1, epochs=5, out="runs/mine")  # doctest: +SKIP
    >>> run.report["final"]["robust_acc"]  # doctest: +SKIP
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module (your network, built), got {model!r:.80} "
            f"({type(model).__name__})"
        )
    cfg = TrainConfig(**{"dataset": GIVEN, "model": GIVEN, **config})
    data = given_splits(
        train, val, test, classes=None if classes is None else tuple(classes),
        val_size=cfg.val_size, train_size=cfg.train_size, seed=cfg.seed,
    )  # fmt: skip
    path = train_run(cfg, callbacks=callbacks, quiet=quiet, resume=resume, restart=restart,
                     model=model, data=data)  # fmt: skip
    return load_run(path, device=next(model.parameters()).device, model=model, splits=data)
