"""Test-only hooks, driven by environment variables; a normal run sets neither.

- ``ACCELAT_INJECT_NAN_AT=epoch:batch`` (1-based) replaces that batch's inputs by NaN, so the
  loss is NaN through the real model; the run must then stop with the epoch and batch in
  its message and keep the last good checkpoint (tests/train/test_cli.py).
- ``ACCELAT_RANK_DUMP_DIR=dir`` makes every rank write ``rank{r}_final.json`` (per-epoch lrs,
  a sha256 of the final weights), so the DDP test can compare ranks (tests/train/test_ddp.py).

>>> nan_injection({"ACCELAT_INJECT_NAN_AT": "2:1"})
(2, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from torch import nn

NAN_AT = "ACCELAT_INJECT_NAN_AT"
RANK_DUMP_DIR = "ACCELAT_RANK_DUMP_DIR"


def nan_injection(env: Mapping[str, str] = os.environ) -> tuple[int, int] | None:
    """The ``(epoch, batch)`` whose inputs become NaN, or None."""
    spec = env.get(NAN_AT)
    if not spec:
        return None
    try:
        epoch, batch = (int(v) for v in spec.split(":"))
    except ValueError:
        raise ValueError(f"{NAN_AT} must be 'epoch:batch' (1-based ints), got {spec!r}") from None
    return epoch, batch


def dump_rank(rank: int, model: nn.Module, lrs: list[float]) -> None:
    """Write this rank's lr trajectory and a hash of its final weights, if asked to."""
    target = os.environ.get(RANK_DUMP_DIR)
    if not target:
        return
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    Path(target).mkdir(parents=True, exist_ok=True)
    Path(target, f"rank{rank}_final.json").write_text(
        json.dumps({"rank": rank, "lrs": lrs, "weights_sha256": digest.hexdigest()})
    )
