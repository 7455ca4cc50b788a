"""The output collector: every output kind to its topic, key, value and headers.

Outputs are the engine's plain dataclasses (core/outputs.py); the wire format is
``docs/events.md``: a JSON body and CloudEvents binary-mode headers (``ce_*``), then
Driftline's own (``dl_*``), with ``dl_model_version`` last. Messages go to Kafka through
a sink, the unit of work's ``produce`` (runtime/unit_of_work.py), which counts them.

Outputs of records below the committed offsets (a replay after a restart) are not sent
again, only counted (:meth:`OutputCollector.count`), so metrics and the dead-letter warning
see every record once per run.
"""

from __future__ import annotations

import collections
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from driftline.config import DeploymentConfig
from driftline.core.privacy import policy_for
from driftline.core.outputs import DeadLetter, DriftEvent, LifecycleEvent, Output, Prediction, ShadowPrediction
from driftline.observability.metrics import ProcessorMetrics

__all__ = ["OutputCollector", "ce_headers", "ce_time"]

log = logging.getLogger("driftline.processor")
# The dl_redacted note of a dead-lettered record of the protected side topic: its body is withheld.
PROTECTED_WITHHELD = "<protected record withheld>"

# What a drift event's log line says (docs/schemas/drift-event.schema.json has the whole event).
_DRIFT_LOGGED = ("id", "model", "model_version", "drift_kind", "detector", "level", "action", "position",
                 "features", "p_value")

Sink = Callable[[str, "bytes | None", bytes, "list[tuple[str, bytes]]"], None]


@functools.lru_cache(maxsize=64)
def _version_bytes(version: int) -> bytes:
    return str(version).encode()


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def ce_time(now_ms: int) -> bytes:
    """RFC 3339 UTC with milliseconds (made once per batch, from integers: no float rounding).

    >>> ce_time(1795839025006)
    b'2026-11-28T04:10:25.006Z'
    """
    return f"{_utc_second(now_ms // 1000)}.{now_ms % 1000:03d}Z".encode()


def ce_headers(kind: str, ce_id: str, model: str, version: int, now_ms: int) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers; ``dl_model_version`` comes last.

    >>> [k for k, _ in ce_headers("drift", "elec/d1", "elec", 3, 0)]
    ['ce_specversion', 'ce_id', 'ce_type', 'ce_source', 'ce_time', 'content-type', 'dl_model', 'dl_model_version']
    """
    return [
        ("ce_specversion", b"1.0"),
        *([("ce_id", ce_id.encode())] if ce_id else []),
        ("ce_type", f"io.driftline.{kind}".encode()),
        ("ce_source", f"driftline/{model}".encode()),
        ("ce_time", ce_time(now_ms)),
        ("content-type", b"application/json"),
        ("dl_model", model.encode()),
        ("dl_model_version", str(version).encode()),
    ]


class OutputCollector:
    """Serialises outputs onto their topics and counts them.

    ``progress`` returns predictions made plus examples learned so far: dead letters with
    no progress in between are "in a row" (see :meth:`count`). ``on_lifecycle`` is called
    with the body of every lifecycle event sent (the registry records it).
    """

    def __init__(self, config: DeploymentConfig, metrics: ProcessorMetrics, sink: Sink,
                 progress: Callable[[], int] = lambda: 0,
                 on_lifecycle: Callable[[dict[str, Any]], None] = lambda body: None) -> None:
        self.config = config
        self.topics = config.topics
        self.metrics = metrics
        self.sink = sink
        self.progress = progress
        self.on_lifecycle = on_lifecycle
        # Called with every lifecycle event sent and its body, inside the same unit of work
        # (the lifecycle runtime adds the event's audit entry).
        self.on_lifecycle_sent: Callable[[LifecycleEvent, dict[str, Any]], None] = lambda event, body: None
        self.dead_letters: collections.Counter[str] = collections.Counter()  # this run's, by reason
        self._dl_streak = 0
        self._dl_progress = -1
        self._batch_headers: list[tuple[str, bytes]] = []
        # The W3C context of the traced input whose outputs are being sent (runtime/tracing.py),
        # inserted before dl_model_version; None for untraced inputs (the usual case).
        self.trace_headers: list[tuple[str, bytes]] | None = None
        self._n_predictions = 0
        self._predictions_out = metrics.events_out.labels(config.name, "predictions")
        # Dead letters keep a redacted body ([governance.privacy], core/privacy.py) unless dlq_raw.
        privacy = config.governance.privacy
        self._privacy = policy_for(config) if privacy.active and not privacy.dlq_raw else None
        # Called with every drift event sent, inside the same unit of work (the lifecycle
        # runtime adds an audit entry for fairness state changes and model changes).
        self.on_drift_sent: Callable[[DriftEvent, dict[str, Any]], None] = lambda event, body: None
        # Senders of output kinds a runtime adds (global mode's model releases: runtime/trainer.py).
        self.handlers: dict[type, Callable[[Any, int], None]] = {}

    def begin_batch(self, now_ms: int) -> None:
        """Headers shared by the predictions of one batch (made once: the hot path)."""
        self._batch_headers = ce_headers("prediction", "", self.config.name, 0, now_ms)[:-1]

    def end_batch(self) -> None:
        self._predictions_out.inc(self._n_predictions)
        self._n_predictions = 0

    # -- sending ---------------------------------------------------------------------------

    def emit(self, output: Output, now_ms: int) -> None:
        """Send one output (live: at or past the committed offsets)."""
        model = self.config.name
        if type(output) is Prediction:  # the hot path: one per feature event
            ce_id = f"{model}/{output.id}".encode()  # docs/events.md: <model>/<event id>
            headers = [*self._batch_headers, ("ce_id", ce_id), ("dl_model_version", _version_bytes(output.model_version))]
            if self.trace_headers:
                headers[-1:-1] = self.trace_headers
            self.sink(self.topics.predictions, output.id.encode(), orjson.dumps(output.body()), headers)
            self._n_predictions += 1
            return
        if type(output) is ShadowPrediction:
            pred = output.prediction
            headers = ce_headers("shadow", f"{pred.id}/{pred.variant}", model, pred.model_version, pred.predicted_at)
            headers.insert(-1, ("dl_variant", pred.variant.encode()))  # dl_model_version stays last
            self.sink(self.topics.shadow, pred.id.encode(), orjson.dumps(pred.body()), headers)
            return
        if type(output) is LifecycleEvent:
            self.lifecycle(output)
            return
        if (handler := self.handlers.get(type(output))) is not None:
            handler(output, now_ms)
            return
        self.count(output)
        if isinstance(output, DriftEvent):
            headers = ce_headers("drift", output.id, model, output.model_version, now_ms)
            if self.trace_headers:
                headers[-1:-1] = self.trace_headers
            body = output.body()
            value = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
            self.sink(self.topics.drift, output.id.encode(), value, headers)
            self.on_drift_sent(output, body)
            self.metrics.events_out.labels(model, "drift").inc()
            # Names and numbers only: the evidence (data drift's categories, fairness's groups)
            # holds feature values, which logs never carry; the event is on .drift.
            log.info("drift detected", extra={"fields": {k: body.get(k) for k in _DRIFT_LOGGED}})
        elif isinstance(output, DeadLetter):
            rec = output.record
            headers = [
                ("dl_reason", output.reason.encode()),
                ("dl_detail", output.detail[:1000].encode()),
                ("dl_topic", getattr(self.topics, rec.kind).encode()),
                ("dl_partition", str(rec.partition).encode()),
                ("dl_offset", str(rec.offset).encode()),
                ("dl_timestamp", str(rec.timestamp).encode()),
                *(self.trace_headers or ()),
            ]
            value = rec.value
            if rec.kind == "protected" and not self.config.governance.privacy.dlq_raw:
                value = None  # protected attributes never reach the DLQ unless dlq_raw
                headers.append(("dl_redacted", PROTECTED_WITHHELD.encode()))
            elif self._privacy is not None:
                value, redacted = self._privacy.redact(value)
                if redacted:
                    headers.append(("dl_redacted", ",".join(redacted).encode()))
            self.sink(self.topics.dlq, rec.key, value, headers)
            self.metrics.events_out.labels(model, "dlq").inc()

    def lifecycle(self, event: LifecycleEvent, record: bool = True) -> None:
        """Send a lifecycle event (inside the open unit of work) and, with ``record``, hand
        it to the registry at once (a command records it only after its commit)."""
        body = event.body()
        self.sink(self.topics.lifecycle, event.id.encode(), orjson.dumps(body, default=str),
                  ce_headers("lifecycle", event.id, self.config.name, event.model_version, event.at))
        self.on_lifecycle_sent(event, body)
        if record:
            self.recorded(event)

    def recorded(self, event: LifecycleEvent) -> None:
        body = event.body()
        self.on_lifecycle(body)
        log.info("lifecycle event", extra={"fields": {k: body[k] for k in ("id", "action", "actor")}})

    def version(self, meta: dict[str, Any], now_ms: int) -> None:
        """A version's metadata on the compacted ``.versions`` topic (idempotent by key)."""
        model = self.config.name
        headers = ce_headers("version", f"{model}/v{meta['version']}", model, meta["version"], now_ms)
        self.sink(self.topics.versions, str(meta["version"]).encode(), orjson.dumps(meta), headers)

    # -- counting ----------------------------------------------------------------------------

    def count(self, output: Output) -> None:
        """Count an output in the metrics (also the replayed ones, which are not sent)."""
        if isinstance(output, DeadLetter):
            self.metrics.dead_letters.labels(self.config.name, output.reason).inc()
            self._dead_lettered(output)
        elif isinstance(output, DriftEvent):
            self.metrics.drift_events.labels(self.config.name, output.drift_kind, output.detector).inc()

    def _dead_lettered(self, output: DeadLetter) -> None:
        """Count a dead letter; warn when they come in a row (N, 10 N, 100 N, ...).

        In a row: no prediction made and no example learned since the previous one, which is
        what input that does not match the deployment's schema looks like.
        """
        self.dead_letters[output.reason] += 1
        progress = self.progress()
        if progress != self._dl_progress:
            self._dl_progress, self._dl_streak = progress, 0
        self._dl_streak += 1
        n = self.config.processor.dead_letter_warn_after
        streak = self._dl_streak
        if streak >= n and streak % n == 0 and str(streak // n).strip("0") == "1":
            log.warning(
                f"{streak} dead letters in a row, nothing predicted or learned in between: the input does not "
                f"match the deployment's schema? ([model] features and classes; `driftline tail dlq` shows why)",
                # Not the detail: it may quote a value (out_of_range, unknown_class); the DLQ has it.
                extra={"fields": {"model": self.config.name, "in_a_row": streak, "reason": output.reason,
                                  "topic": self.topics.dlq}},
            )
