"""Listeners the tests inject faults and probes with, and an ``accelat`` entry point that
adds them to the command line (for subprocess and torchrun tests):

    python -m tests.train.listeners [--nan-at EPOCH:BATCH] [--dump DIR] -- train ...

``--nan-at`` makes the loss NaN from that minibatch on (1-based), through the real model: the
run must stop naming the epoch and batch and keep its last checkpoint. ``--dump`` makes
every rank write ``rank{r}_final.json`` (its lr per epoch and a sha256 of its final
weights), so a DDP test can compare the ranks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

from accelat_train.callbacks.callback import Callback
from accelat_train.cli import main


class NanAt(Callback):
    """Fill the first weight with NaN just before minibatch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_train_batch_begin(self, trainer, batch):
        if (trainer.state.epoch + 1, batch) == self.at:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))


def weights_sha256(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RankDump(Callback):
    """Every rank writes its lrs and a hash of its final weights to ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.lrs: list[float] = []

    def on_epoch_end(self, trainer, record):
        self.lrs.append(record.lr)

    def on_train_end(self, trainer, result):
        self.folder.mkdir(parents=True, exist_ok=True)
        rank = trainer.rank
        dump = {"rank": rank, "lrs": self.lrs, "weights_sha256": weights_sha256(trainer.model)}
        (self.folder / f"rank{rank}_final.json").write_text(json.dumps(dump))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nan-at")
    parser.add_argument("--dump")
    own, rest = parser.parse_known_args()
    listeners: list[Callback] = []
    if own.nan_at:
        listeners.append(NanAt(*(int(v) for v in own.nan_at.split(":"))))
    if own.dump:
        listeners.append(RankDump(own.dump))
    sys.exit(main([a for a in rest if a != "--"], callbacks=listeners))
