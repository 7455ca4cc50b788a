"""The engine's side of fairness: outcomes mapped to "favourable", state changes made events.

The engine calls :meth:`FairnessWatch.on_prediction` after each prediction and
:meth:`FairnessWatch.on_label` when a label is joined; both return the fairness events (a
:class:`~driftline.core.outputs.DriftEvent` of kind ``fairness``, one per state change).
An attribute is read from the model's features (the model sees it), from a field the
privacy policy marks ``protected``, or from the protected side topic
(:mod:`driftline.core.fairness.side`; :meth:`FairnessWatch.on_protected`).

>>> from driftline.config import DeploymentConfig
>>> from driftline.core.engine import Engine
>>> from driftline.core.events import InputRecord
>>> cfg = DeploymentConfig(name="demo", governance={"fairness": {
...     "enabled": True, "attributes": [{"name": "g"}], "metrics": ["selection_rate"], "check_every": 1}})
>>> engine = Engine(cfg)
>>> engine.fairness.favourable
True
>>> out = engine.process(InputRecord("features", 0, 0, 1000, b"e1", b'{"id": "e1", "features": {"g": "a"}}'), now_ms=0)
>>> engine.fairness.monitor.views.sliding["g"]["a"].n
1
"""

from __future__ import annotations

import random
from typing import Any

from driftline.config import FairnessConfig, JoinConfig
from driftline.core.events import InputRecord, decode_protected
from driftline.core.explain.bias import BiasAttribution, fairness_attribution, observe_prediction
from driftline.core.fairness.mitigation import Reweigher, last_step, learn_weighted, takes_weight, thresholds_for
from driftline.core.fairness.monitor import FairnessMonitor, StateChange
from driftline.core.fairness.side import ProtectedSide
from driftline.core.outputs import Output
from driftline.exceptions import BadEventError

__all__ = ["FairnessWatch", "STATES"]

STATES = ("ok", "violation", "insufficient_data")


class FairnessWatch:
    """A :class:`FairnessMonitor` fed by the engine; its state is pickled with the engine."""

    attribution: BiasAttribution | None = None  # core/explain/bias.py (None: pickled before it)
    side: ProtectedSide | None = None  # the protected side topic (None: no attribute comes from it)

    def __init__(self, config: FairnessConfig, classes: tuple[Any, ...], join: JoinConfig | None = None) -> None:
        self.config = config
        self.favourable = config.favourable if config.favourable is not None else (classes[-1] if classes else True)
        self.monitor = FairnessMonitor(config)
        self._warned: set[tuple[str, str]] = set()
        self.reweigher = Reweigher(config.mitigation_window) if config.mitigation == "reweigh" else None
        self.thresholds = thresholds_for(config) if config.mitigation == "group_threshold" else None
        self._rng = random.Random(0)  # Poisson repeats for models without a weight: seeded
        self._weighted: dict[type, bool] = {}  # learn_one takes w? by the type of the (last) estimator
        self.attribution = BiasAttribution()
        if config.side_attributes:
            join = join or JoinConfig()
            self.side = ProtectedSide([a for a in config.attributes if a.source == "protected"],
                                      join.max_age_ms, join.max_pending)

    _memo: tuple[dict[str, Any], tuple[str, ...]] | None = None  # decide's grouping, for on_prediction

    def _keys(self, features: dict[str, Any]) -> tuple[str, ...]:
        """The event's groups; computed once per feature event (decide hands them on)."""
        memo = self._memo
        if memo is not None:
            self._memo = None
            if memo[0] is features:
                return memo[1]
        return self.monitor.grouping.keys(features)

    def _group(self, features: dict[str, Any]) -> str:
        return self.monitor.grouping.keys(features)[0]

    def learn(self, model: Any, features: dict[str, Any], target: Any, label: Any,
              fair: dict[str, Any] | None = None) -> None:
        """Reweighing: the model learns ``features`` with the Kamiran-Calders weight of its group
        (read from ``fair``, the features with the protected groups, when given)."""
        group = self._group(features if fair is None else fair)
        self.reweigher.observe(group, label == self.favourable)
        kind = type(last_step(model))
        if kind not in self._weighted:
            self._weighted[kind] = takes_weight(model)
        learn_weighted(model, features, target, self.reweigher.weight(group, label == self.favourable),
                       self._rng, self._weighted[kind])

    def decide(self, features: dict[str, Any], prediction: Any, proba: dict[Any, float] | None) -> Any:
        """Group thresholds: the favourable outcome when the score passes the group's threshold."""
        if not proba or len(proba) != 2 or self.favourable not in proba:
            return prediction
        other = next(c for c in proba if c != self.favourable)
        keys = self.monitor.grouping.keys(features)
        self._memo = (features, keys)  # on_prediction counts the same event next
        group = keys[0]
        favourable = self.thresholds.decide(group, proba[self.favourable])
        self.thresholds.decided(group, favourable)
        return self.favourable if favourable else other

    def on_prediction(self, engine: Any, features: dict[str, Any], prediction: Any, record: InputRecord,
                      now_ms: int, pending: Any = None) -> list[Output]:
        """Count a prediction; its groups are kept on ``pending`` (the join buffer's entry) for the join."""
        if self.side is not None and not self.side.complete(features):
            self._memo = None
            return []  # counted when its protected record arrives (or as "missing" at the join)
        keys = self._keys(features)
        if pending is not None:
            pending.fairness_keys = keys
        observe_prediction(self, engine, features)
        changes = self.monitor.predicted(features, prediction == self.favourable, record.timestamp, engine.version,
                                         keys)
        return [self._event(engine, c, record, now_ms) for c in changes] if changes else []

    def on_label(self, engine: Any, features: dict[str, Any], prediction: Any, label: Any, predicted_at: int,
                 record: InputRecord, now_ms: int, proba: dict[Any, float] | None = None,
                 keys: tuple[str, ...] | None = None) -> list[Output]:
        """Count a joined label; ``keys``: the groups counted at predict time (None: not counted)."""
        fav = self.favourable
        changes: list[StateChange] = []
        if keys is None:
            keys = self.monitor.grouping.keys(features)
            if self.side is not None and not self.side.complete(features):
                # No protected record before the label: the prediction counts now, in group "missing".
                self.side.unattributed += 1
                changes = self.monitor.predicted(features, prediction == fav, predicted_at, engine.version, keys)
        if self.thresholds is not None and proba:
            self.thresholds.observe(keys[0], proba.get(fav, 0.0), label == fav)
        changes += self.monitor.joined(features, prediction == fav, label == fav,
                                       max(0, record.timestamp - predicted_at), record.timestamp, keys)
        if not changes:
            return []
        out = [self._event(engine, c, record, now_ms) for c in changes]
        return out + self._coverage(engine, record, now_ms)

    def on_protected(self, engine: Any, record: InputRecord, now_ms: int) -> list[Output]:
        """A record of the protected side topic: its groups wait for the features, or complete
        a prediction still waiting for its label (which is counted now)."""
        side = self.side
        if side is None:
            raise BadEventError("unexpected_protected", "no [governance.fairness] attribute has source = \"protected\"")
        event_id, attributes = decode_protected(record.value, engine.schema, engine.config.name)
        groups = side.groups(attributes)
        side.received += 1
        pending = engine.join.peek(event_id)
        if pending is None:
            side.hold(event_id, groups, record.timestamp, max(engine.stream_time, record.timestamp))
            return []
        known = getattr(pending, "protected", None) or {}
        if side.complete(known):
            raise BadEventError("duplicate_protected", f"protected attributes for {event_id!r} were already seen")
        pending.protected = {**known, **groups}
        side.late += 1
        return self.on_prediction(engine, {**pending.features, **pending.protected}, pending.prediction, record,
                                  now_ms, pending)

    def _coverage(self, engine: Any, record: InputRecord, now_ms: int) -> list[Output]:
        """The label-coverage guard: one warning per group that falls below the bound."""
        out = []
        for dimension, groups in self.monitor.low_coverage().items():
            for group, share in groups.items():
                if (dimension, group) in self._warned:
                    continue
                self._warned.add((dimension, group))
                out.append(engine._drift_event(
                    f"fairness-{self.monitor.events}-{dimension}-{group}-coverage", "fairness", "label_coverage",
                    record, now_ms, level="warning", params={"coverage_min": self.config.coverage_min},
                    statistic={"coverage": share}, threshold=self.config.coverage_min,
                    features=dimension.split("&"),
                    evidence={"attribute": dimension, "group": group, "state": "low_coverage"},
                ))
        return out

    def _event(self, engine: Any, change: StateChange, record: InputRecord, now_ms: int) -> Output:
        cfg, mon = self.config, self.monitor
        worst = change.worst
        delays = {g: (c.delay_ms / c.labelled if c.labelled else None)
                  for g, c in sorted(mon.views.cumulative[change.dimension].items())}
        return engine._drift_event(
            f"fairness-{mon.events}-{change.dimension}-{change.metric}", "fairness", change.metric, record, now_ms,
            level=change.state,
            params={"tau": cfg.tau, "alpha": cfg.alpha, "look_alpha": change.look_alpha, "correction": "holm",
                    "min_group": cfg.min_group, "min_denominator": cfg.min_denominator, "window": cfg.window,
                    "check_every": cfg.check_every, "favourable": self.favourable, "reference": change.reference},
            statistic={"ratio": _finite(worst.get("ratio")), "difference": worst.get("difference"),
                       "rate": worst.get("rate"),
                       "reference_rate": next((t.rate for t in change.tests if t.group == change.reference), None)},
            threshold=cfg.tau, p_value=worst.get("p_adjusted"), features=change.dimension.split("&"),
            windows={"fairness": {"view": "sliding", "size": cfg.window, "end": mon.events}},
            evidence={"attribute": change.dimension, "metric": change.metric, "state": change.state,
                      "before": change.before, "reference": change.reference,
                      "test": "two-proportion z, one-sided, Holm across groups and metrics",
                      "worst": worst, "groups": [t.as_dict() for t in change.tests], "counts": change.counts,
                      "label_coverage": change.coverage, "label_delay_ms": delays, "model_version": engine.version,
                      **fairness_attribution(self, change)},
        )

    def gauges(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Prometheus samples (labels, value) by family, for the sliding and cumulative views."""
        mon = self.monitor
        rate, disparity, size, state = [], [], [], []
        for view, dims in (("sliding", mon.views.sliding), ("cumulative", mon.views.cumulative)):
            for dimension, groups in dims.items():
                ref = mon.reference_of(dimension, groups)
                for group, counts in sorted(groups.items()):
                    size.append(({"attribute": dimension, "group": group, "window": view}, float(counts.n)))
                    for metric in self.config.metrics:
                        value = counts.rate(metric)
                        if value is None:
                            continue
                        labels = {"attribute": dimension, "group": group, "metric": metric, "window": view}
                        rate.append((labels, value))
                        ref_value = groups[ref].rate(metric) if ref in groups else None
                        if ref_value:
                            disparity.append((labels, value / ref_value))
        for (dimension, metric), current in sorted(mon.states.items()):
            for name in STATES:
                state.append(({"attribute": dimension, "metric": metric, "state": name}, float(name == current)))
        return {"rate": rate, "disparity": disparity, "group_n": size, "state": state}


def _finite(value: float | None) -> float | None:
    return None if value is None or value == float("inf") else value
