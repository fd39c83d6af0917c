"""Setting a run up: device, data, model, optimizer and method for a ``TrainConfig``, and
what its lr range test reads (:class:`Setup`).

>>> setup = build(TrainConfig(dataset="digits", eps=0.1, lr_max=0.05))  # doctest: +SKIP
>>> setup.updates_per_epoch  # doctest: +SKIP
12
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from accelat_train.adversarial.evaluation import check_subset_size
from accelat_train.adversarial.methods import Method
from accelat_train.catalogue import LR_FREE_LR
from accelat_train.config import GIVEN, TrainConfig
from accelat_train.data import DeviceLoader, Splits, load_splits
from accelat_train.data.loader import DatasetLoader, make_loader
from accelat_train.extras import require
from accelat_train.models import NormalizedModel, build_model
from accelat_train.registry import ATTACKS, DATASETS, METHODS, OPTIMIZERS
from accelat_train.training import distributed
from accelat_train.training.network_check import check_materialized, check_splits_network


@dataclass(frozen=True)
class RangeTest:
    """What the lr range test reads of a run besides its model, optimizer and data: the
    ``attack`` on the training loss (the method record's ``finder_attack``) at ``eps`` (with
    ``pgd_steps``), its generator's ``seed``, and its ``steps`` (None: one per training
    batch, clamped; :func:`accelat_train.training.lr_finder.finder_steps`)."""

    attack: str
    eps: float
    pgd_steps: int
    seed: int
    steps: int | None


@dataclass(frozen=True)
class Setup:
    """Data, model, optimizer and method of a run, ready to train (before any scheduler),
    and what its lr range test reads."""

    device: torch.device
    dist: distributed.DistInfo
    splits: Splits
    loader: DeviceLoader | DatasetLoader
    model: nn.Module  # NormalizedModel, uncompiled: what is saved and evaluated
    train_model: nn.Module  # what the method trains through (compiled / DDP-wrapped)
    optimizer: torch.optim.Optimizer
    method: Method
    scaler: torch.amp.GradScaler | None
    range_test: RangeTest

    @property
    def updates_per_epoch(self) -> int:
        return self.batches_per_epoch * self.method.replays

    @property
    def batches_per_epoch(self) -> int:
        """Minibatches per epoch-equivalent: Free AT replays each of them ``replays`` times."""
        return batches_per_epoch(len(self.loader), self.method.replays)


def batches_per_epoch(loader_batches: int, replays: int) -> int:
    """``ceil(loader_batches / replays)``: one epoch-equivalent of gradient work."""
    return -(-loader_batches // replays)


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA where available, else CPU; asking for absent CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def check_extras(needs: dict[str, tuple[str, ...]]) -> None:
    """Raise :class:`~accelat_train.extras.MissingExtra` naming the flag, the package and
    the extra, before any work, if an optional package that ``needs`` (what needs it ->
    the packages) asks for is missing."""
    for what, modules in needs.items():
        require(modules, what)


def build(
    cfg: TrainConfig,
    *,
    dist_info: distributed.DistInfo | None = None,
    model: nn.Module | None = None,
    data: Splits | None = None,
) -> Setup:
    """Load the data and build model, optimizer and method for ``cfg`` (seeded), each by its
    record (:mod:`accelat_train.registry`); ``model`` and ``data`` are a user's own
    (``dataset`` / ``model`` ``"given"``), as ``fit`` passes them. A missing optional package
    (of the dataset's reader, the method's or the attacks' library, the optimizer) is an error
    naming its flag before anything is loaded (:func:`check_extras`)."""
    dataset = DATASETS.get(cfg.dataset)  # None: a user's own
    optimizer_flag = f"--optimizer {cfg.optimizer}" if cfg.optimizer else f"--policy {cfg.policy}"
    check_extras({
        f"--method {cfg.method}": METHODS[cfg.method].needs,
        f"--dataset {cfg.dataset}": dataset.needs if dataset else (),
        optimizer_flag: OPTIMIZERS[cfg.optimizer_name].needs,
        **{f"--attacks {a}": ATTACKS[a].needs for a in cfg.attacks},
    })  # fmt: skip
    for name, given in (("dataset", data), ("model", model)):
        if (getattr(cfg, name) == GIVEN) != (given is not None):
            raise ValueError(
                f"{name} {GIVEN!r} means a {name} passed to accelat_train.fit(); "
                f"got {name}={getattr(cfg, name)!r} with {'one' if given is not None else 'none'}"
            )
    info = dist_info or distributed.DistInfo()
    device, amp = _device(cfg.device, info, cfg.amp)
    splits = data or load_splits(
        cfg.dataset,
        cfg.data_dir,
        train_size=cfg.train_size,
        val_size=cfg.val_size,
        seed=cfg.seed,
        download=cfg.download,
    )
    check_subset_size(cfg.eval_size, len(splits.test))  # before any work, as eval checks it
    loader = make_loader(
        splits.train, cfg.batch_size, device=device, augment=splits.augment, seed=cfg.seed,
        rank=info.rank, world_size=info.world_size,
    )  # fmt: skip
    torch.manual_seed(cfg.seed)  # the model's initial weights
    name = "the model given to fit()" if cfg.model == GIVEN else f"model {cfg.model}"
    if model is None:
        model = _network(cfg.model, splits)
    model, train_model = _models(model, name, splits, device, info, compile=cfg.compile)
    batches = batches_per_epoch(len(loader), cfg.num_replays)
    optimizer_entry = OPTIMIZERS[cfg.optimizer_name]
    optimizer = optimizer_entry.load()(
        model.parameters(), lr=_start_lr(cfg.lr_max, lr_free=optimizer_entry.lr_free),
        momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov,
        total_updates=cfg.epochs * batches * cfg.num_replays, warmup=cfg.schedulefree_warmup,
    )  # fmt: skip
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    entry = METHODS[cfg.method]
    method = entry.make(
        cfg.eps, replays=cfg.replays, pgd_steps=cfg.pgd_steps, amp=amp, scaler=scaler,
        generator=generator,
    )  # fmt: skip
    finder = RangeTest(entry.finder_attack, cfg.eps, cfg.pgd_steps, cfg.seed, cfg.lr_find_steps)
    return Setup(
        device, info, splits, loader, model, train_model, optimizer, method, scaler, finder
    )


def _device(
    name: str, info: distributed.DistInfo, amp: str | None
) -> tuple[torch.device, str | None]:
    """The device ``name`` (under DDP on CUDA, this rank's GPU) and the mixed precision it
    trains in (``amp`` on CUDA; float32 elsewhere, with a warning)."""
    device = resolve_device(name)
    if info.active and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    if amp is not None and device.type != "cuda":
        warnings.warn(f"--amp {amp} needs CUDA; training in float32 on {device}", stacklevel=3)
        amp = None
    return device, amp


def _start_lr(lr_max: float | str, *, lr_free: bool) -> float:
    """The lr an optimizer is built with: an LR-free one's own; for SGD ``lr_max``, or a
    placeholder the schedule replaces once the finder has found it."""
    if lr_free:
        return LR_FREE_LR
    return lr_max if isinstance(lr_max, float) else 0.1


def _network(name: str, splits: Splits) -> nn.Module:
    """The network ``name`` for ``splits``' images, normalised by their mean and std."""
    _, height, _, channels = splits.val.x.shape
    net = build_model(name, len(splits.classes), in_channels=channels, image_size=height)
    return NormalizedModel(net, splits.mean, splits.std)


def _models(
    given: nn.Module,
    name: str,
    splits: Splits,
    device: torch.device,
    info: distributed.DistInfo,
    *,
    compile: bool,
) -> tuple[nn.Module, nn.Module]:
    """The model on ``device`` (a user's takes [0, 1] images as it is), and what training
    runs through (compiled, DDP-wrapped)."""
    check_materialized(given, name)
    model = given.to(device)
    # Before anything reads the parameters: lazy layers get their shapes (and seeded weights).
    check_splits_network(model, splits, device, name)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    train_model: nn.Module = model
    if compile:
        # The compiled network shares the parameters; the plain model is what is saved.
        if isinstance(model, NormalizedModel):
            compiled = torch.compile(model.net)
            train_model = NormalizedModel(compiled, splits.mean, splits.std).to(device)  # type: ignore[arg-type]
        else:
            train_model = torch.compile(model)  # type: ignore[assignment]
    if info.active:
        ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(train_model, device_ids=ids)
    return model, train_model
