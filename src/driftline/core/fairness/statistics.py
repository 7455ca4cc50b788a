"""Intervals and tests for proportions: Wilson, Newcombe, log ratio, two-proportion z, Holm.

Standard library only (``math.erfc`` and ``statistics.NormalDist``), so a check costs
microseconds.

>>> lo, hi = wilson(40, 100)
>>> round(lo, 4), round(hi, 4)
(0.3094, 0.498)
>>> round(z_test(40, 100, 60, 100, "less"), 6)
0.002339
>>> holm([0.01, 0.04, 0.03])
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["z_of", "wilson", "newcombe", "ratio_interval", "z_test", "holm"]

_Z: dict[float, float] = {}


def z_of(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (0.95 -> 1.96), cached."""
    z = _Z.get(confidence)
    if z is None:
        z = _Z[confidence] = NormalDist().inv_cdf(0.5 + confidence / 2)
    return z


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion k/n (n > 0).

    >>> wilson(0, 30)[0], round(wilson(0, 30)[1], 4)
    (0.0, 0.1135)
    """
    z = z_of(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (his method 10) of p1 - p2, from the two Wilson intervals.

    >>> [round(v, 4) for v in newcombe(40, 100, 60, 100)]
    [-0.3281, -0.0614]
    """
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def ratio_interval(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Katz log interval of the ratio (k1/n1) / (k2/n2); None when a count is 0.

    >>> [round(v, 4) for v in ratio_interval(40, 100, 60, 100)]
    [0.4996, 0.8896]
    """
    if k1 == 0 or k2 == 0:
        return None
    z = z_of(confidence)
    log_r = math.log((k1 / n1) / (k2 / n2))
    se = math.sqrt(max(0.0, 1 / k1 - 1 / n1 + 1 / k2 - 1 / n2))
    return math.exp(log_r - z * se), math.exp(log_r + z * se)


def z_test(k1: int, n1: int, k2: int, n2: int, alternative: str) -> float:
    """One-sided pooled two-proportion z-test; p-value of H1 p1 < p2 (``less``) or p1 > p2 (``greater``).

    >>> z_test(0, 100, 0, 100, "less")
    1.0
    """
    pooled = (k1 + k2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0.0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / math.sqrt(var)
    if alternative == "greater":
        z = -z
    return 0.5 * math.erfc(-z / math.sqrt(2))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (monotone, capped at 1)."""
    m = len(p_values)
    order = sorted(range(m), key=p_values.__getitem__)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
