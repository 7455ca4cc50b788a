"""Publish feature and label events the way a deployment expects them.

A :class:`Publisher` gets right by construction what a hand-written producer can silently
get wrong (docs/clients.md): the key is the event id, the partitioner is Java's
(``murmur2_random``, so ids land where a Java producer would put them), the record
timestamp is the event time, set explicitly on every record, and the body has the shape of
``docs/schemas/features.schema.json`` and ``labels.schema.json``. With ``validate`` it
refuses, before sending, an event the processor would dead-letter (``[model] features``,
``classes``). Records are batched by librdkafka (``linger.ms`` 20, ``acks=all``, the
idempotent producer); :meth:`Publisher.flush` waits for every acknowledgement and raises
:class:`~driftline.exceptions.DeliveryError` when any was refused or missing. Leaving the
``with`` block flushes; a publisher never closed is flushed when it is collected or the
interpreter exits (its errors are then only logged).

Nothing connects until the first record (or :meth:`Publisher.open`):

>>> from driftline.config import load_config
>>> config = load_config(name="elec", model={"features": {"price": "num"}, "classes": [0, 1]})
>>> publisher = Publisher(config)
>>> publisher.features("e1", {"price": "high"}, time=1_700_000_000_000)
Traceback (most recent call last):
...
driftline.exceptions.SchemaMismatchError: features e1 would be dead-lettered by deployment elec (mistyped_feature: feature 'price' must be a number, got str)
>>> publisher.label("e1", 2, time=1_700_000_000_000)
Traceback (most recent call last):
...
driftline.exceptions.SchemaMismatchError: label e1 would be dead-lettered by deployment elec (unknown_class: label 2 is not one of [0, 1])
"""

from __future__ import annotations

import datetime as dt
import logging
import time as _time
import weakref
from collections.abc import Mapping
from typing import Any

import orjson
from confluent_kafka import Producer

from driftline.config import DeploymentConfig
from driftline.core.events import EventSchema, decode_features, decode_label, decode_protected
from driftline.core.privacy import FieldPolicy
from driftline.exceptions import BadEventError, DeliveryError, SchemaMismatchError
from driftline.runtime.clients import make_producer
from driftline.runtime.topics import check_copartitioned

__all__ = ["Publisher", "encode_features", "event_time_ms"]

log = logging.getLogger("driftline.client")

FLUSH_TIMEOUT_S = 60.0
# Batching: up to 20 ms of records per request, acknowledged by every in-sync replica.
PUBLISHER_SETTINGS = {"linger.ms": 20, "acks": "all"}


def encode_features(x: Mapping[Any, Any]) -> dict[str, Any]:
    """JSON-ready features: string keys, booleans as 0/1.

    >>> encode_features({1: True, "b": 2.5})
    {'1': 1, 'b': 2.5}
    """
    return {str(k): (int(v) if isinstance(v, bool) else v) for k, v in x.items()}


def event_time_ms(time: int | float | dt.datetime | None) -> int:
    """Epoch milliseconds of an event time; ``None`` is now (the wall clock, set explicitly).

    >>> event_time_ms(dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc))
    1796169600000
    >>> event_time_ms(1796169600000)
    1796169600000
    """
    if type(time) is int:  # the common case first
        return time
    if time is None:
        return int(_time.time() * 1000)
    if isinstance(time, dt.datetime):
        if time.tzinfo is None:
            raise ValueError("a naive datetime has no defined epoch time: give it a tzinfo (UTC)")
        return int(time.timestamp() * 1000)
    if isinstance(time, bool) or not isinstance(time, (int, float)):
        raise TypeError(f"time must be epoch milliseconds or a datetime, not {type(time).__name__}")
    return int(time)


def _schema(config: DeploymentConfig) -> EventSchema:
    model = config.model
    task = model.task or "classification"
    return EventSchema(features=dict(model.features), classes=tuple(model.classes), task=task,
                       max_bytes=config.processor.max_message_bytes,
                       max_abs_value=config.processor.max_abs_feature)


def _flush_at_exit(producer: Producer, name: str) -> None:
    queued = producer.flush(FLUSH_TIMEOUT_S)
    if queued:
        log.warning("publisher collected with records undelivered",
                    extra={"fields": {"deployment": name, "undelivered": queued}})


class Publisher:
    """Send ``features`` and ``label`` events to a deployment's input topics.

    ``validate`` checks every event against the deployment's declared schema before it is
    sent (off: the caller has checked, as ``driftline produce`` does on its first rows).
    ``check_topics`` makes :meth:`open` confirm, within seconds, that the cluster answers and
    the input topics exist with the same partition count. ``settings`` are librdkafka keys
    over the publisher's own (``linger.ms``, ``batch.size``, ...); the partitioner and the
    idempotence Driftline relies on are not overridable.
    """

    def __init__(self, config: DeploymentConfig, validate: bool = True, check_topics: bool = True,
                 settings: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.validate = validate
        self.check_topics = check_topics
        self.settings = dict(settings or {})
        for fixed in ("partitioner", "enable.idempotence"):
            if fixed in self.settings:
                raise ValueError(f"{fixed} is set by the publisher (co-partitioning and delivery depend on it)")
        self._schema = _schema(config) if validate else None
        privacy = config.governance.privacy  # drop/protected/hmac fields are no model features
        self._policy = FieldPolicy(privacy, None, config.name, check_only=True) if privacy.active else None
        topics = config.topics  # built on each access: resolved once, not per record
        self._features_topic, self._labels_topic = topics.features, topics.labels
        self._protected_topic = topics.protected
        self._producer: Producer | None = None
        self._finalizer: weakref.finalize | None = None
        self.delivered = 0
        self.failed = 0
        self._first_error: str | None = None
        self._delivered = self._on_delivery  # bound once: it is passed with every record

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> Publisher:
        """Check the topics (``check_topics``) and create the producer; idempotent."""
        if self._producer is None:
            if self.check_topics:
                check_copartitioned(self.config)  # unreachable cluster, bad credentials, missing topics
            self._producer = make_producer(self.config, transactional=False,
                                           **{**PUBLISHER_SETTINGS, **self.settings})
            self._finalizer = weakref.finalize(self, _flush_at_exit, self._producer, self.config.name)
        return self

    def __enter__(self) -> Publisher:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # do not hide the caller's error behind a delivery error
            try:
                self.close()
            except DeliveryError as delivery:
                log.warning("undelivered records after an error", extra={"fields": {"error": str(delivery)}})

    def close(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Flush (raising :class:`DeliveryError` like :meth:`flush`) and release the producer."""
        if self._producer is None:
            return
        try:
            self.flush(timeout)
        finally:
            if self._finalizer is not None:
                self._finalizer.detach()
            self._producer = None

    # -- sending ---------------------------------------------------------------------------

    def features(self, id: str, values: Mapping[Any, Any], *, time: int | float | dt.datetime | None = None) -> None:
        """Queue the features of event ``id`` observed at ``time`` (epoch ms or an aware datetime)."""
        body = {"id": self._id(id), "features": encode_features(values)}
        value = orjson.dumps(body)
        if self._schema is not None:
            self._check(value, "features", id)
        self._send(self._features_topic, id, value, event_time_ms(time))

    def label(self, id: str, value: Any, *, time: int | float | dt.datetime | None = None) -> None:
        """Queue the label of event ``id``, known at ``time`` (epoch ms or an aware datetime)."""
        encoded = orjson.dumps({"id": self._id(id), "label": value})
        if self._schema is not None:
            self._check(encoded, "label", id)
        self._send(self._labels_topic, id, encoded, event_time_ms(time))

    def protected(self, id: str, attributes: Mapping[str, Any], *,
                  time: int | float | dt.datetime | None = None) -> None:
        """Queue the protected attributes of event ``id`` on the fairness side topic (never seen
        by the model); stamp them with the features' time, or earlier, so that the prediction is
        counted by group at once (docs/governance.md#the-protected-side-topic)."""
        encoded = orjson.dumps({"id": self._id(id), "attributes": dict(attributes)})
        if self._schema is not None:
            self._check(encoded, "protected", id)
        self._send(self._protected_topic, id, encoded, event_time_ms(time))

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until every queued record is acknowledged; :class:`DeliveryError` says how many
        of those sent so far were refused by the cluster or not acknowledged within ``timeout``."""
        if self._producer is None:
            return
        queued = self._producer.flush(timeout)
        undelivered = self.failed + queued
        if undelivered:
            total = self.delivered + undelivered
            why = self._first_error or f"no delivery report within {timeout:g}s"
            raise DeliveryError(f"{undelivered} of {total} messages were not delivered to Kafka at "
                                f"{self.config.kafka.bootstrap_servers}: {why}", undelivered, total)

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _id(id: str) -> str:
        if not isinstance(id, str) or not id:
            raise ValueError(f"an event id is a non-empty string, not {id!r}")
        return id

    def _check(self, value: bytes, kind: str, id: str) -> None:
        try:
            if kind == "features":
                decode_features(value, self._schema, self.config.name, self._policy)
            elif kind == "protected":
                decode_protected(value, self._schema, self.config.name)
            else:
                decode_label(value, self._schema, self.config.name)
        except BadEventError as exc:
            raise SchemaMismatchError(f"{kind} {id} would be dead-lettered by deployment {self.config.name} "
                                      f"({exc})") from None

    def _on_delivery(self, err, _msg) -> None:
        if err is None:
            self.delivered += 1
            return
        self.failed += 1
        if self._first_error is None:
            self._first_error = err.str()

    def _send(self, topic: str, id: str, value: bytes, timestamp: int) -> None:
        producer = self._producer or self.open()._producer
        assert producer is not None
        while True:
            try:
                producer.produce(topic, value, id.encode(), timestamp=timestamp, on_delivery=self._delivered)
                break
            except BufferError:  # the local queue is full: serve delivery reports, then retry
                producer.poll(0.1)
        producer.poll(0)
