"""Bad input never stops the processor: each kind lands in the DLQ with its reason."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.runtime.clients import make_producer
from driftline.runtime.processor import Processor

pytestmark = pytest.mark.integration

GOOD = {"x": 1.0, "day": "mon"}


def _send(producer, topic: str, key: str, value: bytes, ts: int) -> None:
    producer.produce(topic, key=key.encode(), value=value, timestamp=ts)


def test_each_kind_of_bad_input_goes_to_the_dlq_with_its_reason(make_config, reader, signing_key):
    config = make_config(
        model={"preset": "logistic_regression", "features": {"x": "num", "day": "cat"}, "classes": [False, True]},
        join={"max_age_ms": 10_000},
        processor={"max_message_bytes": 10_000},
    )
    features, labels = config.topics.features, config.topics.labels
    bad_features = {
        "malformed_json": b'{"id": "b1", "features": {',
        "non_finite_number": b'{"id": "b2", "features": {"x": NaN, "day": "mon"}}',
        "missing_id": orjson.dumps({"features": GOOD}),
        "missing_features": orjson.dumps({"id": "b4"}),
        "missing_feature": orjson.dumps({"id": "b5", "features": {"x": 1.0}}),
        "mistyped_feature": orjson.dumps({"id": "b6", "features": {"x": "high", "day": "mon"}}),
        "unknown_model": orjson.dumps({"id": "b7", "model": "someone-else", "features": GOOD}),
        "oversized": orjson.dumps({"id": "b8", "features": GOOD, "pad": "x" * 20_000}),
        "duplicate_event_id": orjson.dumps({"id": "g0", "features": GOOD}),
    }
    bad_labels = {
        "unknown_class": orjson.dumps({"id": "g1", "label": "maybe"}),
        "missing_label": orjson.dumps({"id": "g2"}),
        "label_without_features": orjson.dumps({"id": "nobody", "label": True}),
    }
    producer = make_producer(config)
    ts = 1_000_000
    n_good = 20
    for i in range(n_good):
        _send(producer, features, f"g{i}", orjson.dumps({"id": f"g{i}", "features": GOOD}), ts + 10 * i)
    for j, value in enumerate(bad_features.values()):
        _send(producer, features, f"b{j}", value, ts + 10 * j + 5)
    for j, value in enumerate(bad_labels.values()):
        _send(producer, labels, f"l{j}", value, ts + 10 * j + 6)
    for i in range(3, n_good):
        _send(producer, labels, f"g{i}", orjson.dumps({"id": f"g{i}", "label": i % 2 == 0}), ts + 10 * n_good + i)
    # Much later events advance event time past the join window, expiring the orphan label.
    _send(producer, features, "late", orjson.dumps({"id": "late", "features": GOOD}), ts + 60_000)
    producer.flush(30)

    registry = CollectorRegistry()
    engine = Processor(config, signing_key, registry=registry).run(exit_when_idle_s=3)

    dlq = reader(config, config.topics.dlq)
    by_reason = {dict(m.headers())["dl_reason"].decode(): m for m in dlq}
    assert set(by_reason) == set(bad_features) | set(bad_labels)
    for reason, value in {**bad_features, **bad_labels}.items():
        msg = by_reason[reason]
        assert msg.value() == value, reason  # the original bytes, unchanged
        headers = dict(msg.headers())
        assert headers["dl_topic"].decode() in (features, labels)
        assert int(headers["dl_offset"]) >= 0
        count = registry.get_sample_value(
            "driftline_dead_letters_total", {"model": config.name, "reason": reason}
        )
        assert count == 1, reason
    # Good events around the bad ones were all predicted, and their labels learned.
    predicted = {orjson.loads(m.value())["id"] for m in reader(config, config.topics.predictions)}
    assert predicted == {f"g{i}" for i in range(n_good)} | {"late"}
    assert engine.n_learned == n_good - 3
