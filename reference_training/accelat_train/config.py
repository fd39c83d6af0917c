"""``TrainConfig``: everything that defines a run, its validation, and the flags it makes.

Each field carries its command-line help (and, where the flag is not a plain ``int``/``str``,
its parser) in ``dataclasses.field(metadata=...)``, so :mod:`accelat_train.cli` derives
every ``accelat train`` flag, its type, default and help from this one place: a new option is
a new field here. The module imports no torch (``accelat --help`` reads it).

>>> cfg = TrainConfig(dataset="digits", method="free", eps=0.1, epochs=2, lr_max=0.05)
>>> cfg.validate(); cfg.num_replays
4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelat_core import from_config
from accelat_core._validate import choice, integer, real
from accelat_train.catalogue import CATALOGUE, POLICY_NAMES
from accelat_train.choices import (
    ATTACK_ALIASES,
    ATTACK_NAMES,
    DATASET_NAMES,
    METHOD_NAMES,
    MODEL_NAMES,
    OPTIMIZER_NAMES,
    canonical_attack,
)
from accelat_train.factory import FACTORY_SYNTAX, is_factory_name
from accelat_train.parsers import (
    MAX_LR,
    MAX_SEED,
    NONNEGATIVE,
    POSITIVE,
    SEED,
    int_at_least,
    name_or_factory,
    names,
    parse_eps,
    parse_lr_max,
    parse_lr_min,
)

MONITOR_NAMES = ("robust_val_acc", "val_acc", "train_adv_acc")
#: ``dataset`` and ``model`` of a run whose data and model were given in Python (``fit``).
GIVEN = "given"
AMP_NAMES = ("bf16", "fp16")


# -- flag parsers (each error names the flag through argparse) -------------------------------
def _opt(default: Any, help: str, **flag: Any) -> Any:
    """A dataclass field whose metadata is its flag: ``help`` plus argparse keywords
    (``type``, ``choices``, ``action``), ``shown`` (the default as ``--help`` writes it, as
    the user would type it), or ``flag=False`` for a field with no flag of its own."""
    return field(default=default, metadata={"help": help, **flag})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; written resolved to ``config.json``.

    ``epochs`` are epoch-equivalents (one pass of gradient work over the training set each,
    whatever the method); ``replays`` only applies to ``method="free"``
    (None there means 4); ``lr_max`` is a float or ``"auto"`` (lr finder on the adversarial
    loss); ``eval_every`` = 0 evaluates the test set only at the end.
    """

    dataset: str = _opt(
        "digits", f"the data to train on: {', '.join(DATASET_NAMES)}, or module:factory (your "
        "function that returns the data)",
        type=name_or_factory(DATASET_NAMES),
    )  # fmt: skip
    data_dir: str | None = _opt(
        None, "where the data lie: CIFAR's python batches or images, an image folder, or a "
        ".tar.gz of either (needed by folder, and by cifar10/100 without --download; passed "
        "to a module:factory as data_dir)",
    )  # fmt: skip
    download: bool = _opt(
        False, "download CIFAR into --data-dir when it is not there", action="store_true"
    )
    model: str = _opt(
        "cnn", f"the network: {', '.join(MODEL_NAMES)}, or module:factory (your function "
        "that returns a torch.nn.Module)",
        type=name_or_factory(MODEL_NAMES),
    )  # fmt: skip
    method: str = _opt(
        "free", "how each minibatch's adversarial examples are made (the list below)",
        choices=METHOD_NAMES,
    )  # fmt: skip
    eps: float = _opt(
        8 / 255, "the attack radius: how far an attack may move each pixel (pixels span [0, 1])",
        type=parse_eps, shown="8/255",
    )  # fmt: skip
    replays: int | None = _opt(
        None, "Free AT: times each minibatch is replayed (default: 4; --method free only)",
        type=POSITIVE,
    )  # fmt: skip
    pgd_steps: int = _opt(7, "PGD steps of the pgd method", type=POSITIVE)
    policy: str = _opt(
        "accelat", "the learning-rate schedule (the list below)", choices=POLICY_NAMES
    )
    policy_config: dict[str, Any] | None = _opt(
        None, "JSON file with an accelat_core policy config", flag=False
    )
    lr_max: float | str = _opt(
        "auto", "the peak learning rate, or 'auto': find it with an lr range test first",
        type=parse_lr_max,
    )  # fmt: skip
    optimizer: str | None = _opt(
        None, "the optimizer (default: the policy's own; SGD for the lr schedules)",
        choices=OPTIMIZER_NAMES,
    )  # fmt: skip
    ema_epochs: float = _opt(
        2.0,
        "evaluate an average of the weights over about this many epochs (0: no averaging)",
        type=float,
    )
    ema_warmup: bool = _opt(
        True,
        "let the weight average start short and grow to --ema-epochs (timm's warmup)",
        action=argparse.BooleanOptionalAction,
    )
    epochs: int = _opt(
        10, "the training budget: an epoch is one pass of gradient work over the training set "
        "(Free AT: a 1/replays share of its minibatches, each replayed)", type=POSITIVE,
    )  # fmt: skip
    batch_size: int = _opt(128, "images per minibatch", type=POSITIVE)
    train_size: int | None = _opt(
        None, "train on this many images (default: all not held out)", type=POSITIVE
    )
    val_size: int | None = _opt(
        None,
        "images held out of the training set for validation (default: 200 for digits, "
        "1000 for CIFAR, a tenth otherwise)",
        type=POSITIVE,
    )
    seed: int = _opt(
        0, f"the seed of the data order, the initial weights and the attacks, 0 to {MAX_SEED:,}",
        type=SEED,
    )  # fmt: skip
    device: str = _opt("auto", "where to train: auto (CUDA if available), cpu, cuda or cuda:N")
    out: str = _opt("runs/run", "the run's folder")
    monitor: str = _opt(
        "train_adv_acc", "metric accelat and plateau read (train_adv_acc costs no passes)",
        choices=MONITOR_NAMES,
    )  # fmt: skip
    monitor_every: int | None = _opt(
        None, "measure val_acc and robust_val_acc every N epochs and at the last (0: the "
        "last only; default: every epoch when the policy reads one of them, else the last only)",
        type=NONNEGATIVE,
    )  # fmt: skip
    monitor_steps: int = _opt(5, "PGD steps of the per-epoch monitor", type=POSITIVE)
    monitor_size: int = _opt(500, "validation images the monitor attacks", type=POSITIVE)
    eval_every: int = _opt(0, "test evaluation every N epochs (0: at the end)", type=NONNEGATIVE)
    attacks: tuple[str, ...] = _opt(
        ("linfpgd",), "comma list of the test evaluation's attacks (the list below)",
        type=names(ATTACK_NAMES, ATTACK_ALIASES), shown="linfpgd",
    )  # fmt: skip
    eval_steps: int = _opt(20, "steps of the test attacks", type=POSITIVE)
    eval_size: int | None = _opt(
        None, "evaluate on this many test images, a fixed random subset (default: all)",
        type=POSITIVE,
    )  # fmt: skip
    amp: str | None = _opt(
        None, "train in this mixed precision on CUDA (default: float32; ignored on CPU)",
        choices=AMP_NAMES,
    )  # fmt: skip
    compile: bool = _opt(False, "compile the network with torch.compile", action="store_true")
    momentum: float = _opt(0.9, "SGD momentum", type=float)
    weight_decay: float = _opt(5e-4, "SGD weight decay", type=float)
    nesterov: bool = _opt(False, "use Nesterov momentum in SGD", action="store_true")
    co_check: bool = _opt(
        False, "fgsm-rs: stop when catastrophic overfitting sets in", action="store_true"
    )
    lr_find_steps: int | None = _opt(
        None, "batches of the lr range test (default: one per training batch, at least 20 "
        "and at most 100)",
        type=int_at_least(5),
    )  # fmt: skip
    window: int | None = _opt(
        None, "AccelAT: the epochs over which the monitor must gain --min-gain (and plateau's "
        "patience; default: a tenth of --epochs, at least 1 and at most 2)", type=POSITIVE,
    )  # fmt: skip
    accelat_z: float = _opt(
        1.0, "AccelAT: standard errors of the gain added to min_gain (0: the paper's rule)",
        type=float,
    )  # fmt: skip
    accelat_factor: float = _opt(
        0.5, "AccelAT: the lr is multiplied by this at a cut, in (0, 1)", type=float
    )
    min_gain: float = _opt(
        0.005, "AccelAT and plateau: the gain in the monitored accuracy a window must make, "
        "or the lr is cut", type=float,
    )  # fmt: skip
    lr_min: float | str = _opt(
        "lr_max/8",
        "AccelAT and plateau: the lowest lr a cut may reach, a value or lr_max/N",
        type=parse_lr_min,
    )
    stop_patience: int = _opt(
        2, "AccelAT: stop after this many no-gain decisions at lr_min (0: never)",
        type=NONNEGATIVE,
    )  # fmt: skip
    #: The lr finder's result when a caller (``accelat compare``) ran it for this run.
    lr_find: dict[str, Any] | None = _opt(None, "", flag=False)

    def __post_init__(self) -> None:
        try:
            self.validate()
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def validate(self) -> None:
        """Raise ``ValueError`` (or ``TypeError``) naming the field, its value and the allowed
        values. Runs once, when the config is made (a TrainConfig is frozen)."""
        for name, allowed in _CHOICES.items():
            choice(name, getattr(self, name), allowed)
        for name, allowed in _CHOICES_OR_FACTORY.items():
            value = getattr(self, name)
            named = isinstance(value, str) and value in (*allowed, GIVEN)
            if not named and not is_factory_name(value):
                raise ValueError(
                    f"{name} must be one of {', '.join(map(repr, allowed))} or "
                    f"{FACTORY_SYNTAX}, got {value!r}"
                )
        for name in ("amp", "optimizer"):
            if getattr(self, name) is not None:
                choice(name, getattr(self, name), _CHOICES_OPTIONAL[name])
        if not self.attacks or any(canonical_attack(a) not in ATTACK_NAMES for a in self.attacks):
            raise ValueError(
                f"attacks must name some of {', '.join(ATTACK_NAMES)}, got {self.attacks!r}"
            )
        if self.policy_config is None:
            choice("policy", self.policy, POLICY_NAMES)
        else:
            check_policy_config(self.policy_config)
        for name, (lo, hi, lo_open, hi_open) in _REALS.items():
            real(name, getattr(self, name), lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)
        if self.lr_max != "auto":
            real("lr_max", self.lr_max, lo=0.0, hi=MAX_LR, lo_open=True)
        if not isinstance(self.lr_min, str):
            real("lr_min", self.lr_min, lo=0.0, hi=MAX_LR, lo_open=True)
        self._validate_counts()
        if not isinstance(self.out, str) or not self.out.strip():
            raise ValueError(f"out must name a run directory, got {self.out!r}")
        if self.replays is not None and self.method != "free":
            raise ValueError(
                f"replays applies only to method 'free', got replays={self.replays!r} "
                f"with method {self.method!r}"
            )
        if self.co_check and self.method != "fgsm-rs":
            raise ValueError(f"co_check applies only to method 'fgsm-rs', got {self.method!r}")
        reads_validation = self.reads_metric and self.monitor != "train_adv_acc"
        if self.monitor_every not in (None, 1) and reads_validation:
            raise ValueError(
                f"monitor_every must be 1 when the policy reads {self.monitor} every "
                f"epoch, got {self.monitor_every!r}"
            )
        check_data_dir(self.dataset, self.data_dir)
        check_device(self.device)

    def _validate_counts(self) -> None:
        integer("seed", self.seed, lo=0, hi=MAX_SEED)
        for name, lo in _COUNTS.items():
            integer(name, getattr(self, name), lo=lo)
        for name, lo in _OPTIONAL_COUNTS.items():
            if getattr(self, name) is not None:
                integer(name, getattr(self, name), lo=lo)

    @property
    def reads_metric(self) -> bool:
        """Does the run's policy step on the monitored metric (once per epoch)?"""
        if self.policy_config is not None:
            return bool(from_config(self.policy_config).needs_metric)
        return CATALOGUE[self.policy].reads_metric

    @property
    def validation_every(self) -> int:
        """``monitor_every`` resolved: every epoch when a metric-driven policy reads a
        validation metric, else 0 (the last epoch only), unless set."""
        if self.monitor_every is not None:
            return self.monitor_every
        return 1 if self.reads_metric and self.monitor != "train_adv_acc" else 0

    @property
    def num_replays(self) -> int:
        return (4 if self.replays is None else self.replays) if self.method == "free" else 1

    def to_json(self) -> dict[str, Any]:
        """The config as ``config.json`` holds it (Free AT's replays spelt out)."""
        d = dataclasses.asdict(self)
        d["attacks"] = list(self.attacks)
        d["replays"] = self.num_replays if self.method == "free" else None
        return d


_CHOICES = {"method": METHOD_NAMES, "monitor": MONITOR_NAMES}
#: Fields that take one of their names or a user's ``module:factory``.
_CHOICES_OR_FACTORY = {"dataset": DATASET_NAMES, "model": MODEL_NAMES}
_CHOICES_OPTIONAL = {"amp": AMP_NAMES, "optimizer": OPTIMIZER_NAMES}
#: name -> (lo, hi, lo_open, hi_open)
_REALS: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "eps": (0.0, 1.0, True, False),
    "momentum": (0.0, 1.0, False, True),
    "weight_decay": (0.0, 1.0, False, False),
    "accelat_z": (None, None, False, False),
    "accelat_factor": (0.0, 1.0, True, True),
    "min_gain": (None, None, False, False),
    "ema_epochs": (0.0, None, False, False),
}
_COUNTS = {
    "epochs": 1, "batch_size": 1, "pgd_steps": 1, "monitor_steps": 1, "monitor_size": 1,
    "eval_every": 0, "eval_steps": 1, "stop_patience": 0,
}  # fmt: skip
_OPTIONAL_COUNTS = {
    "replays": 1, "train_size": 1, "val_size": 1, "eval_size": 1, "window": 1,
    "lr_find_steps": 5, "monitor_every": 0,
}  # fmt: skip


def check_data_dir(dataset: str, data_dir: str | None) -> None:
    """Raise ``ValueError`` naming ``data_dir`` when ``dataset`` does not read one (digits)
    or needs one (folder). ``accelat train`` and ``accelat eval`` share it."""
    if dataset == "digits" and data_dir is not None:
        raise ValueError(
            "data_dir applies to cifar10 and cifar100, folder and module:factory datasets "
            f"(digits ships with scikit-learn), got data_dir={data_dir!r} with dataset 'digits'"
        )
    if dataset == "folder" and data_dir is None:
        raise ValueError(
            "dataset 'folder' needs data_dir: a directory holding train/<class>/* and "
            "test/<class>/* images, or a .tar.gz of one"
        )


def check_device(device: object) -> None:
    """Raise ``ValueError`` naming ``device`` unless it is auto, cpu, cuda or cuda:N."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(device)):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")


def check_policy_config(config: Any) -> None:
    """Raise ``ValueError`` naming the config when ``from_config`` refuses it."""
    if not isinstance(config, dict):
        raise ValueError(f"policy_config must be a JSON object, got {config!r:.100}")
    try:
        from_config(config)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"invalid policy_config {json.dumps(config)[:200]}: {exc}") from None


# Fields that may differ between a run and its resumption.
RESUME_FREE = frozenset(
    {"device", "eval_every", "lr_max", "lr_find", "attacks", "eval_steps", "eval_size", "out"}
)


def check_resume_config(cfg: TrainConfig, saved: dict[str, Any], run_dir: Path) -> None:
    """Raise ``ValueError`` listing every field in which ``cfg`` differs from the saved run."""
    current = cfg.to_json()
    diffs = [
        f"{k}: saved {saved.get(k)!r}, given {v!r}"
        for k, v in current.items()
        if k not in RESUME_FREE and saved.get(k) != v
    ]
    if cfg.lr_max != "auto" and saved.get("lr_max") != cfg.lr_max:
        diffs.append(f"lr_max: saved {saved.get('lr_max')!r}, given {cfg.lr_max!r}")
    if diffs:
        raise ValueError(
            f"--resume: the flags differ from the run in {run_dir}: " + "; ".join(diffs)
        )
