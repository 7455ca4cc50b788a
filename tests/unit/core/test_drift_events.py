"""Drift events from the engine carry their evidence and match docs/schemas/drift.schema.json."""

from __future__ import annotations

import json
import random
from pathlib import Path

from driftline.config import DeploymentConfig, DetectorSpec, ModelConfig
from driftline.core.engine import Engine
from driftline.core.outputs import DriftEvent
from driftline.datasets import stream

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" / "drift.schema.json").read_text())


def shifted_rows(n=4000, at=2500, seed=2):
    rng = random.Random(seed)
    return [({"x": rng.gauss(0.6 if i >= at else 0.0, 1), "z": rng.gauss(0, 1)}, rng.random() < 0.5) for i in range(n)]


def data_engine(**data) -> Engine:
    return Engine(DeploymentConfig(
        name="t", model=ModelConfig(preset="logistic_regression", features={"x": "num", "z": "num"}),
        drift={"detectors": [], "data": {"enabled": True, **data}},
    ))


def check_schema(body: dict) -> None:
    props = SCHEMA["properties"]
    assert set(SCHEMA["required"]) <= set(body) <= set(props)
    assert body["kind"] in props["kind"]["enum"] and body["level"] in props["level"]["enum"]


def test_data_drift_event_names_the_feature_and_its_windows(timeline):
    engine = data_engine()
    events = [o for r in timeline(shifted_rows(), 5) for o in engine.process(r, 0) if isinstance(o, DriftEvent)]
    (event,) = events
    assert event.drift_kind == "data" and event.features == ["x"] and event.detector == "ks"
    assert event.p_value <= event.threshold == 0.001
    cur, ref = event.windows["current"], event.windows["reference"]
    assert 2500 <= cur["end"]["index"] < 3000 and cur["end"]["event_time"] == cur["end"]["index"]
    assert cur["end"]["index"] - cur["start"]["index"] == 499
    assert (ref["start"]["index"], ref["end"]["index"], ref["size"]) == (0, 999, 1000)
    test = event.evidence["tests"]["x"]
    assert test["psi"] > 0.1 and len(test["histogram"]["reference"]) == len(test["histogram"]["current"]) == 10
    check_schema(json.loads(json.dumps(event.body())))


def test_a_cut_version_rebases_the_reference(timeline):
    engine = data_engine()
    records = timeline(shifted_rows(), 0)
    events = []
    for r in records:
        if r.kind == "features" and r.offset == 2400:
            engine.version = 1  # the processor cut a version: the next 1000 events are the new reference
        events += [o for o in engine.process(r, 0) if isinstance(o, DriftEvent)]
    assert events == [] and engine.data_watch.seen == 4000
    assert engine.data_watch._ref_marks[0]["index"] == 2400


def test_concept_and_warning_events_match_the_schema(timeline):
    rows = list(stream("synth:stagger", limit=3000, drift_every=1500, noise=0.0, seed=1))
    engine = Engine(DeploymentConfig(name="t", model=ModelConfig(preset="hoeffding_tree"),
                                     drift={"policy": "background", "detectors": [DetectorSpec(name="binary.HDDMA")]}))
    events = [o for r in timeline(rows, 0) for o in engine.process(r, 0) if isinstance(o, DriftEvent)]
    assert {(e.level, e.action) for e in events} >= {("warning", "background_start"), ("drift", "background_swap")}
    for e in events:
        body = json.loads(json.dumps(e.body()))
        check_schema(body)
        assert body["action"] in SCHEMA["properties"]["action"]["enum"]
    drift = next(e for e in events if e.level == "drift")
    assert drift.input == "error" and drift.settings["drift_confidence"] == drift.threshold == 0.001


def test_importance_shift_when_the_informative_feature_changes(timeline):
    rng = random.Random(6)
    rows = []
    for i in range(6000):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": rng.gauss(0, 1), "d": rng.gauss(0, 1)}
        signal = x["a"] + 0.5 * x["b"] if i < 3000 else x["d"] + 0.5 * x["c"]  # the ranking reverses
        rows.append((x, signal > 0))
    engine = Engine(DeploymentConfig(
        name="t", model=ModelConfig(preset="logistic_regression"),
        drift={"detectors": [], "metrics_window": 250, "importance_min_tau": 0.5, "importance_warmup": 4},
    ))
    events = [o for r in timeline(rows, 0) for o in engine.process(r, 0) if isinstance(o, DriftEvent)]
    assert events and all(e.drift_kind == "importance" for e in events)
    assert all(e.position > 3000 for e in events)
    first = events[0]
    ref, cur = first.evidence["reference"], first.evidence["current"]
    # independent check: the reference ranks a above d, the current one no longer does
    assert ref["a"] > ref["d"] and cur["d"] > ref["d"] and first.statistic["tau"] < 0.5
    check_schema(json.loads(json.dumps(first.body())))
