"""The fairness monitor: per-group counts in, state changes (ok | violation | insufficient_data) out.

Every ``check_every`` events it tests each dimension (attribute or intersection) and metric
on the sliding window: each group against the reference group. A group is in violation when
its ratio is outside ``[tau, 1/tau]`` and the one-sided two-proportion z-test in that
direction is significant after Holm's correction across the dimension's groups and
metrics, at the look's level ``alpha * check_every / alpha_horizon``: Bonferroni over the
looks of a horizon, so repeated looks do not inflate the alarms (successive windows overlap,
which makes it conservative). A violation lasts while the
ratio stays outside the band and the test stays significant at ``alpha`` (hysteresis).

>>> from driftline.config import FairnessConfig
>>> cfg = FairnessConfig(enabled=True, attributes=[{"name": "g", "reference": "a"}],
...                      metrics=["selection_rate"], window=1000, check_every=1000, min_group=100)
>>> mon = FairnessMonitor(cfg)
>>> changes = []
>>> for i in range(1000):
...     group = "a" if i % 2 else "b"
...     fav = (i % 10 < 6) if group == "a" else (i % 10 < 3)
...     changes += mon.predicted({"g": group}, fav, event_time=i, version=0)
>>> [(c.dimension, c.metric, c.before, c.state, round(c.worst["ratio"], 3)) for c in changes]
[('g', 'selection_rate', 'insufficient_data', 'violation', 0.667)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from driftline.config import FairnessConfig
from driftline.core.fairness.counts import LABEL_SIDE, GroupCounts, GroupViews, Grouping, fraction
from driftline.core.fairness.statistics import holm, newcombe, ratio_interval, wilson, z_test

__all__ = ["FairnessMonitor", "StateChange", "GroupTest"]

OK, VIOLATION, INSUFFICIENT = "ok", "violation", "insufficient_data"


@dataclass(frozen=True, slots=True)
class GroupTest:
    """One group against the reference group on one metric."""

    group: str
    state: str
    k: int
    n: int
    rate: float | None
    interval: tuple[float, float] | None
    ratio: float | None = None
    ratio_interval: tuple[float, float] | None = None
    difference: float | None = None
    difference_interval: tuple[float, float] | None = None
    alternative: str | None = None
    p_value: float | None = None
    p_adjusted: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class StateChange:
    """A dimension's metric changed state; what a fairness event reports."""

    dimension: str
    metric: str
    before: str
    state: str
    reference: str | None
    threshold: float
    look_alpha: float
    tests: list[GroupTest]
    counts: dict[str, dict[str, int]]
    coverage: dict[str, float | None]
    worst: dict[str, Any] = field(default_factory=dict)


class FairnessMonitor:
    """Group counts and the state of every (dimension, metric); pickled with the engine."""

    def __init__(self, config: FairnessConfig) -> None:
        self.config = config
        self.grouping = Grouping(config.attributes, config.intersections)
        self.views = GroupViews(self.grouping, config.window, config.tumbling_ms)
        self.states: dict[tuple[str, str], str] = {
            (d, m): INSUFFICIENT for d in self.grouping.names for m in config.metrics}
        self.look_alpha = config.alpha * min(1.0, config.check_every / config.alpha_horizon)
        self.events = 0
        self.checks = 0
        self.last: dict[tuple[str, str], StateChange] = {}  # the latest test of each (dimension, metric)
        self._references = {a.name: a.reference for a in config.attributes}

    # -- updates -------------------------------------------------------------------------

    def predicted(self, features: dict[str, Any], favourable: bool, event_time: int, version: int,
                  keys: tuple[str, ...] | None = None) -> list[StateChange]:
        """``keys``: the event's groups (``grouping.keys(features)``) when the caller has them."""
        self.views.predicted(features, favourable, event_time, version, keys)
        return self._tick()

    def joined(self, features: dict[str, Any], predicted: bool, actual: bool, delay_ms: int,
               event_time: int, keys: tuple[str, ...] | None = None) -> list[StateChange]:
        self.views.joined(features, predicted, actual, delay_ms, event_time, keys)
        return self._tick()

    def _tick(self) -> list[StateChange]:
        self.events += 1
        if self.events % self.config.check_every:
            return []
        return self.check()

    # -- the check -----------------------------------------------------------------------

    def reference_of(self, dimension: str, groups: dict[str, GroupCounts]) -> str | None:
        ref = self._references.get(dimension)
        if ref is not None:
            return ref
        live = {g: c for g, c in groups.items() if c.n}
        return max(sorted(live), key=lambda g: live[g].n) if live else None

    def check(self) -> list[StateChange]:
        """Test every dimension on the sliding window; the state changes."""
        self.checks += 1
        changes = []
        for dimension in self.grouping.names:
            for result in self._check_dimension(dimension):
                key = (result.dimension, result.metric)
                self.last[key] = result
                if result.state != self.states[key]:
                    self.states[key] = result.state
                    changes.append(result)
        return changes

    def _sufficient(self, counts: GroupCounts, metric: str) -> bool:
        cfg = self.config
        size = counts.labelled if metric in LABEL_SIDE else counts.n
        return size >= cfg.min_group and fraction(counts, metric)[1] >= cfg.min_denominator

    def _check_dimension(self, dimension: str) -> list[StateChange]:
        cfg = self.config
        groups = {g: c for g, c in self.views.sliding[dimension].items() if c.n or c.labelled}
        ref = self.reference_of(dimension, groups)
        tau = cfg.tau
        pending: list[tuple[str, str, dict[str, Any]]] = []  # (metric, group, fields) awaiting Holm
        raw: list[float] = []
        per_metric: dict[str, list[dict[str, Any]]] = {m: [] for m in cfg.metrics}
        for metric in cfg.metrics:
            ref_counts = groups.get(ref) if ref is not None else None
            ref_ok = ref_counts is not None and self._sufficient(ref_counts, metric)
            for g in sorted(groups):
                k, n = fraction(groups[g], metric)
                fields: dict[str, Any] = {"group": g, "k": k, "n": n, "rate": k / n if n else None,
                                          "interval": wilson(k, n) if n else None, "state": OK}
                per_metric[metric].append(fields)
                if g == ref:
                    fields["state"] = OK if ref_ok else INSUFFICIENT
                    continue
                if not ref_ok or not self._sufficient(groups[g], metric):
                    fields["state"] = INSUFFICIENT
                    continue
                k0, n0 = fraction(ref_counts, metric)
                p, p0 = k / n, k0 / n0
                fields["difference"] = p - p0
                fields["difference_interval"] = newcombe(k, n, k0, n0)
                fields["ratio"] = p / p0 if p0 else (None if p == 0 else float("inf"))
                fields["ratio_interval"] = ratio_interval(k, n, k0, n0)
                r = fields["ratio"]
                outside = r is not None and (r < tau or r > 1 / tau)
                fields["alternative"] = "less" if p <= p0 else "greater"
                fields["p_value"] = z_test(k, n, k0, n0, fields["alternative"])
                fields["outside"] = outside
                pending.append((metric, g, fields))
                raw.append(fields["p_value"])
        for (metric, g, fields), p_adj in zip(pending, holm(raw)):
            fields["p_adjusted"] = p_adj
            was = self.states[(dimension, metric)] == VIOLATION
            level = cfg.alpha if was else self.look_alpha
            fields["state"] = VIOLATION if fields.pop("outside") and p_adj <= level else OK
        counts = {g: c.as_dict() for g, c in sorted(groups.items())}
        coverage = {g: c.rate("coverage") for g, c in sorted(self.views.cumulative[dimension].items())}
        out = []
        for metric, rows in per_metric.items():
            tests = [GroupTest(**{k: v for k, v in f.items() if k != "outside"}) for f in rows]
            states = {t.state for t in tests}
            state = VIOLATION if VIOLATION in states else INSUFFICIENT if (INSUFFICIENT in states or not tests) else OK
            tested = [t for t in tests if t.p_adjusted is not None]
            worst = min(tested, key=lambda t: (t.state != VIOLATION, t.p_adjusted)).as_dict() if tested else {}
            out.append(StateChange(dimension, metric, self.states[(dimension, metric)], state, ref, tau,
                                   self.look_alpha, tests, counts, coverage, worst))
        return out

    def low_coverage(self) -> dict[str, dict[str, float]]:
        """Label-coverage guard: groups whose share of labelled events is below ``coverage_min``."""
        bound = self.config.coverage_min
        if bound is None:
            return {}
        out: dict[str, dict[str, float]] = {}
        for dimension, groups in self.views.cumulative.items():
            low = {g: c.labelled / c.n for g, c in groups.items()
                   if c.n >= self.config.min_group and c.labelled / c.n < bound}
            if low:
                out[dimension] = low
        return out
