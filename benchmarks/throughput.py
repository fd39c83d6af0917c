"""Training throughput of each adversarial training method: gradient passes per second.

Run: ``python -m benchmarks.throughput --device cuda`` (or ``--device cpu``, slow).

For every model x method x batch size it builds the pipeline's own ``Method`` object
(its record's, ``accelat_train.registry.METHODS[method].make``) and times
``train_batch`` on a fixed synthetic batch (CIFAR-shaped, 3 x 32 x 32; the data's content
does not change the cost), after ``warmup`` untimed calls. On CUDA each call is timed with
CUDA events; on CPU with ``time.perf_counter``. The figure is the median over ``repeats`` calls.

* ``passes/s``: gradient passes (forward + backward of one image = 1, counted by the
  pipeline's forward hook) per second: the unit the acceleration study's budgets use.
* ``images/s``: distinct minibatch images per second (a Free AT call replays its batch
  ``m`` times, PGD-k attacks it ``k`` times: one image, several passes).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from accelat_train import registry
from accelat_train.config import TrainConfig
from accelat_train.models import NormalizedModel, build_model

METHODS = ("natural", "free", "fgsm-rs", "pgd")
MODELS = ("resnet20", "preact18")
BATCH_SIZES = (128, 512)
# CIFAR-10 channel statistics: the normalisation is part of the model's cost, not its values.
_MEAN, _STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Throughput:
    """One measurement. ``seconds`` is the median wall time of one ``train_batch`` call."""

    model: str
    method: str
    batch_size: int
    device: str
    amp: str | None
    seconds: float
    passes_per_batch: int
    images_per_s: float
    passes_per_s: float
    repeats: int


def time_calls(
    fn: Callable[[], None], *, device: torch.device, warmup: int, repeats: int
) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn()`` after ``warmup`` untimed calls.

    CUDA: one pair of events around each call, read after a final synchronize (the events
    measure GPU time between them, free of Python's launch jitter). CPU: perf_counter.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup must be >= 0 and repeats >= 1, got {warmup}, {repeats}")
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        pairs = []
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            pairs.append((start, end))
        torch.cuda.synchronize(device)
        return [s.elapsed_time(e) / 1000.0 for s, e in pairs]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def measure(
    model: str,
    method: str,
    batch_size: int,
    *,
    device: str | torch.device = "cuda",
    warmup: int = 5,
    repeats: int = 20,
    eps: float = 8 / 255,
    replays: int = 8,
    pgd_steps: int = 7,
    amp: str | None = None,
    image_size: int = 32,
    num_classes: int = 10,
    seed: int = 0,
) -> Throughput:
    """Time ``method``'s ``train_batch`` on ``model`` with one synthetic batch of ``batch_size``."""
    device = torch.device(device)
    torch.manual_seed(seed)
    net = build_model(model, num_classes, in_channels=3, image_size=image_size)
    network = NormalizedModel(net, _MEAN, _STD).to(device)
    if device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    network.train()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    cfg = TrainConfig(
        method=method,
        eps=eps,
        replays=replays if method == "free" else None,
        pgd_steps=pgd_steps,
        device=str(device),
    )
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" and device.type == "cuda" else None
    generator = torch.Generator(device=device).manual_seed(seed)
    runner = registry.METHODS[cfg.method].make(
        cfg.eps, replays=cfg.replays, pgd_steps=cfg.pgd_steps,
        amp=amp if device.type == "cuda" else None, scaler=scaler, generator=generator,
    )  # fmt: skip
    x = torch.rand(
        batch_size, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed)
    )
    y = torch.randint(0, num_classes, (batch_size,), generator=torch.Generator().manual_seed(seed))
    x, y = x.to(device), y.to(device)
    passes = [0]

    def call() -> None:
        passes[0] = runner.train_batch(network, optimizer, x, y).passes

    seconds = statistics.median(time_calls(call, device=device, warmup=warmup, repeats=repeats))
    return Throughput(
        model=model,
        method=method,
        batch_size=batch_size,
        device=str(device),
        amp=amp,
        seconds=seconds,
        passes_per_batch=passes[0],
        images_per_s=batch_size / seconds,
        passes_per_s=passes[0] / seconds,
        repeats=repeats,
    )


def format_table(rows: Sequence[Throughput]) -> str:
    """A Markdown table, one row per measurement."""
    lines = [
        "| model | method | batch | passes/batch | ms/batch (median) | images/s | passes/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.method} | {r.batch_size} | {r.passes_per_batch} | "
            f"{r.seconds * 1000:.1f} | {r.images_per_s:,.0f} | {r.passes_per_s:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def _csv(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--models", type=_csv, default=list(MODELS))
    parser.add_argument("--methods", type=_csv, default=list(METHODS))
    parser.add_argument(
        "--batch-sizes", type=lambda s: [int(v) for v in _csv(s)], default=list(BATCH_SIZES)
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--replays", type=int, default=8, help="Free AT m")
    parser.add_argument("--pgd-steps", type=int, default=7)
    parser.add_argument("--amp", choices=("bf16", "fp16"), help="CUDA mixed precision")
    parser.add_argument("--out", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    for name in args.methods:
        if name not in METHODS:
            parser.error(f"--methods: {name!r} is not one of {', '.join(METHODS)}")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    for model in args.models:
        for method in args.methods:
            for batch_size in args.batch_sizes:
                row = measure(
                    model,
                    method,
                    batch_size,
                    device=device,
                    warmup=args.warmup,
                    repeats=args.repeats,
                    replays=args.replays,
                    pgd_steps=args.pgd_steps,
                    amp=args.amp,
                )
                print(
                    f"{model} {method} {batch_size}: {row.passes_per_s:,.0f} passes/s",
                    file=sys.stderr,
                )
                rows.append(row)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device: {machine or device}; torch {torch.__version__}; amp {args.amp}; "
        f"free m={args.replays}; pgd k={args.pgd_steps}\n"
    )
    print(format_table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
