"""Fairness on the real broker: events on .drift that match the schemas, gauges, and a fairness
state that a kill -9 and a restart restore exactly like the rest of the engine.

The attribute is a model feature here; test_fairness_side.py reads it from the protected side topic."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.core.engine import Engine
from driftline.fairness_data import lending
from driftline.runtime.processor import Processor
from driftline.runtime.replay import replay
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"
FEATURES = {"group": "cat", "region": "cat", "income": "num", "debt": "num"}
FAIRNESS = {"enabled": True, "attributes": [{"name": "group", "reference": "a"}],
            "metrics": ["selection_rate", "base_rate"], "check_every": 100}
DELAY = 50


def rows(n: int, seed: int = 5):
    """Label bias beta = 0.5 against group b from event 2000 on."""
    return [(x, label) for x, label, _ in itertools.islice(lending(seed=seed, beta=0.5, t0=2000), n)]


def test_fairness_events_and_gauges_on_the_broker(make_config, reader, signing_key):
    config = make_config(model={"preset": "logistic_regression", "features": FEATURES},
                         drift={"policy": "none"}, governance={"fairness": FAIRNESS})
    data = rows(6000)
    replay(config, data, label_delay=DELAY, n_rows=len(data))
    registry = CollectorRegistry()

    engine = Processor(config, signing_key, registry=registry).run(exit_when_idle_s=3)

    events = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    fairness = [e for e in events if e["kind"] == "fairness"]
    drift = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "drift.schema.json").read_text()))
    fair = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "fairness.schema.json").read_text()))
    for body in fairness:
        drift.validate(body)
        fair.validate(body)
    violation = next(e for e in fairness if e["detector"] == "base_rate" and e["level"] == "violation")
    assert violation["evidence"]["worst"]["group"] == "b" and violation["statistic"]["ratio"] < 0.8
    assert violation["position"] > 2000 - DELAY  # none before the bias starts
    assert engine.fairness.monitor.states[("group", "base_rate")] == "violation"
    assert registry.get_sample_value("driftline_fairness_state", {
        "model": config.name, "attribute": "group", "metric": "base_rate", "state": "violation"}) == 1.0
    assert registry.get_sample_value("driftline_fairness_group_n", {
        "model": config.name, "attribute": "group", "group": "b", "window": "sliding"}) > 100


def _write_toml(config, path: Path) -> None:
    path.write_text(f"""
name = "{config.name}"
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[model]
preset = "logistic_regression"
features = {{ group = "cat", region = "cat", income = "num", debt = "num" }}
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
attributes = [{{ name = "group", reference = "a" }}]
""")


def _reference_engine(config, records) -> tuple[Engine, list[str]]:
    """The uninterrupted run (the same records in the same event-time order, in memory) and
    the ids of its fairness events."""
    engine = Engine(config)
    out = [o for record in records for o in engine.process(record, now_ms=0)]
    return engine, [o.id for o in out if getattr(o, "drift_kind", None) == "fairness"]


def test_kill_minus_nine_restores_the_fairness_state(make_config, reader, signing_key, tmp_path, kill_runs,
                                                     reference_records):
    config = make_config(model={"preset": "logistic_regression", "features": FEATURES},
                         drift={"policy": "none"}, governance={"fairness": FAIRNESS})
    data = rows(8000, seed=6)
    replay(config, data, label_delay=DELAY, n_rows=len(data))
    toml = tmp_path / "deployment.toml"
    _write_toml(config, toml)
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    kills = kill_runs(config, toml, signing_key, runs=2, seed=7)
    assert kills >= 1, "the stream finished before the processor could be killed"

    _, state = store.load(store.latest())
    engine, (reference, reference_ids) = state["engine"], _reference_engine(config, reference_records(data, DELAY))
    assert engine.n_learned == len(data)
    assert engine.fairness.monitor.states == reference.fairness.monitor.states
    assert engine.fairness.monitor.events == reference.fairness.monitor.events
    # The sliding window is the same; the cumulative view restarts at each version, and the
    # reference cut none.
    sliding = lambda watch: {k: [r for r in rows if r[0].get("window") != "cumulative"]  # noqa: E731
                             for k, rows in watch.gauges().items()}
    assert sliding(engine.fairness) == sliding(reference.fairness)
    assert engine.fairness.monitor.views.version > 0  # the versions cut reached the monitor
    # Exactly once: each state change published once, the same changes as the uninterrupted run.
    published = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    ids = [e["id"] for e in published if e["kind"] == "fairness"]
    assert len(ids) == len(set(ids)) and ids
    assert ids == reference_ids

