"""The processor against the real broker: River-exact metrics and one prediction per event."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry
from river import evaluate, metrics

from driftline.core.models import build_model
from driftline.core.outputs import json_key
from driftline.datasets import stream
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("preset", "delay"),
    [("logistic_regression", 0), ("logistic_regression", 25), ("hoeffding_tree", 100)],
)
def test_accuracy_equals_progressive_val_score(make_config, reader, signing_key, preset, delay):
    config = make_config(model={"preset": preset}, drift={"policy": "none"})  # River has no adaptation
    rows = [(encode_features(x), y) for x, y in stream("river:Phishing")]
    replay(config, rows, label_delay=delay, n_rows=len(rows))

    engine = Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)

    expected = evaluate.progressive_val_score(rows, build_model(config.model), metrics.Accuracy(), delay=delay)
    assert engine.n_learned == len(rows)
    assert engine.scores.values()["accuracy"] == expected.get()


def test_every_event_has_one_prediction_with_headers(make_config, reader, signing_key):
    config = make_config(partitions=3)
    rows = list(stream("synth:agrawal", limit=3000, seed=7))
    replay(config, rows, label_delay=50, n_rows=len(rows))

    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)

    predictions = reader(config, config.topics.predictions)
    ids = [orjson.loads(m.value())["id"] for m in predictions]
    assert sorted(ids) == sorted(f"e{i}" for i in range(len(rows)))
    first = predictions[0]
    headers = dict(first.headers())
    body = orjson.loads(first.value())
    assert headers["ce_type"] == b"io.driftline.prediction"
    assert headers["ce_id"].decode() == f"{config.name}/{body['id']}"  # docs/events.md: <model>/<event id>
    assert int(headers["dl_model_version"]) == body["model_version"] >= 1
    assert max(body["proba"], key=body["proba"].get) == json_key(body["prediction"])
    assert sum(body["proba"].values()) == pytest.approx(1.0)
    # Predictions are keyed like their features, so they land on the same partition.
    assert all(m.key().decode() == orjson.loads(m.value())["id"] for m in predictions)


def test_versions_are_announced_and_drift_is_published(make_config, reader, signing_key):
    # Explicit detectors: the default (binary.HDDMA) misses this SEA drift, see docs/drift-benchmark.md.
    config = make_config(checkpoint={"every_examples": 2000},
                         drift={"detectors": [{"name": "ADWIN"}, {"name": "PageHinkley", "params": {"mode": "up"}}]})
    rows = list(stream("synth:sea", limit=8000, seed=3, drift_every=4000, noise=0.0))
    replay(config, rows, label_delay=10, n_rows=len(rows))

    engine = Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)

    announced = [orjson.loads(m.value()) for m in reader(config, config.topics.versions)]
    assert [v["version"] for v in announced] == list(range(1, engine.version + 1))
    assert announced[-1]["examples_seen"] == len(rows)
    drift = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    assert len(drift) == engine.counters.drift_events > 0
    assert {d["detector"] for d in drift} <= {"ADWIN", "PageHinkley"}
    assert all(d["kind"] == "concept" and d["model"] == config.name for d in drift)


def test_mini_batch_mode_through_kafka_learns_what_the_engine_learns_in_memory(make_config, signing_key):
    """model.mini_batch: the processor's model equals an in-memory engine fed the same records
    in the same event-time order (batch boundaries depend on the records only), and it differs
    from one-at-a-time learning (the batches really are learned with learn_many)."""
    from driftline.core.engine import Engine
    from driftline.core.events import InputRecord

    rows = [(encode_features(x), y) for x, y in stream("river:Phishing")]
    features = {name: "num" for name in rows[0][0]}
    config = make_config(model={"preset": "logistic_regression", "mini_batch": 50, "features": features},
                         drift={"policy": "none"})
    delay = 25
    replay(config, rows, label_delay=delay, n_rows=len(rows))

    engine = Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)

    reference = Engine(config)
    records = []
    for i, (x, y) in enumerate(rows):
        key = f"e{i}".encode()
        records.append(InputRecord("features", 0, i, i, key, orjson.dumps({"id": f"e{i}", "features": x})))
        records.append(InputRecord("labels", 0, i, i + delay, key, orjson.dumps({"id": f"e{i}", "label": y})))
    records.sort(key=lambda r: (r.timestamp, r.kind != "labels", r.offset))
    for record in records:
        reference.process(record, now_ms=0)

    assert engine.n_learned == reference.n_learned == len(rows) - len(rows) % 50
    assert engine.scores.values() == reference.scores.values()
    lr = engine.model["LogisticRegression"]
    assert dict(lr.weights) == dict(reference.model["LogisticRegression"].weights)
    one_at_a_time = build_model(config.model.model_copy(update={"mini_batch": None}))
    for x, y in rows:
        one_at_a_time.learn_one(x, y)
    assert dict(lr.weights) != dict(one_at_a_time["LogisticRegression"].weights)
