"""OpenTelemetry tracing of the processing loop (optional: ``pip install 'driftline[otel]'``).

With ``[tracing] enabled = true`` every loop iteration that fetched or processed records is a
``driftline batch`` span with two children, ``driftline consume`` (the fetch) and
``driftline process`` (the event-time merge, predict, join and learn, and handing the outputs
to the producer), plus ``driftline commit`` when the iteration committed its unit of work.

An input record that carries a W3C ``traceparent`` header (a producer app that traces) gets a
span of its own, ``driftline process <kind>``, a child of the producer's span and linked to its
batch; every output it causes (its prediction, a drift event, a dead letter) carries that span's
``traceparent``, so the trace goes on into the consumers of Driftline's outputs. Records without
the header cost one dictionary lookup per fetched message and nothing per processed record.

Logs written while a span is current carry its ``trace_id`` and ``span_id``
(observability/logs.py). Spans go where the OpenTelemetry SDK sends them: ``exporter = "otlp"``
uses the standard ``OTEL_EXPORTER_OTLP_*`` environment variables (an OpenTelemetry Collector at
http://localhost:4318 by default), ``"console"`` prints them, ``"none"`` only keeps the context
propagation. Tests pass their own tracer provider (an in-memory exporter).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from driftline.config import DeploymentConfig
from driftline.exceptions import ConfigError

__all__ = ["NoTracing", "Tracing", "make_tracing"]

log = logging.getLogger("driftline.processor")

_TRACEPARENT = "traceparent"
_TRACESTATE = "tracestate"
# Input contexts waiting for their record to be processed; a bound so that records fetched and
# then revoked (never processed here) cannot grow it without end.
_MAX_PENDING = 200_000


class NoTracing:
    """Tracing switched off: every call is free or nearly so (the default)."""

    enabled = False
    # (kind, partition, offset) -> input context; always empty here, so the drain's
    # ``if parents`` test is the whole cost per processed record.
    parents: dict[tuple[str, int, int], Any] = {}

    def remember(self, kind: str, partition: int, offset: int, headers: Any) -> None:
        pass

    @contextlib.contextmanager
    def batch(self, n_messages: int, consume_start_ns: int, consume_end_ns: int) -> Iterator[None]:
        yield None

    def commit(self, start_ns: int, end_ns: int) -> None:
        pass

    def close(self) -> None:
        pass


class Tracing(NoTracing):
    """Spans for the loop and W3C context propagation from inputs to outputs.

    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    >>> exporter = InMemorySpanExporter()
    >>> provider = TracerProvider()
    >>> provider.add_span_processor(SimpleSpanProcessor(exporter))
    >>> tracing = Tracing("elec", provider)
    >>> parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    >>> tracing.remember("features", 0, 7, [("traceparent", parent.encode())])
    >>> with tracing.batch(1, 0, 1):
    ...     span, headers = tracing.start_record("features", 0, 7)
    ...     span.end()
    >>> headers[0][1].decode()[:35] == parent[:35]   # same trace, a new span of Driftline's
    True
    >>> sorted(s.name for s in exporter.get_finished_spans())
    ['driftline batch', 'driftline consume', 'driftline process', 'driftline process features']
    """

    enabled = True

    def __init__(self, model: str, provider: Any = None, owned: bool = False) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from driftline import __version__

        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self.tracer = (provider or trace.get_tracer_provider()).get_tracer("driftline", __version__)
        self.model = model
        self.parents: dict[tuple[str, int, int], Any] = {}
        self._batch: Any = None
        self._warned = False
        self._provider = provider if owned else None  # made by make_tracing: flushed on close

    # -- inputs ---------------------------------------------------------------------------

    def remember(self, kind: str, partition: int, offset: int, headers: Any) -> None:
        """Keep the producer's context of a fetched record that carries ``traceparent``."""
        if not headers:
            return
        carrier = {}
        for key, value in headers:
            if key in (_TRACEPARENT, _TRACESTATE) and value is not None:
                carrier[key] = value.decode("latin-1")
        if _TRACEPARENT not in carrier:
            return
        context = self._propagator.extract(carrier)
        if not self._trace.get_current_span(context).get_span_context().is_valid:
            return  # a malformed traceparent: the record is processed untraced
        if len(self.parents) >= _MAX_PENDING:
            self.parents.pop(next(iter(self.parents)))
            if not self._warned:
                self._warned = True
                log.warning("tracing: more traced records pending than the bound, dropping the oldest contexts",
                            extra={"fields": {"bound": _MAX_PENDING}})
        self.parents[(kind, partition, offset)] = context

    def start_record(self, kind: str, partition: int, offset: int) -> tuple[Any, list[tuple[str, bytes]]]:
        """The span of one traced record and the headers its outputs carry (its context)."""
        parent = self.parents.pop((kind, partition, offset))
        links = [self._trace.Link(self._batch.get_span_context())] if self._batch is not None else []
        span = self.tracer.start_span(f"driftline process {kind}", context=parent, links=links,
                                      kind=self._trace.SpanKind.CONSUMER,
                                      attributes={"messaging.system": "kafka", "messaging.operation.type": "process",
                                                  "messaging.kafka.offset": offset,
                                                  "messaging.destination.partition.id": str(partition),
                                                  "driftline.model": self.model})
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._trace.set_span_in_context(span))
        return span, [(key, value.encode()) for key, value in carrier.items()]

    # -- the loop --------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self, n_messages: int, consume_start_ns: int, consume_end_ns: int) -> Iterator[Any]:
        """The span of one loop iteration; the block is its ``process`` phase (and current)."""
        tracer = self.tracer
        attributes = {"messaging.system": "kafka", "messaging.batch.message_count": n_messages,
                      "driftline.model": self.model}
        batch = tracer.start_span("driftline batch", start_time=consume_start_ns, attributes=attributes)
        context = self._trace.set_span_in_context(batch)
        tracer.start_span("driftline consume", context=context, start_time=consume_start_ns,
                          attributes={"messaging.operation.type": "receive"}).end(end_time=consume_end_ns)
        self._batch = batch
        try:
            with self._trace.use_span(batch, end_on_exit=False):
                with tracer.start_as_current_span("driftline process",
                                                  attributes={"messaging.operation.type": "process"}):
                    yield batch
        finally:
            self._batch = None
            batch.end()

    def commit(self, start_ns: int, end_ns: int) -> None:
        """A commit of the unit of work made by the last iteration (its own short span)."""
        self.tracer.start_span("driftline commit", start_time=start_ns,
                               attributes={"driftline.model": self.model}).end(end_time=end_ns)

    def close(self) -> None:
        """Export what is buffered (the processor's shutdown)."""
        if self._provider is not None:
            self._provider.shutdown()


def make_tracing(config: DeploymentConfig, provider: Any = None) -> NoTracing:
    """The deployment's tracing: :class:`NoTracing` unless ``[tracing] enabled``."""
    settings = config.tracing
    if not settings.enabled:
        return NoTracing()
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        raise ConfigError("[tracing] enabled needs OpenTelemetry: pip install 'driftline[otel]'") from None
    owned = provider is None
    if owned:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

        provider = TracerProvider(resource=Resource.create({"service.name": f"driftline-{config.name}"}),
                                  sampler=ParentBasedTraceIdRatio(settings.sample_ratio))
        if settings.exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif settings.exporter == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return Tracing(config.name, provider, owned)
