"""A public way back to a trained model: ``load_run(path)``.

>>> from accelat_train import load_run
>>> run = load_run("runs/a")  # doctest: +SKIP
>>> x, y = run.test_data()  # doctest: +SKIP
>>> (run.model(x).argmax(1) == y).float().mean()  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from accelat_train.adversarial.evaluation import as_tensors, eval_subset
from accelat_train.checkpoint import CheckpointError, load_weights
from accelat_train.config import GIVEN, check_data_dir
from accelat_train.data import Splits, load_splits
from accelat_train.models import NormalizedModel, build_model
from accelat_train.run_dir import RunDir, RunDirError, read_json

WHICH = ("last", "best")


@dataclass
class Run:
    """A trained run: its model (eval mode; NCHW float images in [0, 1], normalisation
    inside), ``config.json`` as a dict, the ``metrics.jsonl`` rows, ``report.json`` (None
    for an unfinished run), the ``epoch`` its weights are from (the checkpoint's, or the best
    epoch that early stopping or the overfitting rollback restored into it) and the path it
    was loaded from."""

    model: nn.Module
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    report: dict[str, Any] | None
    epoch: int
    checkpoint: Path
    splits: Any = field(default=None, repr=False)  # the run's data, read once

    def test_data(
        self, device: str | torch.device = "cpu", size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The run's test images as ``(x, y)``: by default the ones its report was computed
        on (``eval_size`` of them, the fixed subset every evaluation uses); ``size`` takes
        that many of the same fixed random order instead."""
        if self.splits is None:
            raise ValueError("this run's data were given to fit(): load_run(..., splits=) them")
        x, y = as_tensors(self.splits.test, torch.device(device))
        return eval_subset(x, y, self.config.get("eval_size") if size is None else size)


def load_run(
    path: str | Path,
    which: str = "last",
    *,
    device: str | torch.device = "cpu",
    data_dir: str | None = None,
    model: nn.Module | None = None,
    splits: Splits | None = None,
) -> Run:
    """Load the run in directory ``path`` (or the checkpoint file ``path`` inside one).

    ``which="last"`` loads ``checkpoint.pt``, ``"best"`` the best robust-validation epoch's
    ``best.pt``; a file path names the checkpoint itself. ``data_dir`` overrides the run's
    own (for ``test_data`` on a machine where the data lie elsewhere; refused, naming
    ``data_dir``, for a data set that reads none). A run of your own
    model and data (:func:`accelat_train.fit`) needs ``model`` (an instance of the same
    architecture: a copy of it gets the weights) and, for ``test_data``, ``splits``. A
    missing, corrupt or foreign checkpoint, one with a NaN or inf weight, or a folder without
    its ``config.json`` (yet: a run still going is named) raises
    :class:`~accelat_train.checkpoint.CheckpointError` naming it.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {', '.join(WHICH)}, got {which!r}")
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no run folder or checkpoint at {path}")
    folder = RunDir(path if path.is_dir() else path.parent)
    ckpt_path = (folder.checkpoint if which == "last" else folder.best) if path.is_dir() else path
    if not folder.config.is_file():
        raise CheckpointError(_no_config(folder))
    state = load_weights(ckpt_path)
    try:
        config = read_json(folder.config)
    except RunDirError as exc:
        raise CheckpointError(str(exc)) from None
    for key in ("dataset", "model"):
        if not isinstance(config.get(key), str):
            raise CheckpointError(
                f"{folder.config} does not say the run's {key} (a name), got "
                f"{reprlib.repr(config.get(key))}"
            )
    if data_dir is not None:
        check_data_dir(config.get("dataset", ""), data_dir)
    if config["model"] == GIVEN and model is None:
        raise ValueError(f"{folder.path} trained a model given to fit(): pass model=")
    if splits is None and config["dataset"] != GIVEN:
        try:
            splits = _splits(config, data_dir)
        except CheckpointError:
            raise
        except ValueError as exc:
            if data_dir is not None:  # the caller's data_dir may be what is wrong
                raise
            # Every setting it read is config.json's (one edited by hand: "train_size": "80").
            raise CheckpointError(f"{folder.config}: {exc}") from None
    net = copy.deepcopy(model) if model is not None else _model(config, splits)
    try:
        # A run with averaging evaluated (and reported on) the averaged weights.
        net.load_state_dict(state.get("evaluated", state["model"]))
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{ckpt_path}: weights do not fit the run's model ({exc})") from None
    _check_finite(net, ckpt_path)
    net.to(torch.device(device)).eval()
    metrics = folder.rows() if folder.metrics.is_file() else []
    report = read_json(folder.report) if folder.report.is_file() else None
    return Run(net, config, metrics, report, weights_epoch(state), ckpt_path, splits)


def weights_epoch(state: dict[str, Any]) -> int:
    """The epoch a checkpoint's evaluated weights are from: its ``epoch``, unless a stop
    (early stopping, the overfitting rollback) restored ``best.pt``'s into it."""
    for key in ("stopped", "rollback"):
        restored = (state.get(key) or {}).get("restored_epoch")
        if restored is not None:
            return int(restored)
    return int(state["epoch"])


def _no_config(folder: RunDir) -> str:
    holder = folder.holder()
    if holder is not None:
        return (
            f"{folder.path} holds no {folder.config.name} yet: the run is still going (process "
            f"{holder} holds {folder.lock}); try again once it has written its config"
        )
    return (
        f"{folder.path} holds no {folder.config.name}: it is not a run folder, or its run has "
        "not written its config yet"
    )


def _check_finite(net: nn.Module, path: Path) -> None:
    """Refuse weights with a NaN or an inf: every accuracy measured with them means nothing."""
    bad = [
        name
        for name, tensor in net.state_dict().items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(
            f"{path} holds non-finite weights (NaN or inf in {', '.join(bad[:3])}{more}); "
            "whatever they score means nothing: take the other checkpoint (--which) or train again"
        )


def _splits(config: dict[str, Any], data_dir: str | None) -> Any:
    return load_splits(
        config["dataset"],
        data_dir or config.get("data_dir"),
        train_size=config.get("train_size"),
        val_size=config.get("val_size"),
        seed=config.get("seed", 0),
    )


def _model(config: dict[str, Any], splits: Any) -> nn.Module:
    _, height, _, channels = splits.val.x.shape
    net = build_model(config["model"], len(splits.classes), in_channels=channels, image_size=height)
    return NormalizedModel(net, splits.mean, splits.std)
