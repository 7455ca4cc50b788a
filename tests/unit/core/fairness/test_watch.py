"""Fairness inside the engine: events on the drift topic that match the schemas, gauges, pickling."""

from __future__ import annotations

import itertools
import json
import pickle
from pathlib import Path

import jsonschema
import orjson
from prometheus_client import CollectorRegistry

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.outputs import DriftEvent
from driftline.fairness_data import lending
from driftline.observability.metrics import EngineCollector

SCHEMAS = Path(__file__).resolve().parents[4] / "docs" / "schemas"
FAIRNESS = {"enabled": True, "attributes": [{"name": "group", "reference": "a"}],
            "metrics": ["selection_rate", "base_rate", "tpr"], "coverage_min": 0.5}


def config() -> DeploymentConfig:
    return DeploymentConfig(
        name="loans", drift={"policy": "none"},
        model={"preset": "logistic_regression",
               "features": {"group": "cat", "region": "cat", "income": "num", "debt": "num"}},
        governance={"fairness": FAIRNESS})


def records(n: int, beta: float = 0.5):
    """Features at t, labels at t + 20 (every 7th event of group b never gets a label)."""
    out = []
    for i, (x, label, _) in enumerate(itertools.islice(lending(seed=3, beta=beta), n)):
        key = f"e{i}".encode()
        out.append(InputRecord("features", 0, i, 10 * i, key, orjson.dumps({"id": key.decode(), "features": x})))
        if not (x["group"] == "b" and i % 7 == 0):
            out.append(InputRecord("labels", 0, i, 10 * i + 20, key, orjson.dumps({"id": key.decode(), "label": label})))
    return sorted(out, key=lambda r: (r.timestamp, r.kind != "labels"))


def fairness_events(outputs):
    return [o for o in outputs if isinstance(o, DriftEvent) and o.drift_kind == "fairness"]


def test_label_bias_becomes_a_fairness_event_that_matches_both_schemas():
    engine = Engine(config())
    out = [o for r in records(6000) for o in engine.process(r, now_ms=5)]
    events = fairness_events(out)
    base = [e for e in events if e.detector == "base_rate"]
    assert [e.level for e in base][:1] == ["violation"]
    drift = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "drift.schema.json").read_text()))
    fair = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "fairness.schema.json").read_text()))
    for event in events:
        body = orjson.loads(orjson.dumps(event.body()))
        drift.validate(body)
        fair.validate(body)
    body = base[0].body()
    assert body["kind"] == "fairness" and body["features"] == ["group"] and body["threshold"] == 0.8
    evidence = body["evidence"]
    assert evidence["worst"]["group"] == "b" and evidence["before"] == "insufficient_data"
    assert 0.3 < body["statistic"]["ratio"] < 0.7  # 1 - beta = 0.5, in one window
    coverage = evidence["label_coverage"]  # the labels of the last two predictions are on their way
    assert 0.8 < coverage["b"] < 0.9 and 0.99 < coverage["a"] < 1.0
    assert evidence["label_delay_ms"]["a"] == 20.0
    assert engine.counters.drift_events == len(events)


def test_fairness_state_survives_pickling_like_the_rest_of_the_engine():
    rows = records(3000)
    whole = Engine(config())
    expected = [o for r in rows for o in whole.process(r, now_ms=5)]
    first = Engine(config())
    got = [o for r in rows[:2500] for o in first.process(r, now_ms=5)]
    restored = pickle.loads(pickle.dumps(first))
    got += [o for r in rows[2500:] for o in restored.process(r, now_ms=5)]
    assert [e.body() for e in fairness_events(got)] == [e.body() for e in fairness_events(expected)]
    assert restored.fairness.gauges() == whole.fairness.gauges()
    assert restored.fairness.monitor.states == whole.fairness.monitor.states


def test_the_gauges_reach_prometheus():
    engine = Engine(config())
    for r in records(3000):
        engine.process(r, now_ms=5)
    registry = CollectorRegistry()
    registry.register(EngineCollector("loans", lambda: {"fairness": engine.fairness.gauges()}))
    value = registry.get_sample_value
    state = engine.fairness.monitor.states[("group", "base_rate")]
    assert value("driftline_fairness_state", {"model": "loans", "attribute": "group", "metric": "base_rate",
                                              "state": state}) == 1.0
    n_b = value("driftline_fairness_group_n", {"model": "loans", "attribute": "group", "group": "b",
                                              "window": "sliding"})
    assert n_b == engine.fairness.monitor.views.sliding["group"]["b"].n
    assert value("driftline_fairness_disparity", {"model": "loans", "attribute": "group", "group": "a",
                                                  "metric": "selection_rate", "window": "cumulative"}) == 1.0
    assert value("driftline_fairness_rate", {"model": "loans", "attribute": "group", "group": "b",
                                             "metric": "tpr", "window": "sliding"}) is not None
    names = {m.name for m in EngineCollector("x", lambda: {"fairness": None}).collect()}
    assert not any(n.startswith("driftline_fairness") for n in names)  # off: no fairness families


def test_off_by_default_and_no_gauges():
    engine = Engine(DeploymentConfig(name="plain"))
    assert engine.fairness is None


def _decisions(mitigation: str, n: int = 20_000, last: int = 8000):
    """The engine on the lending stream (label bias 0.3), the group on the protected side topic
    (the model learns region, income and debt): the DP ratio of its predictions over the last
    ``last`` events, their accuracy against the unbiased truth, and the model's weights."""
    fairness = {**FAIRNESS, "attributes": [{"name": "group", "source": "protected", "reference": "a"}],
                "mitigation": mitigation, "acknowledge_disparate_treatment": True}
    engine = Engine(DeploymentConfig(
        name="loans", drift={"policy": "none"}, governance={"fairness": fairness},
        model={"preset": "logistic_regression", "features": {"region": "cat", "income": "num", "debt": "num"}}))
    selected, seen, correct = {"a": 0, "b": 0}, {"a": 0, "b": 0}, 0
    for i, (x, label, true) in enumerate(itertools.islice(lending(seed=2, beta=0.3), n)):
        key, group = f"e{i}".encode(), x.pop("group")
        engine.process(InputRecord("protected", 0, i, 10 * i, key, orjson.dumps(
            {"id": key.decode(), "attributes": {"group": group}})), now_ms=0)
        (prediction, *_) = engine.process(InputRecord("features", 0, i, 10 * i, key, orjson.dumps(
            {"id": key.decode(), "features": x})), now_ms=0)
        engine.process(InputRecord("labels", 0, i, 10 * i + 1, key, orjson.dumps(
            {"id": key.decode(), "label": label})), now_ms=0)
        if i >= n - last:
            selected[group] += prediction.prediction is True
            seen[group] += 1
            correct += prediction.prediction == true
    rates = [selected[g] / seen[g] for g in ("a", "b")]
    return min(rates) / max(rates), correct / last, set(engine.model["LogisticRegression"].weights)


def test_mitigation_in_the_engine_raises_demographic_parity():
    (dp_none, acc_none, w_none), (dp_rw, acc_rw, w_rw), (dp_gt, acc_gt, w_gt) = (
        _decisions("none"), _decisions("reweigh"), _decisions("group_threshold"))
    print(f"engine DP ratio / accuracy: none {dp_none:.3f} / {acc_none:.4f}, reweigh {dp_rw:.3f} / {acc_rw:.4f}, "
          f"group_threshold {dp_gt:.3f} / {acc_gt:.4f}")
    assert not any("group" in name for name in w_none | w_rw | w_gt)  # the model never saw the group
    assert dp_rw >= 0.95 and dp_gt >= 0.99 and dp_none < 0.9
    assert acc_rw >= acc_none - 0.005 and acc_gt >= acc_none - 0.005
