"""JSON log lines that never contain a secret."""

from __future__ import annotations

import io
import logging
import uuid

import orjson
import pytest

from driftline.observability.logs import configure_logging

SECRET = "hunter2-Secret"


@pytest.fixture
def log_to():
    """``log_to(secrets)`` -> (logger, stream), on a logger name unique to the test."""

    def make(secrets=(SECRET,), level="INFO"):
        stream = io.StringIO()
        logger = configure_logging(level, secrets=secrets, stream=stream, name=f"test-{uuid.uuid4().hex}")
        return logger, stream

    return make


def lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line(log_to):
    logger, stream = log_to()
    logger.info("started %s", "now", extra={"fields": {"model": "elec", "n": 3}})
    logger.debug("hidden")
    logger.warning("second")
    first, second = lines(stream)
    assert first["body"] == "started now" and first["severity_text"] == "INFO" and first["severity_number"] == 9
    assert first["attributes"] == {"model": "elec", "n": 3} and first["scope"] == logger.name
    assert first["timestamp"].endswith("Z") and second["severity_text"] == "WARNING"


def test_secrets_are_redacted_everywhere(log_to):
    logger, stream = log_to()
    logger.info(f"connect with {SECRET}", extra={"fields": {"password": SECRET, "nested": {"dsn": f"u:{SECRET}@h"}}})
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        logger.exception("boom")
    text = stream.getvalue()
    assert SECRET not in text and text.count("***") >= 4
    assert [entry["attributes"]["password"] for entry in lines(stream)[:1]] == ["***"]
    boom = lines(stream)[1]["attributes"]
    assert boom["exception.type"] == "RuntimeError" and "Traceback" in boom["exception.stacktrace"]


def test_empty_secrets_are_ignored(log_to):
    logger, stream = log_to(secrets=["", None, SECRET])
    logger.info("plain message")
    assert lines(stream)[0]["body"] == "plain message"


def test_reconfiguring_does_not_duplicate_handlers():
    stream = io.StringIO()
    name = f"test-{uuid.uuid4().hex}"
    configure_logging("INFO", stream=io.StringIO(), name=name)
    logger = configure_logging("info", stream=stream, name=name)
    logger.info("once")
    assert len(logger.handlers) == 1 and logger.level == logging.INFO and len(lines(stream)) == 1


@pytest.mark.parametrize("secret", ['pa"ss', "back\\slash", "tab\tbed"])
def test_secrets_with_json_escaped_characters_are_redacted(log_to, secret):
    # regression: redaction ran on the JSON text, where these secrets appear escaped
    logger, stream = log_to(secrets=[secret])
    logger.info(f"login with {secret}", extra={"fields": {"password": secret}})
    (entry,) = lines(stream)
    assert not any(secret in value for value in [*entry.values(), *entry["attributes"].values()] if isinstance(value, str))


def test_librdkafka_lines_are_rate_limited_json(log_to):
    from driftline.observability.logs import LibrdkafkaLog

    logger, stream = log_to()
    now = [0.0]
    kafka_log = LibrdkafkaLog(logger.name, interval_s=30, clock=lambda: now[0])
    for i in range(200):  # a refused connection, retried every few ms
        now[0] = i * 0.25
        kafka_log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1",
                      f"127.0.0.1:1/bootstrap: Connect failed: Connection refused (after {i}ms in state CONNECT)")
    kafka_log.log(logging.WARNING, "%s [%s] %s", "CONFWARN", "rdkafka#producer-1", "another line")
    entries = lines(stream)
    assert [(e["severity_text"], e["attributes"].get("suppressed")) for e in entries] == [("ERROR", None), ("ERROR", 119), ("WARNING", None)]
    assert entries[0]["body"].startswith("FAIL [rdkafka#producer-1] 127.0.0.1:1/bootstrap")


def test_log_lines_match_the_published_schema():
    """Every kind of line (plain, with fields, with an exception, librdkafka's) against
    docs/schemas/log-line.schema.json; the integration test of the dashboard checks a
    running processor's own lines too."""
    from pathlib import Path

    import jsonschema

    from driftline.observability.logs import LibrdkafkaLog

    schema = orjson.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" / "log-line.schema.json").read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)
    stream = io.StringIO()
    logger = configure_logging("INFO", stream=stream, name=f"driftline.test_{uuid.uuid4().hex}")
    logger.info("version cut", extra={"fields": {"version": 3, "trigger": "periodic", "seconds": 0.01}})
    logger.debug("not shown")
    logger.warning("50 dead letters in a row", extra={"fields": {"model": "elec", "in_a_row": 50, "reason": "nan"}})
    try:
        raise OSError("disk full")
    except OSError:
        logger.exception("snapshot failed: keeping the last good version", extra={"fields": {"version": 4}})
    LibrdkafkaLog(logger.name).log(logging.ERROR, "%s", "FAIL refused")
    entries = lines(stream)
    assert len(entries) == 4
    for entry in entries:
        jsonschema.validate(entry, schema, cls=jsonschema.Draft202012Validator)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**entries[0], "level": "INFO"}, schema)  # the old field names are refused
