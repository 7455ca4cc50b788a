"""Performance alerts: a rolling metric crossing a threshold or leaving its reference band.

Checked once per ``[drift] metrics_window`` scored examples with the values the engine
already computes there, so it costs nothing per event. Each rule fires when its metric
*leaves* the allowed region and re-arms when it comes back. The reference band is
``mean ± band_k·σ`` of the rule's first ``reference_windows`` window values (σ is the
sample standard deviation); it is rebuilt after the model is replaced.

>>> from driftline.config import PerformanceRule
>>> watch = PerformanceWatch([PerformanceRule(metric="rolling_accuracy", band_k=3, reference_windows=4)])
>>> [watch.check({"rolling_accuracy": v}) for v in (0.80, 0.82, 0.81, 0.79)]
[[], [], [], []]
>>> (alert,) = watch.check({"rolling_accuracy": 0.70})
>>> alert.reason, round(alert.low, 4), round(alert.high, 4)
('band', 0.7663, 0.8437)
>>> watch.check({"rolling_accuracy": 0.69}), len(watch.check({"rolling_accuracy": 0.80}))
([], 0)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from driftline.config import PerformanceRule

__all__ = ["PerformanceWatch", "PerformanceAlert"]


@dataclass(frozen=True)
class PerformanceAlert:
    rule: PerformanceRule
    value: float
    reason: str  # "min", "max" or "band"
    low: float | None
    high: float | None
    reference: list[float]


class PerformanceWatch:
    def __init__(self, rules: list[PerformanceRule]) -> None:
        self.rules = list(rules)
        self.rebase()

    def rebase(self) -> None:
        """Forget the reference windows and re-arm every rule (after the model was replaced)."""
        self._reference: list[list[float]] = [[] for _ in self.rules]
        self._out = [False] * len(self.rules)

    def _bounds(self, i: int, rule: PerformanceRule) -> tuple[float | None, float | None, str]:
        ref = self._reference[i]
        if rule.band_k is not None and len(ref) >= rule.reference_windows:
            mean, sd = statistics.fmean(ref), statistics.stdev(ref)
            low, high = mean - rule.band_k * sd, mean + rule.band_k * sd
            if rule.min is not None:
                low = max(low, rule.min)
            if rule.max is not None:
                high = min(high, rule.max)
            return low, high, "band"
        return rule.min, rule.max, "min" if rule.min is not None else "max"

    def check(self, values: dict[str, float]) -> list[PerformanceAlert]:
        """One completed window's metric values; the alerts it raises (usually none)."""
        alerts = []
        for i, rule in enumerate(self.rules):
            value = values.get(rule.metric)
            if value is None or not math.isfinite(value):
                continue
            ref = self._reference[i]
            building = rule.band_k is not None and len(ref) < rule.reference_windows
            low, high, reason = self._bounds(i, rule)
            if building:
                ref.append(value)
            below = low is not None and value < low
            above = high is not None and value > high
            if below or above:
                if not self._out[i]:
                    self._out[i] = True
                    if reason == "band" and low == rule.min and below:
                        reason = "min"
                    elif reason == "band" and high == rule.max and above:
                        reason = "max"
                    elif reason != "band":
                        reason = "min" if below else "max"
                    alerts.append(PerformanceAlert(rule, value, reason, low, high, list(ref)))
            else:
                self._out[i] = False
        return alerts
