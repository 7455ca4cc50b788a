"""The engine puts the champion's explanation in its prediction records, only when enabled."""

from __future__ import annotations

import math
import pickle

import orjson
import pytest

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.outputs import Prediction
from driftline.datasets import stream


def _run(config: DeploymentConfig, n: int = 400) -> list[Prediction]:
    engine, out = Engine(config), []
    for i, (x, y) in enumerate(stream("synth:agrawal", limit=n, seed=3)):
        body = orjson.dumps({"id": f"e{i}", "features": x})
        out += engine.process(InputRecord("features", 0, 2 * i, 10 * i, f"e{i}".encode(), body), now_ms=0)
        label = orjson.dumps({"id": f"e{i}", "label": y})
        out += engine.process(InputRecord("labels", 0, 2 * i + 1, 10 * i + 1, f"e{i}".encode(), label), now_ms=0)
    return [o for o in out if isinstance(o, Prediction)]


def test_off_by_default_and_no_member_in_the_record():
    predictions = _run(DeploymentConfig(name="t"), 20)
    assert all(p.explanation is None and "explanation" not in p.body() for p in predictions)


def test_a_linear_champion_explains_the_last_class_logit():
    config = DeploymentConfig(name="t", model={"classes": [0, 1]}, governance={"explain": {"enabled": True, "top_k": 9}})
    predictions = _run(config)
    last = predictions[-1].body()
    e = last["explanation"]
    assert e["method"] == "linear" and e["target"] == "1" and e["output"] == "logit"
    assert abs(e["base"] + sum(e["contributions"].values()) - e["value"]) < 1e-9
    assert abs(1 / (1 + math.exp(-e["value"])) - last["proba"]["1"]) < 1e-9
    assert all(e["contributions"][r] < 0 for r in e["reasons"])


def test_top_k_bounds_the_record_and_trees_explain_the_probability():
    config = DeploymentConfig(name="t", model={"preset": "hoeffding_tree", "classes": [0, 1]},
                              governance={"explain": {"enabled": True, "top_k": 2}})
    for p in _run(config):
        e = p.body()["explanation"]
        assert e["method"] == "saabas" and len(e["contributions"]) <= 2 and len(e["reasons"]) <= 2


@pytest.mark.parametrize("preset", ["logistic_regression", "hoeffding_tree"])
def test_an_engine_pickled_mid_stream_explains_as_the_uninterrupted_one(preset):
    config = DeploymentConfig(name="t", model={"preset": preset}, governance={"explain": {"enabled": True}})
    rows = list(stream("synth:agrawal", limit=1200, seed=9))

    def feed(engine, part, start):
        out = []
        for i, (x, y) in enumerate(part, start):
            out += engine.process(InputRecord("features", 0, 2 * i, 10 * i, b"k", orjson.dumps({"id": f"e{i}", "features": x})), 0)
            out += engine.process(InputRecord("labels", 0, 2 * i + 1, 10 * i + 1, b"k", orjson.dumps({"id": f"e{i}", "label": y})), 0)
        return [o.body() for o in out if isinstance(o, Prediction)]

    whole = Engine(config)
    expected = feed(whole, rows, 0)
    half = Engine(config)
    first = feed(half, rows[:600], 0)
    restored = pickle.loads(pickle.dumps(half))
    assert first + feed(restored, rows[600:], 600) == expected
    assert all("explanation" in body for body in expected)
