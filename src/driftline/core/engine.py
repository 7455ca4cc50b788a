"""The engine: predict, join and train stages over decoded records, with no I/O.

One :class:`Engine` holds all the learned state of a deployment (model, metrics, drift
detectors, join buffer, counters), so pickling it is a complete checkpoint. Records must
be fed in a deterministic order (see :mod:`driftline.core.ordering`); the same records
in the same order always give the same outputs and the same model.

>>> from driftline.config import DeploymentConfig
>>> from driftline.core.events import InputRecord
>>> engine = Engine(DeploymentConfig(name="demo"))
>>> out = engine.process(InputRecord("features", 0, 0, 1000, b"e1", b'{"id": "e1", "features": {"x": 1.0}}'), now_ms=0)
>>> out[0].prediction, out[0].model_version
(False, 0)
>>> engine.process(InputRecord("labels", 0, 0, 1010, b"e1", b'{"id": "e1", "label": true}'), now_ms=0)
[]
>>> engine.n_learned, engine.scores.values()["accuracy"]
(1, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from river import base

from driftline.config import DeploymentConfig
from driftline.core.detectors import ErrorWatch
from driftline.core.events import EventSchema, InputRecord, decode_features, decode_label
from driftline.core.join import JoinBuffer, OrphanLabel, Pending
from driftline.core.models import build_model, task_of
from driftline.core.outputs import DeadLetter, DriftEvent, Output, Prediction
from driftline.core.scoring import OnlineScores, error_of
from driftline.exceptions import BadEventError

__all__ = ["Engine", "Counters"]


@dataclass
class Counters:
    features: int = 0
    labels: int = 0
    predictions: int = 0
    joined: int = 0
    expired_features: int = 0
    expired_labels: int = 0
    dead_letters: int = 0
    drift_events: int = 0


class Engine:
    """All the learned state of one deployment, updated one record at a time."""

    # Challengers (core/arena.py); None keeps the hot path free of them. A class attribute
    # so that engines pickled before the arena existed restore without one.
    arena: Any = None

    def __init__(self, config: DeploymentConfig) -> None:
        self.config = config
        self.model: base.Estimator = build_model(config.model)
        self.task = config.model.task or task_of(self.model)
        self.schema = EventSchema(
            features=dict(config.model.features),
            classes=tuple(config.model.classes),
            task=self.task,
            max_bytes=config.processor.max_message_bytes,
        )
        self.scores = OnlineScores(self.task, config.drift.metrics_window, self.schema.classes)
        self.watch = ErrorWatch(config.drift.detectors, self.task)
        self.join = JoinBuffer(config.join.max_age_ms, config.join.max_pending)
        self.counters = Counters()
        self.version = 0
        self.n_learned = 0
        self.stream_time = 0
        self.checkpoint_due: str | None = None
        self._window_before: dict[str, float] = {}
        # A binary-only model (e.g. logistic regression) learns "is it the last class?" and
        # its True/False answers are mapped back to the configured classes.
        classes = self.schema.classes
        self._binary_codec = (
            self.task == "classification" and len(classes) == 2
            and not getattr(self.model, "_multiclass", True) and not all(type(c) is bool for c in classes)
        )
        if config.lifecycle.challengers:
            from driftline.core.arena import Arena

            self.arena = Arena.from_config(self, config)

    def install_champion(self, model: base.Estimator) -> None:
        """Serve (and keep training) ``model`` from now on: a promotion or a blue/green swap."""
        from driftline.core.arena import binary_codec

        self.model = model
        self._binary_codec = binary_codec(self.task, self.schema.classes, model)
        self.watch.reset()

    # -- the three stages ------------------------------------------------------------

    def predict(self, features: dict[str, Any]) -> tuple[Any, dict[Any, float] | None]:
        """Stage 1: the current model's prediction (and class probabilities)."""
        try:
            if self.task == "classification":
                proba = self.model.predict_proba_one(features)
                if self._binary_codec and proba:
                    negative, positive = self.schema.classes
                    proba = {negative: proba.get(False, 0.0), positive: proba.get(True, 0.0)}
                return (max(proba, key=proba.get) if proba else None), proba
            return self.model.predict_one(features), None
        except Exception as exc:  # noqa: BLE001 - any model failure is this input's fault
            raise BadEventError("model_error", f"predict failed: {exc!r}") from exc

    def train(self, pending: Pending, label: Any, record: InputRecord, now_ms: int) -> list[Output]:
        """Stage 3: score the stored prediction, watch the error, then learn.

        ``record`` is the label's record: if the model cannot learn the example, the label
        goes to the dead-letter topic and everything else stands.
        """
        out: list[Output] = []
        scores = self.scores
        if pending.prediction is not None:
            scores.update(label, pending.prediction, pending.proba)
            if scores.n % self.config.drift.metrics_window == 0:
                self._window_before = scores.values()
            error = error_of(self.task, label, pending.prediction)
            detections = self.watch.update(error)
            if detections:
                out.extend(self._on_drift(detections, record, now_ms))
        target = label == self.schema.classes[-1] if self._binary_codec else label
        try:
            self.model.learn_one(pending.features, target)
        except Exception as exc:  # noqa: BLE001 - never let one example stop the stream
            self.counters.dead_letters += 1
            out.append(DeadLetter(record, "model_error", f"learn failed: {exc!r}"))
            return out
        self.n_learned += 1
        self.counters.joined += 1
        return out

    # -- records -----------------------------------------------------------------------

    def process(self, record: InputRecord, now_ms: int) -> list[Output]:
        """Handle one input record; return what must be published for it."""
        try:
            if record.kind == "features":
                out = self._on_features(record, now_ms)
            else:
                out = self._on_label(record, now_ms)
            # Only valid records move event time (a bad record's timestamp is not trusted).
            self.stream_time = max(self.stream_time, record.timestamp)
        except BadEventError as exc:
            self.counters.dead_letters += 1
            out = [DeadLetter(record, exc.reason, exc.detail)]
        expired = self.join.expire(self.stream_time)
        if expired is not None:
            self.counters.expired_features += expired.features
            self.counters.expired_labels += len(expired.labels)
            for orphan in expired.labels:
                if orphan.record is not None:
                    self.counters.dead_letters += 1
                    out.append(DeadLetter(orphan.record, "label_without_features", "no features arrived within the join window"))
        return out

    def _on_features(self, record: InputRecord, now_ms: int) -> list[Output]:
        event = decode_features(record.value, self.schema, self.config.name)
        self.counters.features += 1
        prediction, proba = self.predict(event.features)
        pending = Pending(event.features, prediction, proba, self.version, record.timestamp)
        waiting = self.join.add_features(event.id, pending)
        self.counters.predictions += 1
        out: list[Output] = [
            Prediction(
                event.id, self.config.name, self.version, self.n_learned,
                prediction, proba, record.timestamp, now_ms,
            )
        ]
        if self.arena is not None:
            self.arena.on_features(self, event.id, event.features, out, record.timestamp)
        if waiting is not None:
            out.extend(self.train(pending, waiting.label, waiting.record or record, now_ms))
            if self.arena is not None:
                out.extend(self.arena.on_label(self, event.id, pending, waiting.label, now_ms))
        return out

    def _on_label(self, record: InputRecord, now_ms: int) -> list[Output]:
        event = decode_label(record.value, self.schema, self.config.name)
        self.counters.labels += 1
        pending = self.join.add_label(event.id, OrphanLabel(event.label, record.timestamp, record))
        if pending is None:
            return []
        if self.arena is not None:
            return self.train(pending, event.label, record, now_ms) + self.arena.on_label(
                self, event.id, pending, event.label, now_ms)
        return self.train(pending, event.label, record, now_ms)

    # -- drift -------------------------------------------------------------------------

    def _on_drift(self, detections, record: InputRecord, now_ms: int) -> list[Output]:
        policy = self.config.drift.policy
        after = self.scores.values()
        events: list[Output] = []
        for det in detections:
            self.counters.drift_events += 1
            events.append(
                DriftEvent(
                    id=f"{self.config.name}-drift-{self.n_learned}-{det.detector}",
                    model=self.config.name,
                    model_version=self.version,
                    drift_kind="concept",
                    detector=det.detector,
                    params=det.params,
                    statistic=det.statistic,
                    position=self.n_learned,
                    event_time=record.timestamp,
                    source={"kind": record.kind, "partition": record.partition, "offset": record.offset},
                    metrics_before=dict(self._window_before),
                    metrics_after=after,
                    action=policy,
                    detected_at=now_ms,
                )
            )
        if policy == "reset":
            self.model = self.model.clone()
            self.watch.reset()
        if self.config.checkpoint.on_drift:
            self.checkpoint_due = "drift"
        return events
