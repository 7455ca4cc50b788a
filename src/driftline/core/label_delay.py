"""How late labels come: the event-time gap between a feature event and its label.

Counted once per joined label, in event time (the label's timestamp minus its features'),
so a replay counts the same. Quantiles come from power-of-two buckets (exact to a factor
of two, constant memory); count, mean and maximum are exact. Versions record the summary
and model cards show it (lifecycle/card.py).

>>> delay = LabelDelay()
>>> for ms in (0, 40, 90, 1000):
...     delay.add(ms)
>>> delay.summary()
{'labels': 4, 'mean_ms': 282.5, 'max_ms': 1000, 'p50_ms': 64, 'p90_ms': 1000}
>>> LabelDelay().summary()
{'labels': 0}
"""

from __future__ import annotations

__all__ = ["LabelDelay"]


class LabelDelay:
    """Count, sum, maximum and power-of-two buckets of label delays in milliseconds."""

    __slots__ = ("count", "total", "maximum", "buckets")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.maximum = 0
        self.buckets: dict[int, int] = {}  # bucket b holds delays in (2^(b-1), 2^b]; 0 holds <= 1

    def add(self, delay_ms: int) -> None:
        delay_ms = max(0, int(delay_ms))  # a label stamped before its features counts as on time
        self.count += 1
        self.total += delay_ms
        self.maximum = max(self.maximum, delay_ms)
        bucket = (delay_ms - 1).bit_length() if delay_ms > 1 else 0
        self.buckets[bucket] = self.buckets.get(bucket, 0) + 1

    def quantile(self, q: float) -> int:
        """The upper edge of the bucket that holds the q-quantile (at most the maximum)."""
        rank, seen = q * self.count, 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(1 << bucket, self.maximum) if bucket else min(1, self.maximum)
        return self.maximum

    def summary(self) -> dict[str, float | int]:
        if not self.count:
            return {"labels": 0}
        return {"labels": self.count, "mean_ms": self.total / self.count, "max_ms": self.maximum,
                "p50_ms": self.quantile(0.5), "p90_ms": self.quantile(0.9)}
