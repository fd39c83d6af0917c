"""Every name the third cut of the trainer moved still works from its old place until 0.4,
with a ``DeprecationWarning`` that names the new one (CHANGELOG, Deprecated)."""

from __future__ import annotations

import importlib
import re

import pytest
import torch

from accelat_train import TrainConfig, train
from accelat_train.callbacks.callback import Callback, RunView
from accelat_train.callbacks.early_stopping import EarlyStopping
from accelat_train.training import lr_finder

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("module", "name", "new", "says"),
    [
        ("accelat_train.training.events", "Callback", Callback, "accelat_train.Callback"),
        ("accelat_train.training.events", "Trainer", RunView, "callback.RunView"),
        ("accelat_train.training.early_stopping", "EarlyStopping", EarlyStopping,
         "accelat_train.EarlyStopping"),
        ("accelat_train.training.lr_range", "find_lr", lr_finder.find_lr,
         "accelat_train.training.lr_finder.find_lr"),
        ("accelat_train.checkpoint", "atomic_write_text", None, "atomic_writes"),
        ("accelat_train.config", "run_differences", TrainConfig.differences,
         "TrainConfig.differences(saved)"),
        ("accelat_train.config", "finder_setting", TrainConfig.finder_setting,
         "TrainConfig.finder_setting()"),
        ("accelat_train.config", "found_lr_max", TrainConfig.reused_lr_max,
         "TrainConfig.reused_lr_max()"),
    ],
)  # fmt: skip
def test_a_moved_name_answers_from_its_old_place_and_warns_naming_the_new(module, name, new, says):
    message = f"{module}.{name} is deprecated since 0.2 and goes in 0.4: use "
    with pytest.warns(DeprecationWarning, match=re.escape(message) + ".*" + re.escape(says)):
        old = getattr(importlib.import_module(module), name)
    if new is not None:
        assert old is new


@pytest.mark.parametrize(
    ("module", "name", "value"),
    [
        ("accelat_train.adversarial.methods", "METHOD_NAMES",
         ("free", "fgsm-rs", "pgd", "foolbox-pgd", "foolbox-fgsm", "foolbox-deepfool", "natural")),
        ("accelat_train.adversarial.attacks", "ATTACK_ALIASES",
         {"pgd": "linfpgd", "autoattack": "autoattack-art"}),
        ("accelat_train.adversarial.attacks", "FOOLBOX_NAMES", ("linfpgd", "fgsm", "deepfool")),
        ("accelat_train.adversarial.robust", "SQUARE_QUERIES", 5000),
        ("accelat_train.data", "DEFAULT_VAL_SIZE", {"digits": 200, "cifar10": 1000,
                                                     "cifar100": 1000}),
        ("accelat_train.models", "MODEL_NAMES", ("cnn", "resnet20", "preact18", "mobilenetv2",
                                                 "resnet50", "wrn28-10", "wrn34-10")),
        ("accelat_train.callbacks.loggers", "LOGGER_NAMES", ("csv", "tensorboard", "wandb")),
    ],
)  # fmt: skip
def test_a_list_of_names_that_became_the_records_is_still_there(module, name, value):
    with pytest.warns(DeprecationWarning, match=f"{module}.{name} is deprecated since 0.2"):
        assert getattr(importlib.import_module(module), name) == value


def test_the_old_calls_give_what_the_new_ones_give(tmp_path):
    from accelat_train import checkpoint, config

    cfg, saved = TrainConfig(eps=0.1), TrainConfig(eps=0.05).to_json()
    with pytest.warns(DeprecationWarning):
        assert config.run_differences(cfg, saved, evaluated=True) == cfg.differences(
            saved, evaluated=True
        )
    with pytest.warns(DeprecationWarning):
        assert config.finder_setting(cfg) == cfg.finder_setting()
    with pytest.warns(DeprecationWarning):
        checkpoint.atomic_write_text(tmp_path / "a.txt", "kept")
    assert (tmp_path / "a.txt").read_text() == "kept"
    with pytest.raises(AttributeError, match="has no attribute 'atomic_read'"):
        checkpoint.atomic_read  # noqa: B018  # never was a name there


class Before(Callback):
    """A listener written against the trainer listeners received before the RunView."""

    def __init__(self):
        self.seen = []

    def on_train_batch_begin(self, trainer, batch):
        if batch == 1:
            self.seen.append(("lr", trainer.optimizer.param_groups[0]["lr"]))

    def on_epoch_end(self, trainer, record):
        self.seen.append(("epochs", trainer.cfg.epochs, trainer.setup.batches_per_epoch))
        self.seen.append(("rank", trainer.info.rank, trainer.is_main, trainer.state.epoch))


def _tiny(tmp_path, **kw) -> TrainConfig:
    return TrainConfig(
        dataset="digits", model="cnn", eps=0.1, policy="constant", lr_max=0.05, batch_size=50,
        train_size=100, val_size=40, monitor_size=20, monitor_steps=1, eval_steps=1,
        eval_size=20, device="cpu", ema_epochs=0.0, out=str(tmp_path / "run"), **kw,
    )  # fmt: skip


def test_a_listener_written_for_the_whole_trainer_still_works_and_is_told_what_to_read(tmp_path):
    cfg = _tiny(tmp_path, method="fgsm-rs", epochs=2)
    before = Before()
    with pytest.warns(DeprecationWarning) as caught:
        train(cfg, callbacks=[before], quiet=True)
    told = {str(w.message).split(" is deprecated")[0] for w in caught}
    assert {f"a listener's trainer.{n}" for n in ("optimizer", "cfg", "setup", "info")} <= told
    assert any("use trainer.lr" in str(w.message) for w in caught)
    assert before.seen == [
        ("lr", 0.05), ("epochs", 2, 2), ("rank", 0, True, 1),
        ("lr", 0.05), ("epochs", 2, 2), ("rank", 0, True, 2),
    ]  # fmt: skip


def test_the_view_offers_the_new_names_without_a_warning(tmp_path, recwarn):
    class New(Callback):
        def on_epoch_end(self, trainer, record):
            self.read = (trainer.epochs, trainer.batches_per_epoch, trainer.lr, trainer.rank,
                         trainer.world_size, trainer.config["eps"], trainer.epoch)  # fmt: skip

    cfg = _tiny(tmp_path, method="natural", epochs=1)
    new = New()
    train(cfg, callbacks=[new], quiet=True)
    assert new.read == (1, 2, 0.05, 0, 1, 0.1, 1)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)
                and "trainer." in str(w.message)]  # fmt: skip
