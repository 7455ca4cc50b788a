"""runtime/tracing.py with the SDK's in-memory exporter: spans, W3C propagation, log fields."""

from __future__ import annotations

import io

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from driftline.config import load_config
from driftline.core.outputs import Prediction
from driftline.exceptions import ConfigError
from driftline.observability.logs import configure_logging
from driftline.observability.metrics import ProcessorMetrics
from driftline.runtime.collector import OutputCollector
from driftline.runtime.tracing import NoTracing, Tracing, make_tracing

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing("m", provider), exporter


def test_off_by_default_and_free() -> None:
    tracing = make_tracing(load_config(name="m"))
    assert isinstance(tracing, NoTracing) and not tracing.enabled and not tracing.parents


def test_enabled_without_the_sdk_is_one_config_error(monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def no_sdk(name, *args, **kwargs):
        if name.startswith("opentelemetry.sdk"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sdk)
    with pytest.raises(ConfigError, match=r"pip install 'driftline\[otel\]'"):
        make_tracing(load_config(name="m", tracing={"enabled": True}))


def test_a_traced_input_continues_its_trace(spans) -> None:
    tracing, exporter = spans
    tracing.remember("features", 2, 40, [("other", b"x"), ("traceparent", PARENT.encode())])
    with tracing.batch(3, 1_000, 2_000):
        span, headers = tracing.start_record("features", 2, 40)
        span.end()
    (key, value), = headers
    version, trace_id, span_id, flags = value.decode().split("-")
    assert key == "traceparent" and (version, trace_id, flags) == ("00", PARENT.split("-")[1], "01")
    finished = {s.name: s for s in exporter.get_finished_spans()}
    record = finished["driftline process features"]
    assert format(record.context.span_id, "016x") == span_id != PARENT.split("-")[2]
    assert format(record.parent.span_id, "016x") == PARENT.split("-")[2]
    batch = finished["driftline batch"]
    assert [link.context.span_id for link in record.links] == [batch.context.span_id]
    assert batch.attributes["messaging.batch.message_count"] == 3
    assert finished["driftline consume"].parent.span_id == batch.context.span_id
    assert (finished["driftline consume"].start_time, finished["driftline consume"].end_time) == (1_000, 2_000)
    assert not tracing.parents  # taken once


def test_untraced_or_malformed_inputs_are_not_kept(spans) -> None:
    tracing, _ = spans
    tracing.remember("features", 0, 1, None)
    tracing.remember("features", 0, 2, [("ce_id", b"m/1")])
    tracing.remember("features", 0, 3, [("traceparent", b"not-a-traceparent")])
    tracing.remember("features", 0, 4, [("traceparent", b"00-00000000000000000000000000000000-00f067aa0ba902b7-01")])
    assert tracing.parents == {}


def test_logs_in_a_span_carry_its_ids(spans) -> None:
    tracing, _ = spans
    stream = io.StringIO()
    log = configure_logging("INFO", stream=stream, name="driftline.test_tracing")
    log.info("outside")
    with tracing.batch(1, 0, 1):
        log.info("inside")
        current = trace.get_current_span().get_span_context()
    outside, inside = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert "trace_id" not in outside
    assert inside["trace_id"] == format(current.trace_id, "032x")
    assert inside["span_id"] == format(current.span_id, "016x")


def test_the_collector_puts_traceparent_before_the_model_version() -> None:
    config = load_config(name="m")
    sent = []
    collector = OutputCollector(config, ProcessorMetrics("m", CollectorRegistry()),
                                lambda topic, key, value, headers: sent.append(headers))
    collector.begin_batch(0)
    prediction = Prediction(id="e1", model="m", model_version=4, model_examples=0, prediction=True,
                            proba={True: 0.9, False: 0.1}, event_time=0, predicted_at=0)
    collector.emit(prediction, 0)
    collector.trace_headers = [("traceparent", PARENT.encode())]
    collector.emit(prediction, 0)
    untraced, traced = ([k for k, _ in h] for h in sent)
    assert "traceparent" not in untraced
    assert traced[-2:] == ["traceparent", "dl_model_version"]
