"""``TrainConfig``: everything that defines a run, its validation, and the flags it makes.

Each field carries its command-line help (and, where the flag is not a plain ``int``/``str``,
its parser) in ``dataclasses.field(metadata=...)``, so :mod:`accelat_train.flags` derives
every ``accelat train`` flag, its type, default and help from this one place: a new option is
a new field here. The names a field takes (methods, datasets, attacks, ...) are their
records' (:mod:`accelat_train.registry`), read when a config is checked. A config also
answers the questions asked of it: whether a saved run is the run it asks for
(:meth:`TrainConfig.differences`), what the lr finder's result depends on
(:meth:`TrainConfig.finder_setting`), the rule's knobs (:attr:`TrainConfig.rule`). The
module imports no torch (``accelat --help`` reads it).

>>> cfg = TrainConfig(dataset="digits", method="free", eps=0.1, epochs=2, lr_max=0.05)
>>> cfg.validate(); cfg.num_replays
4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import reprlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from accelat_core import from_config
from accelat_core._validate import choice, integer, real
from accelat_core.policies.accelat import ANYTIME
from accelat_core.policies.anneal import ANNEAL_SHAPES
from accelat_train.catalogue import CATALOGUE, LR_FREE_LR, POLICY_NAMES, Rule, default_window
from accelat_train.deprecations import moved
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
    positive_or_none,
)
from accelat_train.registry import ATTACKS, DATASETS, LOGGERS, METHODS, MODELS, OPTIMIZERS

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
    whatever the method); ``replays`` only applies to a method that replays its minibatches
    (``free``; None there means the method's own, 4); ``lr_max`` is a float or ``"auto"``
    (lr finder on the adversarial loss); ``eval_every`` = 0 evaluates the test set only at
    the end. The names a field takes (methods, datasets, ...) are their records'
    (:mod:`accelat_train.registry`).
    """

    dataset: str = _opt(
        "digits", f"the data to train on: {', '.join(DATASETS)}, or module:factory (your "
        "function that returns the data)",
        type=name_or_factory(DATASETS),
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
        "cnn", f"the network: {', '.join(MODELS)}, or module:factory (your function "
        "that returns a torch.nn.Module)",
        type=name_or_factory(MODELS),
    )  # fmt: skip
    method: str = _opt(
        "free", "how each minibatch's adversarial examples are made (the list below)",
        choices=METHODS,
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
        choices=OPTIMIZERS,
    )  # fmt: skip
    ema_epochs: float = _opt(
        2.0,
        "evaluate an average of the weights over about this many epochs (0: no averaging)",
        type=float,
    )
    schedulefree_warmup: float = _opt(
        0.05, "schedule-free SGD: its lr warm-up, as a fraction of the run's updates", type=float
    )
    bn_refresh: int = _opt(
        50, "schedule-free SGD: training batches whose forward passes recompute BatchNorm "
        "statistics at its averaged weights before each evaluation (0: none)", type=NONNEGATIVE,
    )  # fmt: skip
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
        "train_adv_acc", "metric accelat and plateau read: train_adv_acc (training's own, costs "
        "no passes), or the evaluated (averaged) model's val_acc or robust_val_acc on "
        "--monitor-size validation images (their passes are charged)",
        choices=MONITOR_NAMES,
    )  # fmt: skip
    monitor_every: int = _opt(
        1, "measure val_acc and robust_val_acc on the validation images every N epochs and "
        "at the last (0: the last only), for best.pt and the log",
        type=NONNEGATIVE,
    )  # fmt: skip
    monitor_steps: int = _opt(5, "PGD steps of the per-epoch monitor", type=POSITIVE)
    monitor_size: int = _opt(500, "validation images the monitor attacks", type=POSITIVE)
    eval_every: int = _opt(0, "test evaluation every N epochs (0: at the end)", type=NONNEGATIVE)
    attacks: tuple[str, ...] = _opt(
        ("linfpgd",), "comma list of the test evaluation's attacks (the list below)",
        type=names(ATTACKS, ATTACKS.canonical), shown="linfpgd",
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
    # The rule's defaults are the core's AccelAT.anytime rule (ANYTIME), their one source.
    accelat_z: float = _opt(
        ANYTIME.z, "AccelAT: standard errors of the gain added to min_gain (0: the paper's rule)",
        type=float,
    )  # fmt: skip
    accelat_factor: float = _opt(
        ANYTIME.factor, "AccelAT: the lr is multiplied by this at a cut, in (0, 1)", type=float
    )
    min_gain: float = _opt(
        ANYTIME.min_gain, "AccelAT and plateau: the gain in the monitored accuracy a window must "
        "make, or the lr is cut", type=float,
    )  # fmt: skip
    lr_min: float | str = _opt(
        f"lr_max/{round(1 / ANYTIME.min_lr_ratio)}",
        "AccelAT and plateau: the lowest lr a cut may reach, a value or lr_max/N",
        type=parse_lr_min,
    )
    stop_patience: int = _opt(
        ANYTIME.stop_patience or 0, "AccelAT: stop (or anneal) after this many no-gain "
        "decisions at lr_min (0: never stop, and so never anneal)", type=NONNEGATIVE,
    )  # fmt: skip
    anneal: float | None = _opt(
        ANYTIME.anneal, "AccelAT: where it would stop, anneal the lr to 0 over this fraction of "
        "the epochs so far, then stop (also in time to end by --epochs); none: stop at once",
        type=positive_or_none,
    )  # fmt: skip
    anneal_shape: str = _opt(
        ANYTIME.anneal_shape, "AccelAT: the anneal's shape (sqrt: 1 - sqrt(x), linear, cosine)",
        choices=ANNEAL_SHAPES,
    )  # fmt: skip
    early_stop: int = _opt(
        0, "stop when --early-stop-monitor has not improved for this many validated epochs, "
        "and evaluate best.pt's weights (Keras/Lightning EarlyStopping's patience; 0: off; "
        "works with every policy)", type=NONNEGATIVE, metavar="PATIENCE",
    )  # fmt: skip
    early_stop_min_delta: float = _opt(
        0.0, "early stopping: the least rise of the metric that counts as an improvement",
        type=float, metavar="DELTA",
    )  # fmt: skip
    early_stop_monitor: str = _opt(
        "robust_val_acc", "early stopping: the accuracy it watches", choices=MONITOR_NAMES
    )
    log: tuple[str, ...] = _opt(
        (), f"loggers the run also writes to: {', '.join(LOGGERS)}", flag=False
    )
    #: What the lr finder found for ``lr_max="auto"``: its record (``lr_max``, ``lr_min``,
    #: what it cost, the ``setting`` it was found for), reused for the same setting.
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
            choice(name, getattr(self, name), tuple(allowed))
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
                choice(name, getattr(self, name), tuple(_CHOICES_OPTIONAL[name]))
        if not self.attacks or any(a not in ATTACKS for a in self.attacks):
            raise ValueError(
                f"attacks must name some of {', '.join(ATTACKS)}, got {self.attacks!r}"
            )
        self._validate_records()
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
            if not isinstance(self.lr_max, str) and self.lr_min > self.lr_max:
                raise ValueError(
                    f"lr_min {self.lr_min!r} is above lr_max {self.lr_max!r}: the lowest lr "
                    "a cut may reach must be at most the peak lr"
                )
        if self.anneal is not None:
            real("anneal", self.anneal, lo=0.0, hi=100.0, lo_open=True)
        self._validate_counts()
        if not isinstance(self.out, str) or not self.out.strip():
            raise ValueError(f"out must name a run directory, got {self.out!r}")
        self._validate_knobs()
        reads_validation = self.reads_metric and self.monitor != "train_adv_acc"
        if self.monitor_every != 1 and reads_validation:
            raise ValueError(
                f"monitor_every must be 1 when the policy reads {self.monitor} every "
                f"epoch, got {self.monitor_every!r}"
            )
        measured_at_end = self.early_stop_monitor != "train_adv_acc" and not self.monitor_every
        if self.early_stop and measured_at_end:
            raise ValueError(
                f"early_stop watches {self.early_stop_monitor}, which monitor_every=0 measures "
                "only at the last epoch; set monitor_every >= 1 or early_stop=0"
            )
        check_data_dir(self.dataset, self.data_dir)
        check_device(self.device)

    def _validate_records(self) -> None:
        """``log`` (logger names, each once) and ``lr_find`` (a finder record)."""
        if not isinstance(self.log, (tuple, list)) or any(
            name not in LOGGERS or list(self.log).count(name) > 1 for name in self.log
        ):
            raise ValueError(
                f"log must name some of {', '.join(LOGGERS)}, each once, got {self.log!r}"
            )
        if self.lr_find is not None and not _is_finding(self.lr_find):
            raise ValueError(
                "lr_find must be an lr finder record (a JSON object with a positive lr_max), "
                f"got {reprlib.repr(self.lr_find)}"
            )

    def _validate_knobs(self) -> None:
        """A method's own fields (its record's ``knobs``: ``replays``, ``co_check``) are left
        at their defaults with any other method."""
        own = METHODS[self.method].knobs
        for knob in dict.fromkeys(k for entry in METHODS.values() for k in entry.knobs):
            value = getattr(self, knob)
            if knob not in own and value != _DEFAULTS[knob]:
                owners = " or ".join(repr(n) for n, e in METHODS.items() if knob in e.knobs)
                raise ValueError(
                    f"{knob} applies only to method {owners}, got {knob}={value!r} "
                    f"with method {self.method!r}"
                )

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
    def optimizer_name(self) -> str:
        """The optimizer the run trains with: ``optimizer``, else its policy's, else SGD."""
        return resolved_optimizer(self.optimizer, self.policy, self.policy_config)

    @property
    def uses_finder(self) -> bool:
        """Does the run start from the lr finder's suggestion (``lr_max="auto"`` with an
        optimizer that reads an lr)?"""
        return self.lr_max == "auto" and not OPTIMIZERS[self.optimizer_name].lr_free

    @property
    def num_replays(self) -> int:
        """Weight updates per minibatch: ``replays`` (None: the method's own) for a method
        that replays its minibatches, 1 for any other."""
        entry = METHODS[self.method]
        if "replays" not in entry.knobs:
            return 1
        return entry.replays if self.replays is None else self.replays

    @property
    def rule(self) -> Rule:
        """The knobs of the metric-driven rules (AccelAT, plateau) this config sets
        (:class:`~accelat_train.catalogue.Rule`; ``lr_min`` as given, ``lr_max/N`` too)."""
        return Rule(
            window=self.window, min_gain=self.min_gain, factor=self.accelat_factor,
            lr_min=self.lr_min, z=self.accelat_z, stop_patience=self.stop_patience,
            anneal=self.anneal, anneal_shape=self.anneal_shape,
        )  # fmt: skip

    # -- is a saved run the run this config asks for? --------------------------------------
    def differences(
        self, saved: Mapping[str, Any], *, evaluated: bool = False, new_budget: bool = False
    ) -> list[str]:
        """Every way in which this config asks for another run than the one ``saved`` (a run's
        ``config.json``) holds, as ``"field: saved X, requested Y"``; empty when it is that run.

        The one check of "may this saved run stand for this config", used by a resume
        (``train(resume=True)``), by ``accelat compare`` before it reuses or resumes a run, and
        so by the acceleration study. :data:`NOT_THE_RUN` never counts; :data:`EVALUATION`
        counts only when the saved run's evaluation (its report) is to be reused
        (``evaluated``); ``epochs`` does not count with ``new_budget`` (a run given a new
        budget, checked elsewhere). ``lr_max`` is compared as asked (``"auto"``, or a number)
        and, where both sides know it, as the lr it gave (the finder's record); ``window`` as
        the window it gives (None: :func:`~accelat_train.catalogue.default_window` of the
        budget).

        >>> TrainConfig(eps=0.1).differences(TrainConfig(eps=0.05).to_json())
        ['eps: saved 0.05, requested 0.1']
        """
        return config_differences(self.to_json(), saved, evaluated=evaluated, new_budget=new_budget)

    def finder_setting(self) -> dict[str, Any]:
        """What the lr finder's result depends on (:data:`FINDER_FIELDS`), as ``config.json``
        writes it: the record of a range test keeps it (``lr_find["setting"]``)."""
        resolved = self.to_json()
        return {name: resolved[name] for name in FINDER_FIELDS}

    def reused_lr_max(self) -> float | None:
        """The lr_max this config's finder record (``lr_find``) holds when it was found for
        this config's own setting (:meth:`finder_setting`) and the config asks for
        ``"auto"``; else None."""
        found = self.lr_find
        if self.lr_max != "auto" or found is None:
            return None
        if finding_differences(found.get("setting"), self.finder_setting()):
            return None
        return float(found["lr_max"])

    def to_json(self) -> dict[str, Any]:
        """The config as ``config.json`` holds it (the replays of a method that replays spelt
        out)."""
        d = dataclasses.asdict(self)
        d["attacks"] = list(self.attacks)
        d["log"] = list(self.log)
        d["replays"] = self.num_replays if "replays" in METHODS[self.method].knobs else None
        return d


#: Fields that take one of these names (the registries are read when a config is checked).
_CHOICES: dict[str, Collection[str]] = {
    "method": METHODS, "monitor": MONITOR_NAMES, "early_stop_monitor": MONITOR_NAMES,
    "anneal_shape": ANNEAL_SHAPES,
}  # fmt: skip
#: Fields that take one of their names or a user's ``module:factory``.
_CHOICES_OR_FACTORY: dict[str, Collection[str]] = {"dataset": DATASETS, "model": MODELS}
_CHOICES_OPTIONAL: dict[str, Collection[str]] = {"amp": AMP_NAMES, "optimizer": OPTIMIZERS}
#: name -> (lo, hi, lo_open, hi_open)
_REALS: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "eps": (0.0, 1.0, True, False),
    "momentum": (0.0, 1.0, False, True),
    "weight_decay": (0.0, 1.0, False, False),
    "accelat_z": (None, None, False, False),
    "accelat_factor": (0.0, 1.0, True, True),
    "min_gain": (None, None, False, False),
    "ema_epochs": (0.0, None, False, False),
    "schedulefree_warmup": (0.0, 1.0, False, False),
    "early_stop_min_delta": (0.0, None, False, False),
}
_COUNTS = {
    "epochs": 1, "batch_size": 1, "pgd_steps": 1, "monitor_steps": 1, "monitor_size": 1,
    "eval_every": 0, "eval_steps": 1, "stop_patience": 0, "monitor_every": 0,
    "early_stop": 0, "bn_refresh": 0,
}  # fmt: skip
_OPTIONAL_COUNTS = {
    "replays": 1, "train_size": 1, "val_size": 1, "eval_size": 1, "window": 1,
    "lr_find_steps": 5,
}  # fmt: skip


def _is_finding(record: Any) -> bool:
    lr_max = record.get("lr_max") if isinstance(record, dict) else None
    return (
        isinstance(lr_max, (int, float)) and not isinstance(lr_max, bool) and 0 < lr_max <= MAX_LR
    )


def check_data_dir(dataset: str, data_dir: str | None, *, download: bool | None = None) -> None:
    """Raise ``ValueError`` naming ``data_dir`` when ``dataset`` reads none (digits) or needs
    one (folder), as its record says (:data:`~accelat_train.registry.DATASETS`); ``accelat
    train``, ``accelat eval`` and ``load_run`` share it. The command line passes its
    ``download`` and is answered in its own words: it also asks a dataset that downloads for
    ``--data-dir`` or ``--download``; from Python, ``data_dir=None`` means the cache a
    download filled."""
    entry = DATASETS.get(dataset)  # None: a module:factory, which may take one
    if entry is None:
        return
    if entry.data_dir == "refused" and data_dir is not None:
        takers = [n for n, e in DATASETS.items() if e.data_dir != "refused"]
        raise ValueError(
            f"data_dir applies to {', '.join(takers)} and module:factory datasets, got "
            f"data_dir={data_dir!r} with dataset {dataset!r} ({entry.help})"
        )
    flags = download is not None
    if data_dir is None and entry.data_dir == "required":
        raise ValueError(
            f"--dataset {dataset} needs --data-dir: {entry.help}"
            if flags
            else f"dataset {dataset!r} needs data_dir: {entry.help}"
        )
    if data_dir is None and entry.downloads and download is False:
        raise ValueError(f"--dataset {dataset} needs --data-dir (or --download)")


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


# -- is a saved run the run a config asks for? ------------------------------------------------
#: Fields that say only where a run's files go or what machine runs it, and ``lr_find`` (what
#: the finder found, compared through the lr it gave): a saved run is the same run whatever
#: they hold.
NOT_THE_RUN = frozenset({"device", "out", "log", "lr_find"})
#: Fields only the test evaluation reads: a run whose report is not reused (a resume) may
#: take new ones.
EVALUATION = frozenset({"eval_every", "attacks", "eval_steps", "eval_size"})
#: The fields the lr range test reads: its result holds for any run that agrees on them.
FINDER_FIELDS = (
    "dataset", "data_dir", "model", "method", "eps", "replays", "pgd_steps", "batch_size",
    "train_size", "val_size", "seed", "momentum", "weight_decay", "nesterov", "lr_find_steps",
)  # fmt: skip


def config_differences(
    wanted: Mapping[str, Any],
    saved: Mapping[str, Any],
    *,
    evaluated: bool = False,
    new_budget: bool = False,
) -> list[str]:
    """Every way in which the config ``wanted`` asks for another run than the one ``saved``
    holds, both as ``config.json`` holds them (:meth:`TrainConfig.to_json`), as ``"field:
    saved X, requested Y"``; empty when it is that run (:meth:`TrainConfig.differences`).

    >>> config_differences(TrainConfig(eps=0.1).to_json(), TrainConfig(eps=0.05).to_json())
    ['eps: saved 0.05, requested 0.1']
    """
    ignored = NOT_THE_RUN | (frozenset() if evaluated else EVALUATION)
    if new_budget:
        ignored |= {"epochs"}
    mine, theirs = _asked(wanted), _asked(saved)
    diffs = [
        f"{key}: saved {_shown(theirs, key)}, requested {_shown(mine, key)}"
        for key in mine
        if key not in ignored and _setting(theirs, key) != _setting(mine, key)
    ]
    used, was = lr_used(mine), lr_used(theirs)
    both_found = mine["lr_max"] == theirs.get("lr_max") == "auto"
    if both_found and used is not None and was is not None and used != was:
        diffs.append(f"lr_max found by the lr finder: saved {was!r}, requested {used!r}")
    return diffs


def lr_used(config: Mapping[str, Any]) -> float | None:
    """The lr_max a config's run starts from, where the config says it: the number given, or
    the finder's recorded suggestion for ``"auto"`` (None when neither)."""
    lr_max, found = config.get("lr_max"), config.get("lr_find")
    if not isinstance(lr_max, str):
        return lr_max
    return found.get("lr_max") if isinstance(found, dict) else None


def finding_differences(recorded: Any, setting: Mapping[str, Any]) -> list[str]:
    """How the setting a finder record was made for (``recorded``) differs from ``setting``
    (:meth:`TrainConfig.finder_setting`), as ``"field: saved X, requested Y"``; empty when
    the record holds for it."""
    if not isinstance(recorded, dict):
        return ["it does not record the setting it was made for"]
    return [
        f"{key}: saved {recorded.get(key)!r}, requested {value!r}"
        for key, value in setting.items()
        if recorded.get(key) != value
    ]


def resolved_optimizer(optimizer: str | None, policy: str, policy_config: Any) -> str:
    """The optimizer a run trains with: ``optimizer``, else its policy's, else SGD."""
    if optimizer is not None:
        return optimizer
    entry = CATALOGUE.get(policy)
    return "sgd" if policy_config is not None or entry is None else entry.optimizer


def _asked(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with ``lr_max`` as the user asked it: a config.json written before the
    asked value was kept held the finder's suggestion (or an LR-free optimizer's own lr) in
    its place, which means ``"auto"``."""
    lr_max, found = config.get("lr_max"), config.get("lr_find")
    if isinstance(lr_max, str):
        return dict(config)
    optimizer = resolved_optimizer(
        config.get("optimizer"), str(config.get("policy")), config.get("policy_config")
    )
    was_found = isinstance(found, dict) and found.get("lr_max") == lr_max
    lr_free = optimizer in OPTIMIZERS and OPTIMIZERS[optimizer].lr_free
    if was_found or (lr_free and lr_max == LR_FREE_LR):
        return {**config, "lr_max": "auto"}
    return dict(config)


def _reads_window(config: Mapping[str, Any]) -> bool:
    entry = CATALOGUE.get(str(config.get("policy")))
    return config.get("policy_config") is None and entry is not None and entry.reads_metric


def _setting(config: Mapping[str, Any], key: str) -> Any:
    """The value of ``key`` as the run uses it (the window a ``window=None`` gives; a field
    added to TrainConfig after the run was made has its default, the behaviour before it)."""
    value = config.get(key, _DEFAULTS.get(key))
    if key == "window" and value is None and _reads_window(config):
        epochs = config.get("epochs")
        return default_window(epochs) if isinstance(epochs, int) else None
    return value


#: Every field's value for a config.json written before the field existed: its default, or,
#: where the default brought a new behaviour (AccelAT's anneal), the behaviour before it.
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)} | {"anneal": None}


def _shown(config: Mapping[str, Any], key: str) -> str:
    value, used = config.get(key), _setting(config, key)
    if key not in config:
        return f"{used!r} (no {key} in its config.json)"
    return f"{value!r}" if value == used else f"{value!r} ({used!r} for its budget)"


#: Renamed (deprecated since 0.2, gone in 0.4): the config's own methods now.
__getattr__ = moved(__name__, {
    "run_differences": ("accelat_train.config:TrainConfig.differences",
                        "TrainConfig.differences(saved)"),
    "finder_setting": ("accelat_train.config:TrainConfig.finder_setting",
                       "TrainConfig.finder_setting()"),
    "found_lr_max": ("accelat_train.config:TrainConfig.reused_lr_max",
                     "TrainConfig.reused_lr_max()"),
})  # fmt: skip
