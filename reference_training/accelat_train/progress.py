"""What a run prints while it trains, as Keras' ``fit`` does.

On a terminal: one tqdm bar per epoch whose postfix shows the lr, the running loss and the
running adversarial accuracy, left in place when the epoch ends, then one line with the
monitor's values and any decision the policy took. Off a terminal: that one plain line per
epoch, to stderr. ``quiet``: nothing.

>>> row = {"epoch": 2, "lr": 0.1, "train_loss": 1.5, "train_adv_acc": 0.25, "val_acc": 0.5,
...        "robust_val_acc": 0.3, "monitor": "robust_val_acc",
...        "decision": {"gain": 0.001, "old_lr": 0.1, "new_lr": 0.05}}
>>> print(epoch_line(row, 10))  # doctest: +ELLIPSIS
epoch 2/10: lr 0.1, loss 1.5, ..., robust_val_acc 0.3 (monitor); lr 0.1 -> 0.05 (gain 0.001)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """One epoch's summary: the lr it used, its training loss and accuracy, the monitor."""
    parts = [f"lr {row['lr']:.4g}", f"loss {row['train_loss']:.4g}"]
    for key in ("train_adv_acc", "val_acc", "robust_val_acc"):
        mark = " (monitor)" if row.get("monitor") == key else ""
        parts.append(f"{key} {row[key]:.4g}{mark}")
    line = f"epoch {row['epoch']}/{epochs}: " + ", ".join(parts)
    decision = row.get("decision")
    if decision:
        line += (
            f"; lr {decision['old_lr']:.4g} -> {decision['new_lr']:.4g} "
            f"(gain {decision['gain']:.4g})"
        )
    return line


class Progress:
    """Bars on a terminal, plain lines elsewhere, nothing when ``quiet``."""

    def __init__(self, *, quiet: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bars = not quiet and self.stream.isatty()

    def batches(self, batches: Iterable[Any], *, epoch: int, epochs: int, total: int) -> Any:
        """``batches``, as a bar on a terminal (update its postfix with :meth:`show`)."""
        if not self.bars:
            return _Plain(batches)
        from tqdm.auto import tqdm  # tqdm.auto probes for IPython: only on a terminal

        return tqdm(batches, desc=f"epoch {epoch}/{epochs}", total=total, file=self.stream)

    def write(self, line: str) -> None:
        if self.quiet:
            return
        if self.bars:
            from tqdm.auto import tqdm

            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)


class _Plain:
    """The batches with a no-op ``set_postfix``, off a terminal."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self._batches = batches

    def __iter__(self) -> Iterator[Any]:
        return iter(self._batches)

    def set_postfix(self, **_: Any) -> None:
        pass
