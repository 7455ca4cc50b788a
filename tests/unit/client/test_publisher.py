"""Publisher and Reader without a broker: validation, event times, settings that cannot be
overridden (nothing here connects)."""

from __future__ import annotations

import datetime as dt

import pytest

from driftline.client import Publisher, Reader
from driftline.config import load_config
from driftline.exceptions import SchemaMismatchError
from driftline.runtime.publisher import event_time_ms

CONFIG = load_config(name="m", kafka={"bootstrap_servers": "127.0.0.1:1"},
                     model={"features": {"a": "num", "c": "cat"}, "classes": ["x", "y"]})


def test_validation_refuses_before_anything_connects():
    publisher = Publisher(CONFIG)
    with pytest.raises(SchemaMismatchError, match="missing_feature"):
        publisher.features("e1", {"a": 1.0}, time=0)
    with pytest.raises(SchemaMismatchError, match="unknown_class"):
        publisher.label("e1", "z", time=0)
    with pytest.raises(ValueError, match="non-empty string"):
        publisher.features("", {"a": 1.0, "c": "u"}, time=0)
    assert publisher._producer is None  # nothing was created, nothing connected


def test_the_partitioner_and_idempotence_are_not_overridable():
    with pytest.raises(ValueError, match="partitioner is set by the publisher"):
        Publisher(CONFIG, settings={"partitioner": "consistent_random"})
    settings = {"linger.ms": 5}
    Publisher(CONFIG, settings=settings)
    assert settings == {"linger.ms": 5}  # the caller's dict is not changed


def test_event_times():
    assert event_time_ms(dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc)) == 1000
    assert event_time_ms(12.9) == 12
    with pytest.raises(ValueError, match="naive datetime"):
        event_time_ms(dt.datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="epoch milliseconds"):
        event_time_ms("2026-01-01")
    with pytest.raises(TypeError):
        event_time_ms(True)


def test_reader_deduplicates_by_default_only_for_at_least_once_deployments():
    assert Reader(CONFIG, "drift").dedupe is False
    alo = CONFIG.model_copy(update={"processor": CONFIG.processor.model_copy(update={"guarantee": "at_least_once"})})
    assert Reader(alo, "versions").dedupe is True
    assert Reader(alo, "predictions", dedupe=False).dedupe is False
