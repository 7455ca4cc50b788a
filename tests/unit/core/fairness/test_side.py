"""The protected side topic in the engine: groups joined by event id, never seen by the model."""

from __future__ import annotations

import pickle
import random

import orjson
import pytest

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.ordering import EventTimeMerger
from driftline.core.outputs import DeadLetter

RANK = {"protected": -1, "labels": 0, "features": 1}


def config(join: dict | None = None, **fairness) -> DeploymentConfig:
    return DeploymentConfig(name="side", model={"preset": "logistic_regression", "features": {"x": "num"}},
                            join=join or {},
                            governance={"fairness": {
                                "enabled": True, "metrics": ["selection_rate", "base_rate"], "check_every": 1,
                                "min_group": 1, "min_denominator": 1,
                                "attributes": [{"name": "age", "source": "protected", "bins": [40], "reference": ">=40"}],
                                **fairness}})


def features(i: int, t: int, x: float) -> InputRecord:
    return InputRecord("features", 0, i, t, f"e{i}".encode(), orjson.dumps({"id": f"e{i}", "features": {"x": x}}))


def protected(i: int, t: int, age: int, offset: int | None = None) -> InputRecord:
    return InputRecord("protected", 0, i if offset is None else offset, t, f"e{i}".encode(),
                       orjson.dumps({"id": f"e{i}", "attributes": {"age": age, "name": "not kept"}}))


def label(i: int, t: int, y: bool) -> InputRecord:
    return InputRecord("labels", 0, i, t, f"e{i}".encode(), orjson.dumps({"id": f"e{i}", "label": y}))


def cumulative(engine: Engine) -> dict[str, dict[str, int]]:
    return {g: c.as_dict() for g, c in sorted(engine.fairness.monitor.views.cumulative["age"].items())}


def test_groups_from_the_side_topic_count_and_never_reach_the_model():
    engine = Engine(config())
    for record in (protected(0, 0, 30), features(0, 0, 1.0), label(0, 5, True),
                   features(1, 10, -1.0), protected(1, 12, 50), label(1, 15, False),
                   features(2, 20, 2.0), label(2, 25, True), protected(2, 30, 20)):
        out = engine.process(record, now_ms=0)
        assert not [o for o in out if isinstance(o, DeadLetter)]
    groups = cumulative(engine)
    # e0: protected first; e1: attached late, before its label; e2: label first, counted as missing
    assert groups == {"<40": {"n": 1, "pp": 0, "labelled": 1, "tp": 0, "fp": 0, "tn": 0, "fn": 1},
                      ">=40": {"n": 1, "pp": 1, "labelled": 1, "tp": 0, "fp": 1, "tn": 0, "fn": 0},
                      "missing": {"n": 1, "pp": 1, "labelled": 1, "tp": 1, "fp": 0, "tn": 0, "fn": 0}}
    side = engine.fairness.side
    assert (side.received, side.late, side.unattributed, len(side)) == (3, 1, 1, 1)
    assert set(engine.model["LogisticRegression"].weights) == {"x"}
    # Only the group is kept for the join, never the value (nor the fields fairness does not read).
    blob = pickle.dumps(engine)
    assert b"not kept" not in blob


def test_a_second_record_for_an_id_is_a_dead_letter():
    engine = Engine(config())
    engine.process(protected(0, 0, 30), now_ms=0)
    out = engine.process(protected(0, 1, 31, offset=1), now_ms=0)
    assert [o.reason for o in out] == ["duplicate_protected"]
    engine.process(features(0, 2, 1.0), now_ms=0)
    out = engine.process(protected(0, 3, 31, offset=2), now_ms=0)
    assert [o.reason for o in out] == ["duplicate_protected"]
    bad = InputRecord("protected", 0, 3, 4, b"e9", b'{"id": "e9", "attributes": {"age": [1]}}')
    assert [o.reason for o in engine.process(bad, now_ms=0)] == ["mistyped_attribute"]


def test_a_protected_record_without_features_expires_with_the_join_window():
    engine = Engine(config(join={"max_age_ms": 100, "max_pending": 10}))
    engine.process(protected(0, 0, 30), now_ms=0)
    engine.process(features(1, 500, 1.0), now_ms=0)
    assert len(engine.fairness.side) == 0 and engine.fairness.side.expired == 1


def test_side_attributes_cannot_be_model_features():
    with pytest.raises(ValueError, match="protected side topic"):
        DeploymentConfig(name="side", model={"features": {"x": "num", "age": "num"}}, governance={"fairness": {
            "enabled": True, "attributes": [{"name": "age", "source": "protected"}]}})


def _stream(n: int, seed: int) -> list[InputRecord]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        age = rng.choice([25, 35, 45, 65])
        x = rng.gauss(0.5 if age >= 40 else -0.5, 1.0)
        records.append(features(i, 10 * i, x))
        records.append(protected(i, 10 * i + rng.choice([0, 0, 0, 4, 30]), age))
        records.append(label(i, 10 * i + 20, rng.random() < (0.6 if age >= 40 else 0.4)))
    return sorted(records, key=lambda r: (r.timestamp, RANK[r.kind], r.offset))


def test_a_pickled_engine_goes_on_exactly_like_the_uninterrupted_one():
    records = _stream(600, seed=3)
    cfg = config(check_every=50, min_group=30, min_denominator=10)
    straight = Engine(cfg)
    ids = [o.id for r in records for o in straight.process(r, now_ms=0) if getattr(o, "drift_kind", "") == "fairness"]
    resumed = Engine(cfg)
    half = len(records) // 2
    got = [o.id for r in records[:half] for o in resumed.process(r, now_ms=0)
           if getattr(o, "drift_kind", "") == "fairness"]
    resumed = pickle.loads(pickle.dumps(resumed))
    got += [o.id for r in records[half:] for o in resumed.process(r, now_ms=0)
            if getattr(o, "drift_kind", "") == "fairness"]
    assert got == ids and ids
    assert cumulative(resumed) == cumulative(straight)
    assert resumed.fairness.gauges() == straight.fairness.gauges()
    assert resumed.fairness.side.late == straight.fairness.side.late > 0


def test_the_merger_takes_protected_records_first_at_equal_times():
    merger = EventTimeMerger([("protected", 0), ("labels", 0), ("features", 0)], max_idle_ms=0)
    for record in (features(0, 5, 1.0), features(1, 6, 1.0), label(7, 5, True), protected(0, 5, 30),
                   protected(1, 6, 30)):
        merger.push(record)
    order = []
    while run := merger.pop_run(lambda source: 0, 0, 10):
        order += [(r.kind, r.timestamp) for r in run]
    assert order == [("protected", 5), ("labels", 5), ("features", 5), ("protected", 6), ("features", 6)]
