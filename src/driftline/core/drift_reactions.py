"""What the engine publishes when its watches see something: drift events and the
adaptation they trigger (concept drift, the guarded policy's candidate, a background
model's warning, performance rules, a shift of feature importances, data drift).

:class:`DriftReactions` is a base of :class:`~driftline.core.engine.Engine`: its methods
read and update the engine's state (model, detectors, policies, metrics window, history)
and return the outputs; the engine calls them from its train and features stages. Kept
apart so that the record path (core/engine.py) reads in one sitting. No I/O.
"""

from __future__ import annotations

from typing import Any

from driftline.core.events import InputRecord
from driftline.core.outputs import DriftEvent, Output

__all__ = ["DriftReactions"]


class DriftReactions:
    """The drift and monitoring events of an :class:`~driftline.core.engine.Engine`."""


    def _drift_event(self, ident: str, kind: str, detector: str, record: InputRecord, now_ms: int,
                     action: str = "none", metrics_before: dict[str, float] | None = None,
                     **evidence: Any) -> DriftEvent:
        """A drift event; ``metrics_before`` defaults to the last complete metrics window."""
        self.counters.drift_events += 1
        event = DriftEvent(
            id=f"{self.config.name}-{ident}",
            model=self.config.name,
            model_version=self.version,
            drift_kind=kind,
            detector=detector,
            position=self.n_learned,
            event_time=record.timestamp,
            source={"kind": record.kind, "partition": record.partition, "offset": record.offset},
            metrics_before=dict(self._window_before if metrics_before is None else metrics_before),
            metrics_after=self.scores.values(),
            action=action,
            detected_at=now_ms,
            **{"params": {}, "statistic": {}, **evidence},
        )
        self.history.add_event(event.body())
        return event

    def _on_drift(self, detections, record: InputRecord, now_ms: int, before: dict[str, float]) -> list[Output]:
        """Concept drift: publish each detection with its evidence, then adapt."""
        events: list[Output] = []
        if self.minibatch is not None and self.adapt.policy in ("reset", "background"):
            # Before a new model replaces it, the model in service learns the buffer, as one at a
            # time it would have: the drift position and a warm start see every example joined so far.
            self._learn_batch(record, events)
        model, action = self.adapt.on_drift(self.model, detections, self.n_learned)
        started = {"candidate": dict(self.adapt.guard.origin)} if action == "candidate_start" else {}
        events += [
            self._drift_event(
                f"drift-{self.n_learned}-{det.detector}", "concept", det.detector, record, now_ms, action, before,
                params=det.params, statistic=det.statistic, threshold=det.threshold,
                settings=det.settings, input=det.input,
                evidence={**det.evidence, "configured": det.configured, **started},
            )
            for det in detections
        ]
        if model is not self.model:
            self._serve(model)
        if self.config.checkpoint.on_drift:
            self.checkpoint_due = self.checkpoint_due or "drift"
        return events

    def _serve(self, model: Any) -> None:
        """A new model serves: the error detectors and performance rules start over."""
        self.model = model
        self.watch.reset()
        if self.perf is not None:
            self.perf.rebase()

    def _on_candidate(self, decision: str, record: InputRecord, now_ms: int) -> DriftEvent:
        """Guarded policy: the candidate won its paired test (it serves now) or ran out of time,
        or the anchor won its own (it serves again)."""
        guard = self.adapt.guard
        model, evidence = guard.finish(decision, self.model)
        if model is not None:
            self._serve(model)
            if self.config.checkpoint.on_drift:
                self.checkpoint_due = self.checkpoint_due or "drift"
        test = evidence["test"]
        return self._drift_event(
            f"candidate-{decision}-{self.n_learned}", "concept", guard.origin.get("detector", ""), record, now_ms,
            "anchor_restore" if decision == "restore" else f"candidate_{decision}", params=guard.config.model_dump(),
            statistic={k: float(v) for k, v in test.items()}, threshold=guard.config.alpha,
            p_value=test.get("p_value"), evidence=evidence,
        )

    def _on_warning(self, record: InputRecord, now_ms: int) -> list[Output]:
        """Background policy: a detector entered its warning zone; a background model starts."""
        if not self.adapt.start_background(self.model, self.n_learned):
            return []
        names = self.watch.warnings()
        return [self._drift_event(
            f"warning-{self.n_learned}-{names[0]}", "concept", names[0], record, now_ms, "background_start",
            level="warning", features=[], evidence={"detectors_in_warning": names},
        )]

    def _on_performance(self, record: InputRecord, now_ms: int) -> list[Output]:
        """Performance rules, checked at the end of each metrics window."""
        window = self.config.drift.metrics_window
        events: list[Output] = []
        for alert in self.perf.check(self._window_before):
            rule = alert.rule
            bound = alert.low if alert.value < (alert.low if alert.low is not None else alert.value) else alert.high
            events.append(self._drift_event(
                f"performance-{self.n_learned}-{rule.metric}", "performance", f"{rule.metric}:{alert.reason}",
                record, now_ms,
                params=rule.model_dump(exclude_none=True),
                statistic={"value": alert.value, **({"low": alert.low} if alert.low is not None else {}),
                           **({"high": alert.high} if alert.high is not None else {})},
                threshold=bound,
                windows={"metric": {"size": window, "start": self.scores.n - window, "end": self.scores.n}},
                evidence={"reference_values": alert.reference},
            ))
        return events

    def _on_importance(self, record: InputRecord, now_ms: int) -> list[Output]:
        """Has the ranking of feature importances (any family) shifted since the reference?"""
        shift = self.importance.check(self.model, self.feature_importances())
        if shift is None:
            return []
        tau, reference, current = shift
        rank = sorted(current, key=current.get, reverse=True)
        moved = [n for i, n in enumerate(rank) if sorted(reference, key=reference.get, reverse=True).index(n) != i] \
            if set(rank) == set(reference) else rank
        return [self._drift_event(
            f"importance-{self.n_learned}", "importance", "kendall_tau", record, now_ms,
            params={"min_tau": self.importance.min_tau, "warmup": self.importance.warmup},
            statistic={"tau": tau}, threshold=self.importance.min_tau, features=moved,
            evidence={"reference": reference, "current": current},
        )]

    def _on_data(self, features: dict[str, Any], record: InputRecord, now_ms: int, out: list[Output]) -> None:
        """Data drift: feed the feature event to the per-feature window tests."""
        watch = self.data_watch
        if self.version != self._data_version:
            self._data_version = self.version
            if self.config.drift.data.rebase_on_version:
                watch.rebase()
        result = watch.observe(features, record)
        if watch.evaluations != self._evaluations:
            self._evaluations = watch.evaluations
            self.history.add_window(watch.seen, self.version, watch.last)
        if result is None:
            return
        cfg = self.config.drift.data
        tests = sorted({result.tests[n]["test"] for n in result.drifting})
        out.append(self._drift_event(
            f"data-{watch.seen}", "data", "+".join(tests), record, now_ms,
            params=cfg.model_dump(exclude={"enabled"}),
            statistic={"share": result.share, "features_drifting": float(len(result.drifting)),
                       "features_tested": float(result.evaluated)},
            threshold=cfg.alpha, p_value=result.min_p_adjusted, features=result.drifting,
            windows={"reference": result.reference, "current": result.current},
            evidence={"dataset_drift": result.dataset_drift, "newly_drifting": result.newly,
                      "tests": {n: result.tests[n] for n in result.drifting}},
        ))
