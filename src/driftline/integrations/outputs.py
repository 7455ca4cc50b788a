"""The engine's outputs as the messages of the event contract, for any transport.

:func:`to_message` gives the topic kind, key, value and headers that Driftline's own
processor writes for a prediction, a drift event or a dead letter (docs/events.md), so an
adapter (:mod:`driftline.integrations.faust`) publishes the same records the processor
would. No Kafka types: the adapter sends them with its own client.

>>> from driftline.core.outputs import Prediction
>>> kind, key, value, headers = to_message(Prediction("e1", "elec", 0, 12, 1, {0: 0.2, 1: 0.8}, 5, 1796169600000), "elec")
>>> kind, key, value
('predictions', b'e1', b'{"id":"e1","model":"elec","model_version":0,"model_examples":12,"prediction":1,"proba":{"0":0.2,"1":0.8},"event_time":5,"predicted_at":1796169600000,"variant":"champion"}')
>>> dict(headers)["ce_id"], dict(headers)["ce_time"]
(b'elec/e1', b'2026-12-02T00:00:00.000Z')
"""

from __future__ import annotations

import time

import orjson

from driftline.core.outputs import DeadLetter, DriftEvent, Output, Prediction

__all__ = ["Message", "to_message", "ce_time"]

Message = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]  # (topic kind, key, value, headers)


def ce_time(ms: int) -> bytes:
    """RFC 3339 UTC with milliseconds, as in the ``ce_time`` header.

    >>> ce_time(1795839025006)
    b'2026-11-28T04:10:25.006Z'
    """
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z").encode()


def _headers(kind: str, ce_id: str, model: str, version: int, at_ms: int) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", ce_id.encode()),
        ("ce_type", f"io.driftline.{kind}".encode()),
        ("ce_source", f"driftline/{model}".encode()),
        ("ce_time", ce_time(at_ms)),
        ("content-type", b"application/json"),
        ("dl_model", model.encode()),
        ("dl_model_version", str(version).encode()),
    ]


def to_message(output: Output, model: str) -> Message | None:
    """The message for ``output``; None for kinds an adapter does not publish (challengers'
    shadow predictions and lifecycle events, which need the processor's lifecycle runtime)."""
    if isinstance(output, Prediction):
        headers = _headers("prediction", f"{model}/{output.id}", model, output.model_version, output.predicted_at)
        return "predictions", output.id.encode(), orjson.dumps(output.body()), headers
    if isinstance(output, DriftEvent):
        headers = _headers("drift", output.id, model, output.model_version, output.detected_at)
        return "drift", output.id.encode(), orjson.dumps(output.body(), option=orjson.OPT_NON_STR_KEYS), headers
    if isinstance(output, DeadLetter):
        rec = output.record
        headers = [
            ("dl_reason", output.reason.encode()),
            ("dl_detail", output.detail[:1000].encode()),
            ("dl_topic", rec.kind.encode()),  # the kind; the adapter names the topic
            ("dl_partition", str(rec.partition).encode()),
            ("dl_offset", str(rec.offset).encode()),
            ("dl_timestamp", str(rec.timestamp).encode()),
        ]
        return "dlq", rec.key, rec.value or b"", headers
    return None
