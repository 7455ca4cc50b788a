"""The sampler publishes each drift event once (with the engine's id), version changes,
per-variant metrics and the data-drift state after each evaluation."""

from __future__ import annotations

import random

import orjson

from driftline.config import DeploymentConfig, ModelConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.outputs import DriftEvent
from driftline.dashboard import LiveFeed, Sampler


def test_sampler_publishes_what_changed():
    engine = Engine(DeploymentConfig(
        name="s", model=ModelConfig(preset="logistic_regression", features={"x": "num", "z": "num"}),
        drift={"data": {"enabled": True}},
        lifecycle={"challengers": [{"name": "nb", "model": {"preset": "gaussian_naive_bayes"}}]}))
    feed = LiveFeed()
    clock = iter(range(100, 10_000)).__next__
    sampler = Sampler(feed, lambda: engine, lambda: {"version": engine.version, "scores": engine.scores.values(),
                                                      "lag": {"features-0": 3}}, clock=lambda: float(clock()))
    rng = random.Random(1)
    emitted: list[str] = []
    for i in range(4000):
        x = {"x": rng.gauss(1.0 if i >= 2000 else 0.0, 1), "z": rng.gauss(0, 1)}
        key = f"e{i}".encode()
        for rec in (InputRecord("features", 0, i, 2 * i, key, orjson.dumps({"id": f"e{i}", "features": x})),
                    InputRecord("labels", 0, i, 2 * i + 1, key, orjson.dumps({"id": f"e{i}", "label": x["x"] > 0}))):
            emitted += [o.id for o in engine.process(rec, 0) if isinstance(o, DriftEvent)]
        if i % 500 == 0:
            sampler.sample()
        if i == 3000:
            engine.version = 2  # a cut
    sampler.sample()
    last = feed.since(None)[-1].id
    sampler.sample()  # nothing new: a tick only, no second drift, features or importance event
    assert [e.event for e in feed.since(last)] == ["tick"]
    events = [(e.event, orjson.loads(e.data)) for e in feed.since(None)]
    drifts = [d["id"] for kind, d in events if kind == "drift"]
    assert emitted and drifts == emitted
    assert [(d["from"], d["to"]) for kind, d in events if kind == "version"] == [(None, 0), (0, 2)]
    ticks = [d for kind, d in events if kind == "tick"]
    assert set(ticks[-1]["metrics"]) == {"champion", "nb"} and ticks[-1]["lag"] == 3
    assert ticks[-1]["learned_per_s"] == 0.0 and ticks[1]["predictions_per_s"] == 500.0
    features = [d for kind, d in events if kind == "features"]
    assert features and set(features[-1]["features"]) == {"x", "z"}
