"""A seeded lending stream with a known, injected label bias, for fairness tests and benchmarks.

The truth is fair: whether an applicant repays depends on ``income`` and ``debt`` only,
drawn the same way in both groups. From event ``t0`` on, the recorded label of a group
``b`` applicant who repaid is flipped to ``False`` with probability ``beta``, so the
observed base-rate ratio of ``b`` to ``a`` is ``1 - beta``. ``region`` is a proxy: it
equals the group ``proxy`` of the time. Every random draw is made for every event, so
the same seed gives the same applicants whatever ``beta`` and ``t0`` are.

>>> rows = list(itertools.islice(lending(seed=1, beta=0.3), 3))
>>> sorted(rows[0][0]), type(rows[0][1]), type(rows[0][2])
(['debt', 'group', 'income', 'region'], <class 'bool'>, <class 'bool'>)
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from typing import Any

__all__ = ["lending"]


def lending(seed: int = 0, beta: float = 0.0, t0: int = 0, share_b: float = 0.3,
            proxy: float = 0.8) -> Iterator[tuple[dict[str, Any], bool, bool]]:
    """Yield ``(features, observed_label, true_label)`` forever."""
    rng = random.Random(seed)
    for i in itertools.count():
        group = "b" if rng.random() < share_b else "a"
        other = "a" if group == "b" else "b"
        region = group if rng.random() < proxy else other
        income, debt = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        truth = rng.random() < 1.0 / (1.0 + math.exp(-(1.5 * income - 1.0 * debt - 0.2)))
        flip = rng.random() < beta
        label = truth and not (group == "b" and i >= t0 and flip)
        yield {"group": group, "region": region, "income": income, "debt": debt}, label, truth
