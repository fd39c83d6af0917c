"""Hand a trained model to someone without accelat: :func:`export_run`.

The file is a ``torch.export`` program (``.pt2``): the evaluated network (the weight average
when the run averaged its weights) as a graph with its weights, in eval mode (BatchNorm
uses its running statistics), loaded by plain torch >= 2.4 with no accelat installed and no
pickled code. Input: float32 images, NCHW, pixels in [0, 1] (the normalisation is inside);
any batch size; the training image size only. Output: logits. A JSON note goes inside the
file (``accelat.json``) and beside it (``FILE.json``): input shape and range, classes, the
training eps and threat model, the run's config and its test accuracies.

Loading it, and handing it to a third-party evaluator, needs torch alone::

    import torch
    model = torch.export.load("runs/a/model.pt2").module()   # an nn.Module
    logits = model(x)                                          # x: N x C x H x W in [0, 1]

    from autoattack import AutoAttack                          # the original AutoAttack
    adversary = AutoAttack(model, norm="Linf", eps=8 / 255, version="standard")
    x_adv = adversary.run_standard_evaluation(x, y, bs=250)

    from robustbench import benchmark                          # RobustBench
    benchmark(model, dataset="cifar10", threat_model="Linf", eps=8 / 255)

Caveats, honestly:

- ``model.eval()`` and ``model.train()`` raise ``NotImplementedError`` ("Calling eval() is not
  supported yet.") on a loaded program (torch 2.x, 2.13 included), and ``model.training`` reads
  True: the graph is already in eval mode, so skip the call; for a tool that calls it, first
  ``del model.train, model.eval`` (the instance overrides torch puts there), after which
  ``eval()`` only sets the flag. RobustBench's ``benchmark`` warns "not in eval mode", which is
  harmless here.
- The graph takes the training image size and float32 only; a different size fails a shape
  guard. ``model.to("cuda")`` moves the weights; the graph has no device constants for the
  built-in networks, but that is torch's promise, not ours: check on your device.
- Gradients flow (white-box attacks work); the network is deterministic, so AutoAttack's
  ``version="standard"`` applies, not ``"rand"``.
- The accuracies in the note are the run's own test evaluation (``eval_size`` images,
  its attacks and steps), not AutoAttack's or RobustBench's: those will be lower or equal.
- The digits data set is 8 x 8 grey images; RobustBench's data sets are CIFAR/ImageNet:
  hand it CIFAR-trained runs only.

>>> export_run("runs/a", "runs/a/model.pt2", which="best")  # doctest: +SKIP
PosixPath('runs/a/model.pt2')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from accelat_train.atomic_writes import atomic_write, atomic_write_text
from accelat_train.output_path import check_output_path
from accelat_train.trained import WHICH, Run, load_run

#: The name of the note inside the file (``torch.export.load(path, extra_files=...)``).
NOTE_NAME = "accelat.json"


def export_run(run_dir: str | Path, out: str | Path, which: str = "best") -> Path:
    """Write run ``run_dir``'s evaluated model (``which``: ``"best"``, the best robust
    validation epoch's, or ``"last"``) to ``out`` as a ``torch.export`` program, with its
    note inside and beside it (``out`` with the suffix ``.json``); return ``out``.

    ``out`` must end in ``.pt2`` (the ending ``torch.export.save`` and ``load`` expect) and
    is checked before anything is loaded (:func:`~accelat_train.output_path.check_output_path`;
    its note may replace only an earlier note). A missing, corrupt or foreign checkpoint raises
    :class:`~accelat_train.checkpoint.CheckpointError` naming it.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {', '.join(WHICH)}, got {which!r}")
    out = _checked_out(out)
    run = load_run(run_dir, which)
    x, _ = run.test_data()
    example = x[:2]  # a batch of 2: a batch of 1 would fix the batch size in the graph
    batch = torch.export.Dim("batch")
    program = torch.export.export(run.model, (example,), dynamic_shapes=({0: batch},))
    note = json.dumps(model_note(run, which, tuple(example.shape[1:])), indent=2) + "\n"
    atomic_write(out, lambda f: torch.export.save(program, f, extra_files={NOTE_NAME: note}))
    atomic_write_text(out.with_suffix(".json"), note)
    return out


def _checked_out(out: str | Path) -> Path:
    """``out`` if an exported program and its note may be written there, else ``ValueError``
    naming ``out``: a path that cannot be written, another ending than ``.pt2``, or a note
    that would replace a file which is not an earlier export's note (a run's config.json)."""
    path = check_output_path(out, "out")
    if path.suffix != ".pt2":
        raise ValueError(
            f"out {out}: must end in .pt2 (torch.export's file type, which torch.export.load "
            "expects)"
        )
    note = check_output_path(path.with_suffix(".json"), "out")
    if note.exists() and not _is_note(note):
        raise ValueError(
            f"out {out}: its note {note} would replace a file that is not an export's note; "
            "name another file"
        )
    return path


def _is_note(path: Path) -> bool:
    try:
        note = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(note, dict) and str(note.get("format", "")).startswith("torch.export")


def model_note(run: Run, which: str, image_shape: tuple[int, ...]) -> dict[str, Any]:
    """What an evaluator needs to know about the exported model, as JSON."""
    config = run.config
    mean, std = run.splits.mean, run.splits.std
    return {
        "format": "torch.export program: torch.export.load(path).module()",
        "torch_version": torch.__version__,
        "input": {
            "shape": ["N", *image_shape],
            "layout": "NCHW",
            "dtype": "float32",
            "range": [0.0, 1.0],
            "normalisation": f"inside the model: (x - {list(mean)}) / {list(std)}",
        },
        "output": f"logits, shape [N, {len(run.splits.classes)}]",
        "classes": list(run.splits.classes),
        "threat_model": "Linf",
        "eps": config.get("eps"),
        "weights": {
            "which": which,
            "epoch": run.epoch,
            "averaged": bool(config.get("ema_epochs")),  # the weight average, as evaluated
        },
        "test": _test_accuracies(run, which),
        "config": config,
    }


def _test_accuracies(run: Run, which: str) -> dict[str, Any] | None:
    """The run's own test evaluation of the exported weights (None before the run ends)."""
    report = run.report
    if report is None:
        return None
    result = (report.get("best") or {}).get("test") if which == "best" else report.get("final")
    if result is None:
        return None
    keep = ("clean_acc", "robust_acc", "attacks", "worst_case")
    config = run.config
    return {
        **{k: result[k] for k in keep if k in result},
        "images": config.get("eval_size"),
        "attack_steps": config.get("eval_steps"),
    }
