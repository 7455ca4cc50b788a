"""What the engine emits: predictions, drift events and dead letters (no Kafka types).

The runtime turns each into a message on the matching topic; ``key`` and ``body``
are exactly what goes on the wire (see ``docs/events.md``).

>>> p = Prediction("e1", "elec", 3, 120, True, {True: 0.7, False: 0.3}, 100, 105)
>>> p.body()["proba"]
{'true': 0.7, 'false': 0.3}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from driftline.core.events import InputRecord

__all__ = ["Prediction", "DriftEvent", "DeadLetter", "ShadowPrediction", "LifecycleEvent", "Output", "json_key"]


def json_key(value: Any) -> str:
    """JSON object keys must be strings: ``True`` -> ``'true'``, ``3`` -> ``'3'``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(slots=True)  # made once per event: a frozen init costs 4x
class Prediction:
    id: str
    model: str
    model_version: int
    model_examples: int
    prediction: Any
    proba: dict[Any, float] | None
    event_time: int
    predicted_at: int
    variant: str = "champion"  # who served it: the champion or a challenger's name (canary)
    explanation: dict[str, Any] | None = None  # [governance.explain]: contributions, reason codes
    key: str | None = None  # keyed mode: the entity key whose model predicted (core/keyed.py)
    kind: str = field(default="prediction", init=False)

    def body(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "model": self.model,
            "model_version": self.model_version,
            "model_examples": self.model_examples,
            "prediction": self.prediction,
            "proba": None if self.proba is None else {json_key(k): v for k, v in self.proba.items()},
            "event_time": self.event_time,
            "predicted_at": self.predicted_at,
            "variant": self.variant,
        }
        if self.explanation is not None:
            body["explanation"] = self.explanation
        if self.key is not None:  # single mode: the body stays as it always was
            body["key"] = self.key
        return body


@dataclass(frozen=True, slots=True)
class DriftEvent:
    id: str
    model: str
    model_version: int
    drift_kind: str
    detector: str
    params: dict[str, Any]
    statistic: dict[str, float]
    position: int
    event_time: int
    source: dict[str, Any]
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    action: str
    detected_at: int
    # Evidence added with data, performance and importance drift (defaults keep old callers valid).
    level: str = "drift"  # "warning": a warning zone was entered (background policy); "drift"
    threshold: float | None = None
    p_value: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # every parameter the detector ran with
    input: str | None = None  # what a concept detector was fed: error, 1-error or loss
    features: list[str] = field(default_factory=list)
    windows: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    key: str | None = None  # keyed mode: the entity key whose model drifted (core/keyed.py)
    # Global mode: a predictor's watch on what it served fired ({instance, partition}; core/served.py)
    served: dict[str, Any] | None = None
    kind: str = field(default="drift", init=False)

    def body(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "kind": self.drift_kind,
            "level": self.level,
            "model": self.model,
            "model_version": self.model_version,
            "detector": self.detector,
            "params": self.params,
            "statistic": self.statistic,
            "position": self.position,
            "event_time": self.event_time,
            "source": self.source,
            "metrics_before": self.metrics_before,
            "metrics_after": self.metrics_after,
            "action": self.action,
            "detected_at": self.detected_at,
            "threshold": self.threshold,
            "p_value": self.p_value,
            "settings": self.settings,
            "input": self.input,
            "features": self.features,
            "windows": self.windows,
            "evidence": self.evidence,
        }
        if self.key is not None:
            body["key"] = self.key
        if self.served is not None:
            body["served"] = self.served
        return body


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected input: the original bytes travel unchanged, the reason in headers."""

    record: InputRecord
    reason: str
    detail: str
    kind: str = field(default="dlq", init=False)


@dataclass(frozen=True, slots=True)
class ShadowPrediction:
    """The prediction of a variant that did not serve the event (goes to ``.shadow``)."""

    prediction: Prediction
    kind: str = field(default="shadow", init=False)


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """A promotion, rollback, alias move, reset or deletion (goes to ``.lifecycle``)."""

    id: str
    model: str
    action: str
    actor: str
    reason: str
    model_version: int
    details: dict[str, Any]
    at: int
    kind: str = field(default="lifecycle", init=False)

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "action": self.action,
            "actor": self.actor,
            "reason": self.reason,
            "model_version": self.model_version,
            "details": self.details,
            "at": self.at,
        }


Output = Prediction | DriftEvent | DeadLetter | ShadowPrediction | LifecycleEvent
