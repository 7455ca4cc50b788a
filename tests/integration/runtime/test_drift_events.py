"""Drift on the real broker: concept, warning and data drift events, the policy's versions."""

from __future__ import annotations

import random

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.datasets import stream
from driftline.runtime.processor import Processor
from driftline.runtime.replay import replay

pytestmark = pytest.mark.integration


def test_background_policy_publishes_warning_and_swap_and_cuts_a_version(make_config, reader, signing_key):
    config = make_config(
        model={"preset": "hoeffding_tree"},
        checkpoint={"every_examples": 100_000, "drift_min_seconds": 0},  # the run lasts ~1 s
        drift={"policy": "background", "detectors": [{"name": "binary.HDDMA"}]},
    )
    rows = list(stream("synth:stagger", limit=6000, seed=1, drift_every=3000, noise=0.0))
    replay(config, rows, label_delay=5, n_rows=len(rows))

    engine = Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)

    drift = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    assert len(drift) == engine.counters.drift_events
    actions = [(d["level"], d["action"]) for d in drift]
    assert ("warning", "background_start") in actions and ("drift", "background_swap") in actions
    swap = next(d for d in drift if d["action"] == "background_swap")
    assert swap["kind"] == "concept" and swap["input"] == "error" and swap["threshold"] == 0.001
    assert swap["settings"]["drift_confidence"] == 0.001 and swap["position"] >= 3000
    versions = [orjson.loads(m.value()) for m in reader(config, config.topics.versions)]
    assert "drift" in {v["trigger"] for v in versions}


def test_data_drift_reaches_the_drift_topic_with_its_windows(make_config, reader, signing_key):
    config = make_config(
        model={"preset": "logistic_regression", "features": {"x": "num", "z": "num"}},
        checkpoint={"every_examples": 100_000},
        drift={"detectors": [], "data": {"enabled": True}},
    )
    rng = random.Random(4)
    rows = [({"x": rng.gauss(0.7 if i >= 2500 else 0.0, 1), "z": rng.gauss(0, 1)}, rng.random() < 0.5)
            for i in range(4000)]
    replay(config, rows, label_delay=10, n_rows=len(rows))

    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)

    (event,) = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    assert event["kind"] == "data" and event["features"] == ["x"] and event["detector"] == "ks"
    current = event["windows"]["current"]
    assert 2500 <= current["end"]["index"] < 3000 and current["end"]["offset"] == current["end"]["index"]
    assert event["evidence"]["tests"]["x"]["p_adjusted"] <= 0.001
