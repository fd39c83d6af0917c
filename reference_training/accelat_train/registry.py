"""What the trainer offers by name: one record per training method, evaluation attack,
dataset, network, logger and optimizer (the policies' records are
:data:`accelat_train.catalogue.CATALOGUE`'s).

A record holds everything the rest of the trainer needs to know about one name: its help
line (``accelat --help``), the optional packages it needs (:mod:`accelat_train.extras`), the
config fields only it reads and what they must be, and how it is built: its code named as
``"module:attribute"``, imported on first use, so that this module, and with it ``--help``,
needs no torch. A user's own record may give the object itself instead.

The command line, the config's checks, the lr finder, the builders and the reports read the
records; nothing else keeps a list of names. Adding a method (or an attack, a dataset, ...)
is its code in its own module and one record: a built-in one below, a user's own with
:meth:`Registry.register` before the run (``accelat_train.cli.main(argv)`` then offers it
too). What each record's builder is called with is said by its class.

>>> METHODS["free"].help.split(":")[0], METHODS["free"].replays, ATTACKS["apgd-ce"].needs
('Free AT (Shafahi et al. 2019)', 4, ('art',))
>>> ATTACKS.canonical("pgd"), tuple(LOGGERS)
('linfpgd', ('csv', 'tensorboard', 'wandb'))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from accelat_train.factory import is_factory_name, resolve

#: Where a record's code is: ``"module:attribute"`` (imported on first use), or the object.
Builder = str | Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class Entry:
    """What every record says: its ``name`` (and other ``aliases`` it answers to), its
    one-line ``help``, the optional packages it ``needs`` (import names of
    :data:`accelat_train.extras.EXTRAS`) and where its code is (``build``)."""

    name: str
    help: str
    build: Builder
    needs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def load(self) -> Any:
        """The record's code: ``build`` imported when it is a ``"module:attribute"`` name."""
        if isinstance(self.build, str):
            return resolve(self.name, self.build, is_callable=False)
        return self.build


#: The lr range test's attacks: the surrogate of a method's adversarial loss.
FINDER_ATTACKS = ("fgsm-rs", "pgd", "clean")


@dataclass(frozen=True, kw_only=True)
class MethodEntry(Entry):
    """A training method (``--method``).

    ``build(eps, *, pgd_steps, amp, scaler, generator)`` (and ``replays=`` for one that
    replays) returns its :class:`~accelat_train.adversarial.methods.Method`.
    ``finder_attack`` is the attack of the lr range test on its loss, one of
    :data:`FINDER_ATTACKS` (Free AT's replayed perturbation has no per-batch form: it uses
    FGSM-RS, the one-step attack of the same strength). ``knobs`` are the config fields only
    this method reads: the config refuses them set with another method. A method whose knobs
    hold ``"replays"`` replays each minibatch (Free AT): ``replays`` is what one minibatch
    costs by default, its weight updates (a gradient pass per image each), so that an
    epoch-equivalent is a ``1/replays`` share of the minibatches; ``--replays`` changes it.
    """

    finder_attack: str
    replays: int = 1
    knobs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.finder_attack not in FINDER_ATTACKS:
            raise ValueError(
                f"method {self.name!r}: finder_attack must be one of "
                f"{', '.join(FINDER_ATTACKS)}, got {self.finder_attack!r}"
            )
        if not isinstance(self.replays, int) or self.replays < 1:
            raise ValueError(
                f"method {self.name!r}: replays must be an int >= 1, got {self.replays!r}"
            )
        if self.replays > 1 and "replays" not in self.knobs:
            raise ValueError(f"method {self.name!r}: replays > 1 needs the knob 'replays'")

    def make(self, eps: float, *, replays: int | None = None, **kwargs: Any) -> Any:
        """The method at ``eps`` (``kwargs``: ``pgd_steps``, ``amp``, ``scaler``,
        ``generator``); ``replays`` (None: the record's) goes to a method that replays."""
        if "replays" in self.knobs:
            kwargs["replays"] = self.replays if replays is None else replays
        return self.load()(eps, **kwargs)


@dataclass(frozen=True, kw_only=True)
class AttackEntry(Entry):
    """An attack of the robust evaluation (``--attacks``, ``accelat eval``).

    ``build`` names an object with ``runner(model, x, epsilons, steps, batch_size)``, a
    context manager that gives ``run(xb, yb) -> [(x_adv, success) per eps]``, and
    ``describe(steps)``, what it runs in words
    (:class:`accelat_train.adversarial.robust.Attack`)."""


#: How a dataset takes ``--data-dir``.
DATA_DIR_RULES = ("refused", "optional", "required")


@dataclass(frozen=True, kw_only=True)
class DatasetEntry(Entry):
    """A dataset (``--dataset``).

    ``build(data_dir, *, cache_dir, download)`` reads it: ``(train, test, classes)``
    (:class:`~accelat_train.data.arrays.ArrayData` pairs of uint8 N x H x W x C images).
    ``data_dir`` says whether ``--data-dir`` is ``"refused"`` (it reads none),
    ``"optional"`` or ``"required"``; ``downloads``: ``--download`` can fetch it (then the
    command line asks for ``--data-dir`` or ``--download``). ``val_size``: the images held out
    for validation by default (None: a tenth of the training set).
    """

    data_dir: str = "optional"
    downloads: bool = False
    val_size: int | None = None

    def __post_init__(self) -> None:
        if self.data_dir not in DATA_DIR_RULES:
            raise ValueError(
                f"dataset {self.name!r}: data_dir must be one of {', '.join(DATA_DIR_RULES)}, "
                f"got {self.data_dir!r}"
            )


@dataclass(frozen=True, kw_only=True)
class ModelEntry(Entry):
    """A network (``--model``): ``build(num_classes, in_channels)`` returns it, taking
    normalised input (:class:`~accelat_train.models.NormalizedModel` wraps it)."""


@dataclass(frozen=True, kw_only=True)
class LoggerEntry(Entry):
    """A logger (``--log``): ``build(run_folder)`` returns its listener, which writes into the
    run's folder."""


@dataclass(frozen=True, kw_only=True)
class OptimizerEntry(Entry):
    """An optimizer (``--optimizer``, or a policy's own):
    ``build(params, *, lr, momentum, weight_decay, nesterov, total_updates, warmup)``.
    ``lr_free``: it finds its own step size, so it runs at lr
    :data:`~accelat_train.catalogue.LR_FREE_LR` and never reads the lr finder.
    ``budget_shaped``: what it does depends on the run's length (its ``total_updates``), so a
    resume may not give the run another budget."""

    lr_free: bool = False
    budget_shaped: bool = False


E = TypeVar("E", bound=Entry)


class Registry(Mapping[str, E], Generic[E]):
    """The records of one kind by name, in the order ``--help`` lists them; an alias finds
    its record too. It is read when used, so a record registered later is offered by the
    command line and accepted by the config like a built-in one."""

    def __init__(self, kind: str, entry_type: type[E], entries: Iterable[E] = ()) -> None:
        self.kind, self.entry_type = kind, entry_type
        self._entries: dict[str, E] = {}
        self._aliases: dict[str, str] = {}
        for entry in entries:
            self.register(entry)

    def register(self, entry: E) -> E:
        """Add ``entry``; a name or alias already taken, or one in ``module:factory`` form
        (which names a user's factory), is a ``ValueError``. Returns ``entry``."""
        if not isinstance(entry, self.entry_type):
            raise TypeError(
                f"a {self.kind} record must be a {self.entry_type.__name__}, got {entry!r}"
            )
        for name in (entry.name, *entry.aliases):
            if not isinstance(name, str) or not name or is_factory_name(name):
                raise ValueError(f"{self.kind} names must be plain words, got {name!r}")
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[entry.name] = entry
        self._aliases.update(dict.fromkeys(entry.aliases, entry.name))
        return entry

    def unregister(self, name: str) -> E:
        """Remove the record ``name`` (and its aliases) and return it."""
        entry = self._entries.pop(self.canonical(name))
        for alias in entry.aliases:
            del self._aliases[alias]
        return entry

    def canonical(self, name: str) -> str:
        """``name``, or the name the alias ``name`` stands for (``pgd`` -> ``linfpgd``)."""
        return self._aliases.get(name, name)

    def helps(self) -> dict[str, str]:
        """Each name's help line, in order."""
        return {name: entry.help for name, entry in self._entries.items()}

    def __getitem__(self, name: str) -> E:
        return self._entries[self.canonical(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"


_METHODS = "accelat_train.adversarial.methods"
#: Adversarial training methods (``--method``), in ``--help`` order.
METHODS: Registry[MethodEntry] = Registry("method", MethodEntry, (
    MethodEntry(name="free", help="Free AT (Shafahi et al. 2019): each minibatch replayed "
                "--replays times", build=f"{_METHODS}:FreeMethod", finder_attack="fgsm-rs",
                replays=4, knobs=("replays",)),
    MethodEntry(name="fgsm-rs", help="FGSM from a random start (Wong et al. 2020), 2 passes an "
                "image", build=f"{_METHODS}:FgsmRsMethod", finder_attack="fgsm-rs",
                knobs=("co_check",)),
    MethodEntry(name="pgd", help="PGD-k (Madry et al. 2018), k = --pgd-steps, k + 1 passes an "
                "image", build=f"{_METHODS}:PgdMethod", finder_attack="pgd"),
    MethodEntry(name="foolbox-pgd", help="each minibatch attacked by Foolbox's LinfPGD",
                build=f"{_METHODS}:FoolboxPgdMethod", finder_attack="pgd", needs=("foolbox",)),
    MethodEntry(name="foolbox-fgsm", help="each minibatch attacked by Foolbox's FGSM",
                build=f"{_METHODS}:FoolboxFgsmMethod", finder_attack="pgd", needs=("foolbox",)),
    MethodEntry(name="foolbox-deepfool", help="each minibatch attacked by Foolbox's L-inf "
                "DeepFool", build=f"{_METHODS}:FoolboxDeepFoolMethod", finder_attack="pgd",
                needs=("foolbox",)),
    MethodEntry(name="natural", help="no attack: clean training",
                build=f"{_METHODS}:NaturalMethod", finder_attack="clean"),
))  # fmt: skip

_FOOLBOX, _ART = (
    "accelat_train.adversarial.foolbox_attacks",
    "accelat_train.adversarial.art_attacks",
)
#: Attacks of the test evaluation (``--attacks``).
ATTACKS: Registry[AttackEntry] = Registry("attack", AttackEntry, (
    AttackEntry(name="linfpgd", help="Foolbox L-inf PGD, random start, 2.5 eps / steps a step "
                "(alias: pgd)", build=f"{_FOOLBOX}:LINF_PGD", needs=("foolbox",),
                aliases=("pgd",)),
    AttackEntry(name="fgsm", help="Foolbox FGSM: one signed-gradient step of eps",
                build=f"{_FOOLBOX}:FGSM", needs=("foolbox",)),
    AttackEntry(name="deepfool", help="Foolbox L-inf DeepFool", build=f"{_FOOLBOX}:DEEPFOOL",
                needs=("foolbox",)),
    AttackEntry(name="apgd-ce", help="ART's APGD on the cross-entropy [eval extra]",
                build=f"{_ART}:APGD_CE", needs=("art",)),
    AttackEntry(name="apgd-dlr", help="ART's targeted APGD on the DLR loss (APGD-T) [eval extra]",
                build=f"{_ART}:APGD_DLR", needs=("art",)),
    # ``autoattack`` was this suite's name before it said that it is ART's, without FAB-T.
    AttackEntry(name="autoattack-art", help="ART's APGD-CE, APGD-T, Square; no FAB-T, so not the "
                "original AutoAttack (alias: autoattack) [eval extra]",
                build=f"{_ART}:AUTOATTACK", needs=("art",), aliases=("autoattack",)),
))  # fmt: skip

#: Built-in datasets (``--dataset``; a user's ``module:factory`` besides).
DATASETS: Registry[DatasetEntry] = Registry("dataset", DatasetEntry, (
    DatasetEntry(name="digits", help="scikit-learn's 8x8 grey digits, 10 classes (no download)",
                 build="accelat_train.data.digits:read_digits", needs=("sklearn",),
                 data_dir="refused", val_size=200),
    DatasetEntry(name="cifar10", help="CIFAR-10 from --data-dir (python batches, image folders "
                 "or archives)", build="accelat_train.data.cifar:read_cifar10",
                 downloads=True, val_size=1000),
    DatasetEntry(name="cifar100", help="CIFAR-100 from --data-dir, as cifar10",
                 build="accelat_train.data.cifar:read_cifar100", downloads=True, val_size=1000),
    DatasetEntry(name="folder", help="an image folder train/<class>/*, test/<class>/* (or its "
                 ".tar.gz) in --data-dir", build="accelat_train.data.folder:read_folder",
                 needs=("PIL",), data_dir="required"),
))  # fmt: skip

_MODELS = "accelat_train.models"
#: Built-in networks (``--model``; a user's ``module:factory`` besides).
MODELS: Registry[ModelEntry] = Registry("model", ModelEntry, (
    ModelEntry(name="cnn", help="a small VGG-style CNN, 0.14 M parameters: digits, quick CPU "
               "runs", build=f"{_MODELS}.cnn:SmallCNN"),
    ModelEntry(name="resnet20", help="ResNet-20 (He et al. 2016), 0.27 M parameters",
               build=f"{_MODELS}.resnet:resnet20"),
    ModelEntry(name="preact18", help="PreAct ResNet-18, the usual fast-AT network, 11.2 M "
               "parameters", build=f"{_MODELS}.preact:preact_resnet18"),
    ModelEntry(name="mobilenetv2", help="MobileNetV2 (Sandler et al. 2018), CIFAR variant, "
               "2.2 M parameters", build=f"{_MODELS}.mobilenetv2:MobileNetV2"),
    ModelEntry(name="resnet50", help="ResNet-50 with the CIFAR stem, 23.5 M parameters",
               build=f"{_MODELS}.resnet:resnet50"),
    ModelEntry(name="wrn28-10", help="WideResNet-28-10 (Madry et al., TRADES, RobustBench), "
               "36.5 M parameters", build=f"{_MODELS}.wideresnet:wrn28_10"),
    ModelEntry(name="wrn34-10", help="WideResNet-34-10, 46.2 M parameters",
               build=f"{_MODELS}.wideresnet:wrn34_10"),
))  # fmt: skip

_LOGGERS = "accelat_train.callbacks.loggers"
#: Loggers of ``accelat train --log``.
LOGGERS: Registry[LoggerEntry] = Registry("logger", LoggerEntry, (
    LoggerEntry(name="csv", help="RUN/metrics.csv, one row per epoch",
                build=f"{_LOGGERS}:CSVLogger.in_run"),
    LoggerEntry(name="tensorboard", help="TensorBoard event files in RUN/tensorboard/",
                build=f"{_LOGGERS}:TensorBoardLogger.in_run", needs=("tensorboard",)),
    LoggerEntry(name="wandb", help="a Weights & Biases run in RUN/wandb/",
                build=f"{_LOGGERS}:WandbLogger.in_run", needs=("wandb",)),
))  # fmt: skip

_OPTIMIZERS = "accelat_train.training.optimizers"
#: Optimizers (``--optimizer``; by default the policy's own).
OPTIMIZERS: Registry[OptimizerEntry] = Registry("optimizer", OptimizerEntry, (
    OptimizerEntry(name="sgd", help="SGD with --momentum, --weight-decay and --nesterov",
                   build=f"{_OPTIMIZERS}:sgd"),
    OptimizerEntry(name="schedulefree", help="schedule-free SGD (Defazio et al. 2024)",
                   build=f"{_OPTIMIZERS}:schedule_free", needs=("schedulefree",), lr_free=True,
                   budget_shaped=True),
    OptimizerEntry(name="prodigy", help="Prodigy (Mishchenko and Defazio 2024)",
                   build=f"{_OPTIMIZERS}:prodigy", needs=("prodigyopt",), lr_free=True),
))  # fmt: skip

__all__ = [
    "ATTACKS",
    "DATASETS",
    "LOGGERS",
    "METHODS",
    "MODELS",
    "OPTIMIZERS",
    "AttackEntry",
    "DatasetEntry",
    "Entry",
    "LoggerEntry",
    "MethodEntry",
    "ModelEntry",
    "OptimizerEntry",
    "Registry",
]
