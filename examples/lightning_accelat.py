"""AccelAT in PyTorch Lightning: return the scheduler with a monitor, as for ReduceLROnPlateau.

    python examples/lightning_accelat.py

``PlateauPolicyScheduler`` (the scheduler for a metric-driven policy) is a
``ReduceLROnPlateau`` to Lightning, so Lightning passes the monitored ``val_acc`` to it
after every validation, with no glue code. Runs offline on CPU in seconds; the last line reads
``final val_acc=<acc> lr=<lr> cuts=<n>``.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from accelat_core import AccelAT
from accelat_torch import PlateauPolicyScheduler


class DigitsClassifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        policy = AccelAT(lr_max=0.1, min_lr=0.005, min_gain=0.01, factor=0.5, window=2)
        scheduler = PlateauPolicyScheduler(optimizer, policy)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val_acc", "interval": "epoch"},
        }


class PrintEpochs(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        # Runs after validation; Lightning steps the scheduler with val_acc right after this.
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        acc = float(trainer.callback_metrics["val_acc"])
        print(f"epoch {trainer.current_epoch}: val_acc={acc:.4f} lr={lr:.4g}")


def main() -> None:
    pl.seed_everything(0, verbose=False)
    x, y = load_digits(return_X_y=True)
    data = TensorDataset(
        torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)
    )
    train, val = torch.utils.data.random_split(
        data, [1400, len(data) - 1400], generator=torch.Generator().manual_seed(0)
    )
    model = DigitsClassifier()
    trainer = pl.Trainer(
        max_epochs=12,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        callbacks=[PrintEpochs()],
    )
    trainer.fit(
        model,
        DataLoader(train, batch_size=64, shuffle=True),
        DataLoader(val, batch_size=512),
    )
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    acc = float(trainer.callback_metrics["val_acc"])
    cuts = len(scheduler.policy.decisions)
    print(f"final val_acc={acc:.4f} lr={scheduler.get_last_lr()[0]:.6g} cuts={cuts}")


if __name__ == "__main__":
    main()
