"""Fairness with the protected side topic on the real broker: the attribute travels on
``<prefix>.<model>.protected``, joined by event id, and never reaches the model; fairness
events and gauges appear; a kill -9 of ``driftline run`` restores the fairness state exactly
like the rest of the engine (the same states, counts and published events as an
uninterrupted run)."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import jsonschema
import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.fairness_data import lending
from driftline.runtime.processor import Processor
from driftline.runtime.publisher import Publisher
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"
FEATURES = {"region": "cat", "income": "num", "debt": "num"}  # the group is not a feature
FAIRNESS = {"enabled": True, "attributes": [{"name": "group", "source": "protected", "reference": "a"}],
            "metrics": ["selection_rate", "base_rate"], "check_every": 100}
DELAY = 50
RANK = {"protected": -1, "labels": 0, "features": 1}


def _timeline(n: int, seed: int, t0: int) -> list[tuple[str, int, str, bytes]]:
    """(kind, timestamp, id, body) of every record, each topic in timestamp order. Label bias
    beta = 0.5 against group b from event 2000 on. Most protected records share their
    features' time; every 7th comes 20 ms later (before its label: attached late) and every
    97th after its label (counted as "missing")."""
    out = []
    for i, (x, y, _) in enumerate(itertools.islice(lending(seed=seed, beta=0.5, t0=2000), n)):
        group = x.pop("group")
        eid = f"e{i}"
        late = DELAY + 5 if i % 97 == 0 else 20 if i % 7 == 0 else 0
        out.append(("features", t0 + i, eid, orjson.dumps({"id": eid, "features": x})))
        out.append(("protected", t0 + i + late, eid, orjson.dumps({"id": eid, "attributes": {"group": group}})))
        out.append(("labels", t0 + i + DELAY, eid, orjson.dumps({"id": eid, "label": y})))
    return sorted(out, key=lambda r: (RANK[r[0]], r[1]))  # per topic, by time (stable: by event)


def _produce(config, timeline) -> None:
    with Publisher(config, validate=False) as publisher:
        for kind, ts, eid, body in timeline:
            value = orjson.loads(body)
            if kind == "features":
                publisher.features(eid, value["features"], time=ts)
            elif kind == "labels":
                publisher.label(eid, value["label"], time=ts)
            else:
                publisher.protected(eid, value["attributes"], time=ts)


def _reference(config, timeline) -> tuple[Engine, list[str]]:
    """The uninterrupted run in memory: the merger's order (time, kind, offset) on one partition."""
    offsets: dict[str, int] = {}
    records = []
    for kind, ts, eid, body in timeline:
        offset = offsets[kind] = offsets.get(kind, -1) + 1
        records.append(InputRecord(kind, 0, offset, ts, eid.encode(), body))
    records.sort(key=lambda r: (r.timestamp, RANK[r.kind], r.offset))
    engine = Engine(config)
    out = [o for record in records for o in engine.process(record, now_ms=0)]
    return engine, [o.id for o in out if getattr(o, "drift_kind", None) == "fairness"]


def _t0(n: int) -> int:
    return int(time.time() * 1000) - n - 2 * DELAY - 1000


def _weights(engine: Engine) -> set[str]:
    return set(engine.model["LogisticRegression"].weights)


def test_the_side_topic_attribute_never_reaches_the_model(make_config, reader, signing_key):
    config = make_config(model={"preset": "logistic_regression", "features": FEATURES},
                         drift={"policy": "none"}, governance={"fairness": FAIRNESS})
    n = 6000
    timeline = _timeline(n, seed=5, t0=_t0(n))
    _produce(config, timeline)
    registry = CollectorRegistry()

    engine = Processor(config, signing_key, registry=registry).run(exit_when_idle_s=3)

    assert engine.n_learned == n and engine.counters.dead_letters == 0
    # The model learned region, income and debt; nothing named after the group.
    weights = _weights(engine)
    assert weights and not any("group" in name for name in weights)
    assert {name.split("_")[0] for name in weights} <= set(FEATURES)
    side = engine.fairness.side
    assert side.received == n and side.late > 0 and side.unattributed > 0
    groups = engine.fairness.monitor.views.sliding["group"]
    assert {"a", "b", "missing"} <= set(groups)
    events = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    fairness = [e for e in events if e["kind"] == "fairness"]
    drift = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "drift.schema.json").read_text()))
    fair = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "fairness.schema.json").read_text()))
    for body in fairness:
        drift.validate(body)
        fair.validate(body)
    violation = next(e for e in fairness if e["detector"] == "base_rate" and e["level"] == "violation")
    assert violation["features"] == ["group"] and violation["evidence"]["worst"]["group"] == "b"
    assert violation["statistic"]["ratio"] < 0.8 and violation["position"] > 2000 - DELAY
    assert registry.get_sample_value("driftline_fairness_state", {
        "model": config.name, "attribute": "group", "metric": "base_rate", "state": "violation"}) == 1.0
    assert registry.get_sample_value("driftline_fairness_group_n", {
        "model": config.name, "attribute": "group", "group": "b", "window": "sliding"}) > 100
    # Predictions carry no protected attribute either.
    predictions = [orjson.loads(m.value()) for m in reader(config, config.topics.predictions)]
    assert len(predictions) == n and not any("group" in json.dumps(p) for p in predictions[:200])


def _write_toml(config, path: Path) -> None:
    path.write_text(f"""
name = "{config.name}"
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[model]
preset = "logistic_regression"
features = {{ region = "cat", income = "num", debt = "num" }}
[drift]
policy = "none"
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = 1000
[processor]
commit_interval_ms = 50
batch_size = 200
[governance.fairness]
enabled = true
metrics = ["selection_rate", "base_rate"]
check_every = 100
attributes = [{{ name = "group", source = "protected", reference = "a" }}]
""")


def test_kill_minus_nine_restores_the_side_topic_fairness_state(make_config, reader, signing_key, tmp_path,
                                                                kill_runs):
    config = make_config(model={"preset": "logistic_regression", "features": FEATURES},
                         drift={"policy": "none"}, governance={"fairness": FAIRNESS})
    n = 8000
    timeline = _timeline(n, seed=6, t0=_t0(n))
    _produce(config, timeline)
    toml = tmp_path / "deployment.toml"
    _write_toml(config, toml)
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    kills = kill_runs(config, toml, signing_key, runs=2, seed=7)
    assert kills >= 1, "the stream finished before the processor could be killed"

    _, state = store.load(store.latest())
    engine, (reference, reference_ids) = state["engine"], _reference(config, timeline)
    assert engine.n_learned == n
    assert _weights(engine) == _weights(reference) and not any("group" in w for w in _weights(engine))
    watch, ref = engine.fairness, reference.fairness
    assert watch.monitor.states == ref.monitor.states
    assert watch.monitor.events == ref.monitor.events
    assert (watch.side.received, watch.side.late, watch.side.unattributed) == (
        ref.side.received, ref.side.late, ref.side.unattributed)
    assert watch.side._waiting == ref.side._waiting and len(watch.side) > 0
    # The sliding window is the same; the cumulative view restarts at each version, and the
    # reference cut none.
    sliding = lambda w: {k: [r for r in rows if r[0].get("window") != "cumulative"]  # noqa: E731
                         for k, rows in w.gauges().items()}
    assert sliding(watch) == sliding(ref)
    assert watch.monitor.views.version > 0
    # Exactly once: each state change published once, the same changes as the uninterrupted run.
    published = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    ids = [e["id"] for e in published if e["kind"] == "fairness"]
    assert len(ids) == len(set(ids)) and ids
    assert ids == reference_ids
