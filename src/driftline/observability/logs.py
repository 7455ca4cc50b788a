"""Structured JSON logs that never print a secret.

>>> import logging, io
>>> stream = io.StringIO()
>>> log = configure_logging("INFO", secrets=["hunter2"], stream=stream, name="doctest")
>>> log.info("connecting", extra={"fields": {"password": "hunter2"}})
>>> "hunter2" in stream.getvalue(), "***" in stream.getvalue()
(False, True)
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import IO

import orjson

__all__ = ["configure_logging", "JsonFormatter", "LibrdkafkaLog"]


# OpenTelemetry's SeverityNumber for each Python level (logs data model, "Field: SeverityNumber").
_MIN_ANYWHERE = 16  # config.MIN_SECRET_BYTES (not imported: logging comes before config)
_SEVERITY_NUMBER = {"DEBUG": 5, "INFO": 9, "WARNING": 13, "ERROR": 17, "CRITICAL": 21}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, named after the OpenTelemetry log data model.

    ``timestamp`` (RFC 3339, UTC, ms), ``severity_text`` and ``severity_number``, ``body``
    (the message), ``scope`` (the logger: OpenTelemetry's instrumentation scope), and
    ``attributes`` (``extra['fields']``, plus ``exception.type``, ``exception.message`` and
    ``exception.stacktrace`` for an exception). docs/schemas/log-line.json is the schema.

    >>> import io
    >>> stream = io.StringIO()
    >>> log = configure_logging("INFO", stream=stream, name="doctest.format")
    >>> log.warning("dead letters in a row", extra={"fields": {"reason": "nan", "in_a_row": 50}})
    >>> entry = orjson.loads(stream.getvalue())
    >>> sorted(entry), entry["severity_number"], entry["attributes"]
    (['attributes', 'body', 'scope', 'severity_number', 'severity_text', 'timestamp'], 13, {'reason': 'nan', 'in_a_row': 50})
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Redact each secret as it appears in the JSON line, i.e. JSON-escaped. Driftline refuses
        # its own secrets below 16 bytes (config.MIN_SECRET_BYTES); a shorter one (a SASL password)
        # is redacted only where it stands alone, else a password "k" would turn every k into ***.
        escaped = sorted({orjson.dumps(s).decode()[1:-1] for s in secrets if s}, key=len, reverse=True)
        self.secrets = [s for s in escaped if len(s) >= _MIN_ANYWHERE]
        self._short = [re.compile(rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])") for s in escaped
                       if len(s) < _MIN_ANYWHERE]

    def format(self, record: logging.LogRecord) -> str:
        attributes = dict(getattr(record, "fields", {}))
        if record.exc_info:
            kind, exc = record.exc_info[0], record.exc_info[1]
            attributes["exception.type"] = kind.__name__ if kind is not None else "Exception"
            attributes["exception.message"] = str(exc)
            attributes["exception.stacktrace"] = self.formatException(record.exc_info)
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "severity_text": record.levelname,
            "severity_number": _SEVERITY_NUMBER.get(record.levelname, 9),
            "body": record.getMessage(),
            "scope": record.name,
            "attributes": attributes,
        }
        if (otel := sys.modules.get("opentelemetry.trace")) is not None:  # tracing on (runtime/tracing.py)
            span = otel.get_current_span().get_span_context()
            if span.is_valid:
                entry["trace_id"] = format(span.trace_id, "032x")
                entry["span_id"] = format(span.span_id, "016x")
        line = orjson.dumps(entry, default=str).decode()
        for secret in self.secrets:
            line = line.replace(secret, "***")
        for pattern in self._short:
            line = pattern.sub("***", line)
        return line


def configure_logging(
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
    name: str = "driftline",
) -> logging.Logger:
    """Send ``name``'s logs as JSON lines to ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


class LibrdkafkaLog:
    """librdkafka's own log lines (``%3|...|FAIL|...``) as Driftline JSON logs, rate-limited.

    Passed as a Kafka client's ``logger`` setting (confluent-kafka calls ``log(level, fmt,
    *args)`` with a Python logging level); without it librdkafka writes raw lines to stderr.
    A refused connection is retried several times a second, so each distinct line (numbers
    ignored) is logged at most once per ``interval_s``; the next one says how many were
    suppressed in between.

    >>> import io
    >>> stream = io.StringIO()
    >>> _ = configure_logging("INFO", stream=stream, name="doctest.kafka")
    >>> now = [0.0]
    >>> kafka_log = LibrdkafkaLog("doctest.kafka", interval_s=10, clock=lambda: now[0])
    >>> for ms in (0, 5, 9):
    ...     kafka_log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", f"refused (after {ms}ms)")
    >>> now[0] = 11.0
    >>> kafka_log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "refused (after 2ms)")
    >>> [(e["body"][-11:], e["attributes"].get("suppressed")) for e in map(orjson.loads, stream.getvalue().splitlines())]
    [('(after 0ms)', None), ('(after 2ms)', 2)]
    """

    def __init__(self, name: str = "driftline.kafka", interval_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.interval_s = interval_s
        self.clock = clock
        self._seen: dict[str, tuple[float, int]] = {}  # line without numbers -> (logged at, suppressed)

    def log(self, level: int, fmt: str, *args: object) -> None:
        line = fmt % args if args else fmt
        key = re.sub(r"\d+", "#", line)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.interval_s:
            self._seen[key] = (seen[0], seen[1] + 1)
            return
        if len(self._seen) > 1000:  # bounded: forget old lines rather than grow
            self._seen.clear()
        self._seen[key] = (now, 0)
        fields = {"source": "librdkafka"}
        if seen is not None and seen[1]:
            fields["suppressed"] = seen[1]
        logging.getLogger(self.name).log(level, line, extra={"fields": fields})
