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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and ``extra['fields']``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Redact each secret as it appears in the JSON line, i.e. JSON-escaped.
        self.secrets = sorted({orjson.dumps(s).decode()[1:-1] for s in secrets if s}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        line = orjson.dumps(entry, default=str).decode()
        for secret in self.secrets:
            line = line.replace(secret, "***")
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
    >>> [(e["message"][-11:], e.get("suppressed")) for e in map(orjson.loads, stream.getvalue().splitlines())]
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
