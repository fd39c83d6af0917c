"""What AccelAT measures: the gain a metric made over a window, and that gain's standard error.

A gain reads the newest values of the metric, oldest first, :math:`a_0, \\dots, a_k`, and is a
weighted sum :math:`g = \\sum_i c_i a_i` (``sign`` is +1 when the metric should rise, -1 when
it should fall):

- ``"endpoint"``: :math:`g = a_w - a_0` over :math:`w + 1` values;
- ``"windows"``: the mean of the last :math:`w` values minus the mean of the :math:`w` before;
- ``"slope"``: the least-squares slope over :math:`w + 1` values, times :math:`w`.

With a standard error :math:`\\sigma_i` for each value, :math:`\\sigma_g = \\sqrt{\\sum_i c_i^2
\\sigma_i^2}`.

>>> weights = gain_weights("windows", 2, 1.0)
>>> weights, gain_of("windows", weights, 1.0, [1.0, 2.0, 4.0, 8.0])
((-0.5, -0.5, 0.5, 0.5), 4.5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import mul

GAINS = ("endpoint", "windows", "slope")


def values_read(gain: str, window: int) -> int:
    """How many values the gain reads: ``2 * window`` for ``"windows"``, else ``window + 1``."""
    return 2 * window if gain == "windows" else window + 1


def gain_weights(gain: str, window: int, sign: float) -> tuple[float, ...]:
    """The weights :math:`c_i`, oldest value first, with ``sign`` folded in."""
    w = window
    if gain == "windows":
        return (-sign / w,) * w + (sign / w,) * w
    if gain == "slope":
        # Least squares slope = sum((i - w/2) * y_i) / sum_j (j - w/2)^2 over i = 0..w.
        sxx = sum((i - w / 2) ** 2 for i in range(w + 1))
        return tuple(sign * w * (i - w / 2) / sxx for i in range(w + 1))
    return (-sign,) + (0.0,) * (w - 1) + (sign,)


def gain_of(gain: str, weights: Sequence[float], sign: float, values: Sequence[float]) -> float:
    """:math:`g` of ``values`` (as many as the gain reads); ``"endpoint"`` is the difference
    itself, so that it is exact."""
    if gain == "endpoint":
        return sign * (values[-1] - values[0])
    total: float = sum(map(mul, weights, values))
    return total


def noise_sigma(weights: Sequence[float], noise: float) -> float:
    """:math:`\\sigma_g` when every value has the standard error ``noise``."""
    return noise * math.sqrt(math.fsum(c * c for c in weights))


def binomial_sigma(weights: Sequence[float], values: Sequence[float], samples: int) -> float:
    """:math:`\\sigma_g` for accuracies over ``samples`` examples each:
    :math:`\\sigma_i^2 = p_i (1 - p_i) / n`, :math:`p_i` the value clamped to
    :math:`[1/n, 1 - 1/n]`."""
    lo = 1.0 / samples
    hi = 1.0 - lo
    var = 0.0
    for c, a in zip(weights, values, strict=True):
        p = lo if a < lo else hi if a > hi else a
        var += (c * c) * (p * (1.0 - p))
    return math.sqrt(var / samples)


def check_threshold(
    min_gain: float,
    z: float,
    weights: Sequence[float],
    *,
    noise: float | None = None,
    samples: int | None = None,
) -> None:
    """Raise ``ValueError`` when ``min_gain + z * sigma_g`` could overflow (with ``samples``
    every :math:`\\sigma_i \\le 1/2`)."""
    norm = noise_sigma(weights, 1.0)
    bound = noise if noise is not None else 0.5 if samples else 0.0
    if not math.isfinite(abs(min_gain) + abs(z) * bound * norm):
        raise ValueError(
            f"min_gain + z * sigma_g overflows (min_gain={min_gain!r}, {z=!r}, {noise=!r}): "
            f"keep |min_gain| + |z| * noise * {norm:.6g} below 1.8e308"
        )


def threshold(
    min_gain: float,
    z: float,
    weights: Sequence[float],
    values: Sequence[float],
    noise: float | None = None,
    samples: int | None = None,
) -> float:
    """The gain below which a decision cuts: ``min_gain + z * sigma_g``, with ``sigma_g`` from
    ``noise`` or ``samples`` (neither: ``min_gain``, the paper's rule)."""
    if samples is not None:
        return min_gain + z * binomial_sigma(weights, values, samples)
    if noise is not None:
        return min_gain + z * noise_sigma(weights, noise)
    return min_gain
