"""Served quality (core/served.py): labels joined with the predictions a predictor served."""

from __future__ import annotations

import json
import random
from pathlib import Path

import jsonschema
import pytest
from river import metrics

from driftline.config import DetectorSpec
from driftline.core.detectors import ErrorWatch
from driftline.core.served import ServedQuality, served_drift_events

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" / "drift.schema.json").read_text())


def test_served_accuracy_is_rivers_over_the_joined_labels():
    rng = random.Random(3)
    quality = ServedQuality("classification", None, capacity=10_000)
    river = {p: metrics.Accuracy() for p in range(3)}
    joined = {p: 0 for p in range(3)}
    for i in range(2_000):
        partition, prediction, label = rng.randrange(3), rng.choice("abc"), rng.choice("abc")
        quality.served(partition, f"e{i}", prediction, 1)
        join = quality.label(partition, f"e{i}", label)
        river[partition].update(label, prediction)
        joined[partition] += 1
        assert join.metrics_after == {"accuracy": river[partition].get()}
    for partition, summary in quality.summary().items():
        assert summary["accuracy"] == river[partition].get()
        assert summary["joined"] == joined[partition]
        assert summary["unmatched"] == summary["evictions"] == summary["pending"] == 0


def test_regression_is_scored_by_mae_and_watched_on_the_absolute_error():
    quality = ServedQuality("regression", None)
    mae = metrics.MAE()
    for i, (y, y_hat) in enumerate([(1.0, 1.5), (2.0, 0.0), (3.0, 3.0)]):
        quality.served(0, f"e{i}", y_hat, 2)
        join = quality.label(0, f"e{i}", y)
        mae.update(y, y_hat)
        assert join.error == abs(y - y_hat)
        assert join.metrics_after == {"mae": mae.get()}
    assert quality.summary()[0]["mae"] == mae.get()


def test_evictions_and_labels_it_did_not_serve_are_counted():
    quality = ServedQuality("classification", None, capacity=3)
    for i in range(5):
        quality.served(2, f"e{i}", 1, 1)
    assert quality.label(2, "e0", 1) is None  # evicted
    assert quality.label(2, "elsewhere", 1) is None  # served by another predictor
    assert quality.label(2, "e4", 1).position == 0
    assert quality.label(2, "e4", 1) is None  # a label seen twice joins once
    assert quality.summary()[2] == {"accuracy": 1.0, "joined": 1, "unmatched": 3, "evictions": 2, "pending": 2,
                                    "drifts": 0}


def test_a_prediction_served_again_replaces_the_first_without_an_eviction():
    quality = ServedQuality("classification", None, capacity=2)
    quality.served(0, "a", 0, 1)
    quality.served(0, "b", 0, 1)
    quality.served(0, "a", 1, 2)
    join = quality.label(0, "a", 1)
    assert (join.model_version, join.error) == (2, 0.0)
    assert quality.summary()[0]["evictions"] == 0


def test_a_partition_that_moved_away_forgets_what_it_held_and_keeps_its_counts():
    quality = ServedQuality("classification", None)
    quality.served(1, "a", True, 1)
    quality.served(1, "b", True, 1)
    assert quality.label(1, "a", True) is not None
    quality.forget(1)
    assert quality.label(1, "b", True) is None
    assert quality.summary()[1] == {"accuracy": 1.0, "joined": 1, "unmatched": 1, "evictions": 0, "pending": 0,
                                    "drifts": 0}
    quality.forget(7)  # never owned: nothing to forget


def test_the_served_watch_fires_where_the_trainers_detectors_would_on_the_same_errors():
    specs = [DetectorSpec(name="binary.HDDMA")]
    quality = ServedQuality("classification", specs, grace=50)
    watch = ErrorWatch(specs, "classification", 50)
    rng = random.Random(11)
    fired, expected = [], []
    for i in range(3_000):
        wrong = rng.random() < (0.1 if i < 1_500 else 0.5)
        quality.served(0, f"e{i}", "x" if wrong else "y", 4)
        join = quality.label(0, f"e{i}", "y")
        fired += [i for _ in join.detections]
        expected += [i for _ in watch.update(1.0 if wrong else 0.0)]
    assert fired and fired == expected
    assert quality.summary()[0]["drifts"] == len(fired)


def test_served_drift_events_follow_the_drift_schema_and_are_marked_served():
    quality = ServedQuality("classification", [DetectorSpec(name="binary.HDDMA")])
    rng = random.Random(5)
    events = []
    for i in range(3_000):
        wrong = rng.random() < (0.05 if i < 1_000 else 0.6)
        quality.served(2, f"e{i}", 0 if wrong else 1, 3)
        join = quality.label(2, f"e{i}", 1)
        events += served_drift_events(join, "fraud", "p1", 100 + i, 1_000 + i, 9_999)
    assert events
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for event in events:
        body = event.body()
        validator.validate(body)
        assert body["served"] == {"instance": "p1", "partition": 2}
        assert body["kind"] == "concept" and body["action"] == "none" and body["model_version"] == 3
        assert body["id"] == f"fraud-served-p1-2-{body['position']}-binary.HDDMA"
        assert body["source"]["kind"] == "labels" and body["source"]["partition"] == 2
        assert set(body["metrics_after"]) == {"accuracy"}


def test_a_buffer_holds_at_least_one_prediction():
    with pytest.raises(ValueError, match="capacity"):
        ServedQuality("classification", None, capacity=0)
