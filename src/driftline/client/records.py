"""Typed records of the topics Driftline writes, as a consumer reads them.

One frozen dataclass per body schema of ``docs/schemas/``: the schema's required members
are required fields, its optional members have defaults, and members the class does not
know (added later: consumers must ignore them) stay available in ``body``. A unit test
checks the fields against the schemas, so the classes cannot drift from the contract.
:class:`Record` is the envelope: coordinates, key, timestamp, headers and ``ce_id``.

>>> p = Prediction.from_body({"id": "e1", "model": "elec", "model_version": 3, "model_examples": 120,
...                           "prediction": 1, "proba": {"0": 0.3, "1": 0.7}, "event_time": 100,
...                           "predicted_at": 105, "new_member": "ignored"})
>>> p.prediction, p.proba["1"], p.variant, p.body["new_member"]
(1, 0.7, 'champion', 'ignored')
>>> Prediction.from_body({"id": "e1"})
Traceback (most recent call last):
...
driftline.exceptions.RecordFormatError: prediction body lacks model, model_version, model_examples, prediction, proba, event_time, predicted_at
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from driftline.exceptions import RecordFormatError

__all__ = ["Prediction", "DriftEvent", "VersionAnnouncement", "GlobalRelease", "Heartbeat", "LifecycleRecord",
           "Record", "RECORD_TYPES", "parse_body"]

T = TypeVar("T")


class _Body:
    """``from_body``: the known members as fields, the whole body kept in ``body``."""

    schema: ClassVar[str]

    @classmethod
    def from_body(cls, body: Any):
        if not isinstance(body, dict):
            raise RecordFormatError(f"{cls.schema} body is not a JSON object")
        known = [f for f in dataclasses.fields(cls) if f.name != "body"]  # type: ignore[arg-type]
        required = [f.name for f in known
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in body]
        if missing:
            raise RecordFormatError(f"{cls.schema} body lacks {', '.join(missing)}")
        return cls(**{f.name: body[f.name] for f in known if f.name in body}, body=body)  # type: ignore[call-arg]


@dataclass(frozen=True)
class Prediction(_Body):
    """A record of ``.predictions`` (and ``.shadow``): ``docs/schemas/prediction.schema.json``.

    ``proba`` keys are strings (JSON object keys): ``"1"``, ``"true"``, ``"UP"``.
    """

    schema: ClassVar[str] = "prediction"
    id: str
    model: str
    model_version: int
    model_examples: int
    prediction: Any
    proba: dict[str, float] | None
    event_time: int
    predicted_at: int
    variant: str = "champion"
    # [governance.explain]: the top contributions and reason codes (docs/governance-explain.md)
    explanation: dict[str, Any] | None = None
    key: str | None = None  # keyed mode: the entity key whose model made it
    stale: bool = False  # global mode, bounded: served by the newest release after max_wait_ms
    staleness_ms: int | None = None  # global mode, latest: event_time minus its release's watermark
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class DriftEvent(_Body):
    """A record of ``.drift``: ``docs/schemas/drift.schema.json``."""

    schema: ClassVar[str] = "drift"
    id: str
    kind: str
    model: str
    model_version: int
    detector: str
    params: dict[str, Any]
    statistic: dict[str, float | None]
    position: int
    event_time: int
    source: dict[str, Any]
    metrics_before: dict[str, float | None]
    metrics_after: dict[str, float | None]
    action: str
    detected_at: int
    level: str = "drift"
    threshold: float | None = None
    p_value: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    input: str | None = None
    features: list[str] = field(default_factory=list)
    windows: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    key: str | None = None  # keyed mode: the entity key whose detectors fired
    served: dict[str, Any] | None = None  # global mode: a predictor's served drift {instance, partition}
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class VersionAnnouncement(_Body):
    """A record of ``.versions`` (compacted, key = the version number): ``docs/schemas/version.schema.json``."""

    schema: ClassVar[str] = "version"
    name: str
    version: int
    parent: int | None
    created_at: int
    trigger: str
    examples_seen: int
    positions: dict[str, int]
    offset_range: dict[str, list[int]]
    event_time_range: list[int]
    params: dict[str, Any]
    metrics: dict[str, float | None]
    counters: dict[str, int]
    payload_bytes: int
    payload_sha256: str
    model_class: str | None = None
    driftline_version: str | None = None
    # Only under a fairness mitigation: {policy, attribute, disparate_treatment} (docs/governance.md#mitigation).
    mitigation: dict[str, Any] | None = None
    # How late labels came: {labels, mean_ms, max_ms, p50_ms, p90_ms} (core/label_delay.py).
    label_delay: dict[str, Any] | None = None
    # Only with fairness monitoring: per-group counts and rates with intervals (core/fairness/summary.py).
    fairness: dict[str, Any] | None = None
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class GlobalRelease(_Body):
    """A global-mode release on ``.versions`` (key = the version number): the model predictors
    serve, sealed inline (``inline``, base64) or in the release store (``store``).

    >>> r = GlobalRelease.from_body({"model": "fraud", "version": 4, "watermark": 1700000000000,
    ...                              "examples": 4000, "model_class": "Pipeline", "metrics": {"accuracy": 0.9},
    ...                              "position": {"source": "labels:0", "offset": 3999}, "sha256": "0" * 64,
    ...                              "bytes": 812, "created_at": 1700000000100, "inline": "AA=="})
    >>> r.version, r.watermark, r.store is None
    (4, 1700000000000, True)
    """

    schema: ClassVar[str] = "version"
    model: str
    version: int
    watermark: int
    examples: int
    model_class: str
    metrics: dict[str, float | None]
    position: dict[str, Any]
    sha256: str
    bytes: int
    created_at: int
    inline: str | None = None
    store: str | None = None
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Heartbeat(_Body):
    """A global-mode heartbeat on ``.versions`` (key ``heartbeat``): the trainer's watermark
    between releases; ``version`` is the latest release (0 before the first); ``signature``
    the trainer's HMAC of them (``driftline.versions.signing.heartbeat_verifies``)."""

    schema: ClassVar[str] = "version"
    model: str
    heartbeat: bool
    watermark: int
    version: int
    created_at: int
    signature: str
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class LifecycleRecord(_Body):
    """A record of ``.lifecycle`` (the audit trail): ``docs/schemas/lifecycle.schema.json``."""

    schema: ClassVar[str] = "lifecycle"
    id: str
    model: str
    action: str
    actor: str
    reason: str
    model_version: int
    details: dict[str, Any]
    at: int
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


# Topic kind -> record type, for the topics :class:`~driftline.client.Reader` reads.
RECORD_TYPES: dict[str, type] = {"predictions": Prediction, "shadow": Prediction, "drift": DriftEvent,
                                 "versions": VersionAnnouncement, "lifecycle": LifecycleRecord}


def parse_body(kind: str, body: Any) -> Any:
    """The typed value of a body read from the topic ``kind``. ``.versions`` holds three
    bodies (docs/schemas/version.schema.json): a heartbeat (``"heartbeat": true``), a global
    release (has a ``watermark``) or a snapshot version.

    >>> parse_body("versions", {"model": "m", "heartbeat": True, "watermark": 9, "version": 0, "created_at": 10,
    ...                         "signature": "5e" * 32}).watermark
    9
    """
    if kind == "versions" and isinstance(body, dict):
        if body.get("heartbeat") is True:
            return Heartbeat.from_body(body)
        if "watermark" in body:
            return GlobalRelease.from_body(body)
    return RECORD_TYPES[kind].from_body(body)


@dataclass(frozen=True)
class Record(Generic[T]):
    """One message as read: where it is, its CloudEvents id and its typed value.

    ``headers`` are decoded as UTF-8 (docs/events.md: header values are UTF-8 strings).
    """

    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp: int
    headers: dict[str, str]
    value: T

    @property
    def ce_id(self) -> str | None:
        """The CloudEvents id: the same when an output is published again (at-least-once)."""
        return self.headers.get("ce_id")
