"""PolicyScheduler inside Lightning and the HF Trainer, with no glue code.

Each run records the metric the framework monitored and the lr of every epoch, then
replays the metrics into a fresh core AccelAT: the lrs must be the same.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from accelat_core import AccelAT, OneCycle
from accelat_torch import PlateauPolicyScheduler, PolicyScheduler, scheduler_for

pl = pytest.importorskip("pytorch_lightning")

POLICY = {"lr_max": 0.2, "lr_min": 0.005, "min_gain": 0.02, "factor": 0.5, "window": 1}
EPOCHS = 7


def test_the_isinstance_checks_lightning_and_the_hf_trainer_make_route_the_metric():
    """The checks, as the installed frameworks make them (pytorch_lightning 2.6.6,
    transformers 5.24.0), applied to our two classes; a torch release that changed what
    passes them (ReduceLROnPlateau's bases, LRScheduler's) fails this test first.

    * ``pytorch_lightning/core/optimizer.py:291`` (bare scheduler) and ``:275`` (the
      scheduler dict): ``isinstance(scheduler, ReduceLROnPlateau)`` sets
      ``reduce_on_plateau`` (step with the monitored metric) and requires a ``monitor``.
    * ``pytorch_lightning/core/optimizer.py:340``: ``isinstance(scheduler,
      LRSchedulerTypeTuple)`` (``(LRScheduler, ReduceLROnPlateau)``,
      ``pytorch_lightning/utilities/types.py:74``), else a custom ``lr_scheduler_step``
      is demanded.
    * ``transformers/trainer.py:1951`` and ``:3324``: ``isinstance(self.lr_scheduler,
      (torch.optim.lr_scheduler.ReduceLROnPlateau, GreedyLR))`` delays ``step`` until
      evaluation and passes the metric; ``:1439`` then reads the lr from ``param_groups``.
    """
    from pytorch_lightning.core.optimizer import _configure_schedulers_automatic_opt
    from pytorch_lightning.utilities.exceptions import MisconfigurationException
    from pytorch_lightning.utilities.types import LRSchedulerTypeTuple

    transformers_optimization = pytest.importorskip("transformers.optimization")

    def sgd() -> torch.optim.SGD:
        return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)

    plateau = scheduler_for(sgd(), AccelAT(**POLICY))
    fixed = scheduler_for(sgd(), OneCycle(0.1, total_steps=10))
    assert type(plateau) is PlateauPolicyScheduler and type(fixed) is PolicyScheduler
    assert isinstance(plateau, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert not isinstance(fixed, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert isinstance(plateau, LRSchedulerTypeTuple) and isinstance(fixed, LRSchedulerTypeTuple)
    # Lightning's own routing function, on both forms it accepts
    with pytest.raises(MisconfigurationException, match="must include a monitor"):
        _configure_schedulers_automatic_opt([plateau], monitor=None)
    (bare,) = _configure_schedulers_automatic_opt([plateau], monitor="val_acc")
    (as_dict,) = _configure_schedulers_automatic_opt(
        [{"scheduler": plateau, "monitor": "val_acc"}], monitor=None
    )
    (plain,) = _configure_schedulers_automatic_opt([fixed], monitor=None)
    assert (bare.reduce_on_plateau, as_dict.reduce_on_plateau, plain.reduce_on_plateau) == (
        True,
        True,
        False,
    )
    # the HF Trainer's test, with the GreedyLR it imports
    hf_plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau, transformers_optimization.GreedyLR)
    assert isinstance(plateau, hf_plateau) and not isinstance(fixed, hf_plateau)


def test_plateau_policy_scheduler_built_directly_needs_a_metric_driven_policy():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    direct = PlateauPolicyScheduler(optimizer, AccelAT(**POLICY))
    assert type(direct) is PlateauPolicyScheduler and direct.needs_metric
    with pytest.raises(TypeError, match=r"needs a metric-driven policy.*use PolicyScheduler"):
        PlateauPolicyScheduler(optimizer, OneCycle(0.1, total_steps=10))


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def loaders(digits, batch_size: int = 100):
    from torch.utils.data import DataLoader, TensorDataset

    xt, yt, xv, yv = digits
    g = torch.Generator().manual_seed(0)
    train = DataLoader(TensorDataset(xt, yt), batch_size=batch_size, shuffle=True, generator=g)
    return train, DataLoader(TensorDataset(xv, yv), batch_size=200)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


class DigitsModule(pl.LightningModule):
    def __init__(self, make_scheduler, interval: str) -> None:
        super().__init__()
        self.net = mlp()
        self.make_scheduler = make_scheduler
        self.interval = interval

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        acc = (self.net(x).argmax(1) == y).float().mean()
        self.log("val_acc", acc, on_epoch=True)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        scheduler = {"scheduler": self.make_scheduler(opt), "interval": self.interval}
        if self.interval == "epoch":
            scheduler["monitor"] = "val_acc"
        return {"optimizer": opt, "lr_scheduler": scheduler}


class Recorder(pl.Callback):
    """The lr at the start of every batch, and val_acc as the schedulers will see it."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.val_accs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_end(self, trainer, pl_module):
        # Lightning steps epoch-interval schedulers right after this hook, with this value.
        self.val_accs.append(float(trainer.callback_metrics["val_acc"]))


def fit(module: DigitsModule, digits, epochs: int) -> Recorder:
    recorder = Recorder()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        callbacks=[recorder],
    )
    trainer.fit(module, *loaders(digits))
    module.trainer_configs = trainer.lr_scheduler_configs
    return recorder


@pytest.mark.slow
def test_lightning_feeds_the_monitored_val_acc_to_accelat(digits):
    module = DigitsModule(lambda opt: PlateauPolicyScheduler(opt, AccelAT(**POLICY)), "epoch")
    recorder = fit(module, digits, EPOCHS)

    config = module.trainer_configs[0]
    assert config.reduce_on_plateau and config.monitor == "val_acc"
    assert len(recorder.val_accs) == EPOCHS
    reference = AccelAT(**POLICY)
    expected = [0.2] + [reference.step(acc).lr for acc in recorder.val_accs[:-1]]
    batches_per_epoch = len(recorder.lrs) // EPOCHS
    assert recorder.lrs[::batches_per_epoch] == expected
    reference.step(recorder.val_accs[-1])
    assert config.scheduler.policy.decisions == reference.decisions
    assert reference.decisions, "the run is set up so that AccelAT cuts at least once"


@pytest.mark.slow
def test_lightning_steps_a_fixed_policy_every_batch(digits):
    module = DigitsModule(lambda opt: PolicyScheduler(opt, OneCycle(0.3, 42)), "step")
    recorder = fit(module, digits, 3)
    assert not module.trainer_configs[0].reduce_on_plateau
    assert recorder.lrs == [OneCycle(0.3, 42).at(t).lr for t in range(42)]


# -- Hugging Face Trainer ------------------------------------------------------------------------
class DictMLP(nn.Module):
    """A plain module speaking the HF Trainer's dict protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, x, labels=None):
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out


class DictDataset(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


@pytest.mark.slow
def test_hf_trainer_feeds_the_eval_metric_to_accelat(digits, tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")

    xt, yt, xv, yv = digits
    model = DictMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = PlateauPolicyScheduler(opt, AccelAT(**POLICY))
    epoch_lrs: list[float] = []
    eval_accs: list[float] = []

    class Recorder(transformers.TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            epoch_lrs.append(opt.param_groups[0]["lr"])

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            eval_accs.append(metrics["eval_acc"])

    def accuracy(pred) -> dict[str, float]:
        logits, labels = pred
        return {"acc": float((logits.argmax(-1) == labels).mean())}

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=EPOCHS,
        per_device_train_batch_size=100,
        per_device_eval_batch_size=200,
        eval_strategy="epoch",
        save_strategy="no",
        metric_for_best_model="acc",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        logging_strategy="no",
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=DictDataset(xt, yt),
        eval_dataset=DictDataset(xv, yv),
        compute_metrics=accuracy,
        optimizers=(opt, scheduler),
        callbacks=[Recorder()],
    )
    trainer.train()

    assert len(eval_accs) == EPOCHS
    reference = AccelAT(**POLICY)
    expected = [0.2] + [reference.step(acc).lr for acc in eval_accs[:-1]]
    assert epoch_lrs == expected, (epoch_lrs, eval_accs, scheduler.policy.decisions)
    reference.step(eval_accs[-1])
    assert scheduler.policy.decisions == reference.decisions
    assert reference.decisions, "the run is set up so that AccelAT cuts at least once"
