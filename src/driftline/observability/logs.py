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
import sys
import time
from collections.abc import Iterable
from typing import IO

import orjson

__all__ = ["configure_logging", "JsonFormatter"]


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
