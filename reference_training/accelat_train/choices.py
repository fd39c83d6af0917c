"""What the command line offers by name, without torch: one :class:`Choice` per training
method, attack, dataset, model, logger and optimizer, with its one-line meaning and the
optional packages it needs.

``accelat --help`` and ``--version`` read only this module, the policy catalogue and the
config (none of which imports torch), so they answer at once; the modules that do the work
(``adversarial.methods``, ``adversarial.attacks``, ``data``, ``models``,
``training.loggers``) take their names from here. Adding a method, attack, dataset, model or
logger is adding its record here and its code there.

>>> METHODS["free"].help.split(":")[0], ATTACKS["apgd-ce"].needs
('Free AT (Shafahi et al. 2019)', ('art',))
>>> canonical_attack("pgd"), LOGGER_NAMES
('linfpgd', ('csv', 'tensorboard', 'wandb'))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Choice:
    """One name the command line offers: its help line, the optional packages it needs
    (import names, see :data:`accelat_train.extras.EXTRAS`) and other names it answers to."""

    name: str
    help: str
    needs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


def _by_name(choices: Sequence[Choice]) -> dict[str, Choice]:
    return {c.name: c for c in choices}


#: Adversarial training methods (``--method``), in ``--help`` order.
METHODS = _by_name((
    Choice("free", "Free AT (Shafahi et al. 2019): each minibatch replayed --replays times"),
    Choice("fgsm-rs", "FGSM from a random start (Wong et al. 2020), 2 passes an image"),
    Choice("pgd", "PGD-k (Madry et al. 2018), k = --pgd-steps, k + 1 passes an image"),
    Choice("foolbox-pgd", "each minibatch attacked by Foolbox's LinfPGD", ("foolbox",)),
    Choice("foolbox-fgsm", "each minibatch attacked by Foolbox's FGSM", ("foolbox",)),
    Choice("foolbox-deepfool", "each minibatch attacked by Foolbox's L-inf DeepFool", ("foolbox",)),
    Choice("natural", "no attack: clean training"),
))  # fmt: skip

#: Attacks of the test evaluation (``--attacks``).
ATTACKS = _by_name((
    Choice("linfpgd", "Foolbox L-inf PGD, random start, 2.5 eps / steps a step (alias: pgd)",
           ("foolbox",), ("pgd",)),
    Choice("fgsm", "Foolbox FGSM: one signed-gradient step of eps", ("foolbox",)),
    Choice("deepfool", "Foolbox L-inf DeepFool", ("foolbox",)),
    Choice("apgd-ce", "ART's APGD on the cross-entropy [eval extra]", ("art",)),
    Choice("apgd-dlr", "ART's targeted APGD on the DLR loss (APGD-T) [eval extra]", ("art",)),
    # ``autoattack`` was this suite's name before it said that it is ART's, without FAB-T.
    Choice("autoattack-art", "ART's APGD-CE, APGD-T, Square; no FAB-T, so not the original "
           "AutoAttack (alias: autoattack) [eval extra]", ("art",), ("autoattack",)),
))  # fmt: skip

#: Built-in datasets (``--dataset``; a user's ``module:factory`` besides).
DATASETS = _by_name((
    Choice("digits", "scikit-learn's 8x8 grey digits, 10 classes (no download)", ("sklearn",)),
    Choice("cifar10", "CIFAR-10 from --data-dir (python batches, image folders or archives)"),
    Choice("cifar100", "CIFAR-100 from --data-dir, as cifar10"),
    Choice("folder", "an image folder train/<class>/*, test/<class>/* (or its .tar.gz) in "
           "--data-dir", ("PIL",)),
))  # fmt: skip

#: Built-in networks (``--model``; a user's ``module:factory`` besides).
MODELS = _by_name((
    Choice("cnn", "a small VGG-style CNN, 0.14 M parameters: digits, quick CPU runs"),
    Choice("resnet20", "ResNet-20 (He et al. 2016), 0.27 M parameters"),
    Choice("preact18", "PreAct ResNet-18, the usual fast-AT network, 11.2 M parameters"),
    Choice("mobilenetv2", "MobileNetV2 (Sandler et al. 2018), CIFAR variant, 2.2 M parameters"),
    Choice("resnet50", "ResNet-50 with the CIFAR stem, 23.5 M parameters"),
    Choice("wrn28-10", "WideResNet-28-10 (Madry et al., TRADES, RobustBench), 36.5 M parameters"),
    Choice("wrn34-10", "WideResNet-34-10, 46.2 M parameters"),
))  # fmt: skip

#: Loggers of ``accelat train --log``.
LOGGERS = _by_name((
    Choice("csv", "RUN/metrics.csv, one row per epoch"),
    Choice("tensorboard", "TensorBoard event files in RUN/tensorboard/", ("tensorboard",)),
    Choice("wandb", "a Weights & Biases run in RUN/wandb/", ("wandb",)),
))  # fmt: skip

#: Optimizers (``--optimizer``; None: the policy's own).
OPTIMIZERS = _by_name((
    Choice("sgd", "SGD with --momentum, --weight-decay and --nesterov"),
    Choice("schedulefree", "schedule-free SGD (Defazio et al. 2024)", ("schedulefree",)),
    Choice("prodigy", "Prodigy (Mishchenko and Defazio 2024)", ("prodigyopt",)),
))  # fmt: skip

METHOD_NAMES = tuple(METHODS)
METHOD_HELP = {c.name: c.help for c in METHODS.values()}
ATTACK_NAMES = tuple(ATTACKS)
ATTACK_HELP = {c.name: c.help for c in ATTACKS.values()}
ATTACK_ALIASES = {alias: c.name for c in ATTACKS.values() for alias in c.aliases}
DATASET_NAMES = tuple(DATASETS)
MODEL_NAMES = tuple(MODELS)
LOGGER_NAMES = tuple(LOGGERS)
OPTIMIZER_NAMES = tuple(OPTIMIZERS)

#: The arm ``accelat compare`` measures the others against (:data:`accelat_train.compare.BASELINE`):
#: Free AT's recipe, its step schedule without weight averaging.
BASELINE = "step:ema_epochs=0"


def canonical_attack(name: str) -> str:
    """``name``, or the attack an alias stands for (``pgd`` -> ``linfpgd``)."""
    return ATTACK_ALIASES.get(name, name)
