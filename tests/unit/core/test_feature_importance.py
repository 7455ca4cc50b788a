"""Feature importance for every model family, kept over time in the engine's history."""

from __future__ import annotations

import pickle
import random

import orjson
import pytest
from river import tree

from driftline.config import DeploymentConfig, ModelConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.importance import ImportanceWatch, importances
from driftline.core.tree_importance import tree_importances


def records(n: int, seed: int = 2):
    """y depends on a only; b is noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = {"a": rng.random(), "b": rng.random()}
        key = f"e{i}".encode()
        out.append(InputRecord("features", 0, i, 2 * i, key, orjson.dumps({"id": f"e{i}", "features": x})))
        out.append(InputRecord("labels", 0, i, 2 * i + 1, key, orjson.dumps({"id": f"e{i}", "label": x["a"] > 0.5})))
    return out


def run(preset: str, n: int = 3000) -> Engine:
    engine = Engine(DeploymentConfig(name="imp", model=ModelConfig(preset=preset), drift={"metrics_window": 250}))
    for record in records(n):
        engine.process(record, 0)
    return engine


@pytest.mark.parametrize("preset", ["logistic_regression", "hoeffding_tree", "hoeffding_adaptive_tree",
                                    "adaptive_random_forest", "gaussian_naive_bayes"])
def test_every_family_ranks_the_informative_feature_first(preset):
    engine = run(preset)
    imp = engine.feature_importances()
    assert imp and max(imp, key=imp.get) == "a", imp
    # ...and the ranking is kept over time, once per metrics window.
    kept = [m["importances"] for m in engine.history.metrics]
    assert len(kept) == engine.scores.n // 250 and max(kept[-1], key=kept[-1].get) == "a"
    # Structural importance where the family has one; permutation only for the others.
    assert (engine.permutation is not None) == (preset == "gaussian_naive_bayes")


def test_permutation_importance_is_deterministic_across_a_pickle():
    recs = records(3000)
    a = Engine(DeploymentConfig(name="imp", model=ModelConfig(preset="gaussian_naive_bayes")))
    for r in recs[:3000]:
        a.process(r, 0)
    b = pickle.loads(pickle.dumps(a))
    for r in recs[3000:]:
        a.process(r, 0)
        b.process(r, 0)
    assert a.feature_importances() == b.feature_importances()
    # one in `every` labelled events is explained; iXAI's first explanation only fills its storage
    assert a.permutation.sampled == b.permutation.sampled == 3000 // a.permutation.every - 1


def test_tree_shares_sum_to_one_and_empty_before_a_split():
    model = tree.HoeffdingTreeClassifier()
    assert tree_importances(model) == {}
    assert importances(model) == {}
    assert tree_importances(object()) is None


def test_importance_shift_watch_takes_any_family():
    watch = ImportanceWatch(min_tau=0.5, warmup=1)
    assert watch.check(None, {"a": 3.0, "b": 2.0, "c": 1.0}) is None  # the reference
    shift = watch.check(None, {"a": 1.0, "b": 2.0, "c": 3.0})
    assert shift is not None and shift[0] < 0.5


def test_a_tree_emits_an_importance_shift_when_the_informative_features_change():
    from driftline.core.outputs import DriftEvent

    engine = Engine(DeploymentConfig(name="imp", model=ModelConfig(preset="hoeffding_adaptive_tree"), drift={
        "metrics_window": 500, "importance_min_tau": 0.9, "importance_warmup": 2, "policy": "none",
        "detectors": []}))
    rng = random.Random(3)
    events = []
    for i in range(12000):
        x = {"a": rng.random(), "b": rng.random(), "c": rng.random(), "d": rng.random()}
        y = x["a"] + x["b"] > 1 if i < 4000 else x["c"] + x["d"] > 1
        key = f"e{i}".encode()
        for rec in (InputRecord("features", 0, i, 2 * i, key, orjson.dumps({"id": f"e{i}", "features": x})),
                    InputRecord("labels", 0, i, 2 * i + 1, key, orjson.dumps({"id": f"e{i}", "label": y}))):
            events += [o for o in engine.process(rec, 0) if isinstance(o, DriftEvent) and o.drift_kind == "importance"]
    assert events and events[0].position > 4000 and events[0].detector == "kendall_tau"
    assert events[0].id in {e["id"] for e in engine.history.events}
