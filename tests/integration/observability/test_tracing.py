"""OpenTelemetry on the real broker: a traced feature's prediction carries the producer's trace."""

from __future__ import annotations

import time

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from driftline.runtime.clients import make_producer
from driftline.runtime.processor import Processor
from driftline.runtime.tail import read_committed

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"


def test_traceparent_goes_from_a_feature_to_its_prediction(make_config, signing_key):
    config = make_config(tracing={"enabled": True}, model={"features": {"x": "num"}})
    producer = make_producer(config)
    now = int(time.time() * 1000)
    for i in range(20):
        headers = [("traceparent", f"00-{TRACE}-{PRODUCER_SPAN}-01".encode())] if i == 7 else []
        body = orjson.dumps({"id": f"e{i}", "features": {"x": float(i)}})
        producer.produce(config.topics.features, key=f"e{i}".encode(), value=body, timestamp=now + i,
                         headers=headers)
    producer.produce(config.topics.features, key=b"bad", value=b"{not json", timestamp=now + 30,
                     headers=[("traceparent", f"00-{TRACE}-{PRODUCER_SPAN}-01".encode())])
    assert producer.flush(10) == 0

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    Processor(config, signing_key, registry=CollectorRegistry(), tracer_provider=provider).run(exit_when_idle_s=3)

    predictions = {m.key().decode(): dict(m.headers() or []) for m in read_committed(config, config.topics.predictions)}
    assert len(predictions) == 20
    traced = {k for k, h in predictions.items() if "traceparent" in h}
    assert traced == {"e7"}
    _, trace_id, span_id, flags = predictions["e7"]["traceparent"].decode().split("-")
    assert (trace_id, flags) == (TRACE, "01") and span_id != PRODUCER_SPAN
    assert list(predictions["e7"])[-2:] == ["traceparent", "dl_model_version"]

    (dead,) = read_committed(config, config.topics.dlq)
    assert dict(dead.headers())["traceparent"].decode().split("-")[1] == TRACE

    spans = exporter.get_finished_spans()
    record = [s for s in spans if s.name == "driftline process features"]
    assert len(record) == 2  # e7 and the dead letter
    mine = next(s for s in record if format(s.context.span_id, "016x") == span_id)
    assert format(mine.context.trace_id, "032x") == TRACE
    assert format(mine.parent.span_id, "016x") == PRODUCER_SPAN
    names = {s.name for s in spans}
    assert {"driftline batch", "driftline consume", "driftline process", "driftline commit"} <= names
