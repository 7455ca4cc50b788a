"""The engine against River itself: same schedule of delayed labels, same numbers."""

from __future__ import annotations

import pickle

import orjson
import pytest
from river import evaluate, metrics
from river import stream as river_stream

from driftline.config import DeploymentConfig, DetectorSpec, DriftConfig, JoinConfig, ModelConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.models import build_model
from driftline.core.ordering import EventTimeMerger
from driftline.core.outputs import DeadLetter, DriftEvent, Prediction
from driftline.datasets import stream

PHISHING = list(stream("river:Phishing"))
TRUMP = list(stream("river:TrumpApproval"))


def config(preset="logistic_regression", **kwargs) -> DeploymentConfig:
    """River's semantics (policy "none": no adaptation) unless a test asks for a policy."""
    kwargs.setdefault("drift", {"policy": "none"})
    return DeploymentConfig(name="test", model=ModelConfig(preset=preset), **kwargs)


def run(engine: Engine, records, now_ms: int = 0) -> list:
    out = []
    for record in records:
        out.extend(engine.process(record, now_ms))
    return out


@pytest.mark.parametrize("preset", ["logistic_regression", "hoeffding_tree"])
@pytest.mark.parametrize("delay", [0, 1, 10, 100])
def test_accuracy_equals_progressive_val_score(preset, delay, timeline):
    engine = Engine(config(preset))
    predictions = [o for o in run(engine, timeline(PHISHING, delay)) if isinstance(o, Prediction)]
    expected = evaluate.progressive_val_score(PHISHING, build_model(engine.config.model), metrics.Accuracy(),
                                              delay=delay)
    assert engine.scores.values()["accuracy"] == expected.get()
    assert engine.n_learned == engine.counters.joined == len(PHISHING)
    assert [p.id for p in predictions] == [f"e{i}" for i in range(len(PHISHING))]  # one prediction each


@pytest.mark.parametrize("delay", [0, 25])
def test_every_prediction_equals_rivers(delay, timeline):
    """Per event, against a plain River loop over ``river.stream.simulate_qa``."""
    engine = Engine(config("hoeffding_tree"))
    outputs = run(engine, timeline(PHISHING, delay))
    got = {int(p.id[1:]): p.prediction for p in outputs if isinstance(p, Prediction)}
    model, expected = build_model(engine.config.model), {}
    for i, x, y in river_stream.simulate_qa(PHISHING, None, delay):
        if y is None:
            expected[i] = model.predict_one(x)
        else:
            model.learn_one(x, y)
    assert got == expected


def test_event_time_merger_feeds_the_engine_in_rivers_order(timeline):
    """Records fetched per topic (all features, then all labels) and merged by event time."""
    delay = 10
    records = timeline(PHISHING[:600], delay)
    merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=0)
    for kind in ("features", "labels"):
        for r in sorted((r for r in records if r.kind == kind), key=lambda r: r.offset):
            merger.push(r)
    engine = Engine(config())
    while (record := merger.pop(lambda src: 0, now_ms=0)) is not None:
        engine.process(record, 0)
    expected = evaluate.progressive_val_score(PHISHING[:600], build_model(engine.config.model),
                                              metrics.Accuracy(), delay=delay)
    assert engine.scores.values()["accuracy"] == expected.get()


@pytest.mark.parametrize("classes", [
    ["no", "yes"],
    [0, 1],
])
def test_binary_only_model_answers_in_the_configured_classes(classes, timeline):
    """Logistic regression learns booleans; the engine maps them to the two declared classes
    (the last one is positive) and scores exactly like River does on boolean labels."""
    rows = [(x, classes[1] if y else classes[0]) for x, y in PHISHING[:500]]
    engine = Engine(DeploymentConfig(name="test", model=ModelConfig(preset="logistic_regression", classes=classes)))
    predictions = [o for o in run(engine, timeline(rows, 10)) if isinstance(o, Prediction)]
    assert {type(p.prediction) for p in predictions} == {type(classes[0])}
    assert all(set(p.proba) == set(classes) for p in predictions)
    expected = evaluate.progressive_val_score(PHISHING[:500], build_model(engine.config.model), metrics.Accuracy(),
                                              delay=10)
    assert engine.scores.values()["accuracy"] == expected.get()


def test_regression_mae_equals_progressive_val_score(timeline):
    engine = Engine(config("linear_regression"))
    run(engine, timeline(TRUMP, 5))
    expected = evaluate.progressive_val_score(TRUMP, build_model(engine.config.model), metrics.MAE(), delay=5)
    assert engine.task == "regression"
    assert engine.scores.values()["mae"] == expected.get()


def test_pickled_engine_continues_identically(timeline):
    records = timeline(PHISHING[:800], 20)
    cfg = config("hoeffding_tree", drift=DriftConfig(policy="reset"))
    straight, resumed = Engine(cfg), Engine(cfg)
    half = len(records) // 2
    run(straight, records[:half])
    run(resumed, records[:half])
    resumed = pickle.loads(pickle.dumps(resumed))
    assert run(resumed, records[half:], now_ms=7) == run(straight, records[half:], now_ms=7)
    assert resumed.scores.values() == straight.scores.values()
    assert (resumed.n_learned, resumed.counters) == (straight.n_learned, straight.counters)


def test_bad_records_are_dead_lettered_and_the_rest_is_processed(timeline, rec):
    rows = PHISHING[:300]
    good = timeline(rows, 5)
    bad = [
        InputRecord("features", 1, 0, 10, None, b"{not json"),
        InputRecord("features", 1, 1, 20, None, None),
        InputRecord("features", 1, 2, 30, b"x", b'{"features": {"a": 1}}'),
        InputRecord("labels", 1, 0, 40, b"x", b'{"id": "e3", "model": "other", "label": true}'),
        rec.features(3, 50, "e7", rows[7][0], partition=1),  # e7 was seen at t=7
        rec.label(1, 60, "e2", True, partition=1),  # e2's label was joined at t=7
    ]
    reasons = ["malformed_json", "empty_payload", "missing_id", "unknown_model", "duplicate_event_id",
               "duplicate_label"]
    merged = sorted(good + bad, key=lambda r: (r.timestamp, r.kind != "labels", r.partition, r.offset))
    engine = Engine(config())
    dead = []
    for record in merged:
        out = engine.process(record, 0)
        if record in bad:
            assert len(out) == 1 and isinstance(out[0], DeadLetter) and out[0].record is record
            dead.append(out[0].reason)
        else:
            assert not any(isinstance(o, DeadLetter) for o in out)
    assert dead == reasons and engine.counters.dead_letters == len(bad)
    expected = evaluate.progressive_val_score(rows, build_model(engine.config.model), metrics.Accuracy(), delay=5)
    assert engine.scores.values()["accuracy"] == expected.get()
    assert engine.n_learned == len(rows)


def test_a_failing_model_dead_letters_the_record_and_the_stream_goes_on(rec):
    engine = Engine(config())  # no schema: the string reaches the scaler, which cannot learn it
    run(engine, [rec.features(0, 0, "a", {"x": 1.0}), rec.label(0, 0, "a", True)])
    assert [o.kind for o in engine.process(rec.features(1, 1, "b", {"x": "text"}), 0)] == ["prediction"]
    label = rec.label(1, 1, "b", True)
    (dead,) = engine.process(label, 0)
    assert (dead.kind, dead.reason, dead.record) == ("dlq", "model_error", label)
    assert engine.n_learned == 1
    out = run(engine, [rec.features(2, 2, "c", {"x": 2.0}), rec.label(2, 2, "c", False)])
    assert [o.kind for o in out] == ["prediction"] and engine.n_learned == 2


def test_n_learned_counts_joined_labels(timeline, rec):
    rows = PHISHING[:400]
    records = [r for r in timeline(rows, 3) if not (r.kind == "labels" and r.offset % 3 == 0)]
    records.append(rec.label(999, 500, "never-seen", True))
    engine = Engine(config())
    predictions = [o for o in run(engine, records) if isinstance(o, Prediction)]
    kept = sum(1 for i in range(len(rows)) if i % 3)
    assert engine.n_learned == engine.counters.joined == kept
    assert engine.join.pending_features == len(rows) - kept and engine.join.pending_labels == 1
    assert [p.model_examples for p in predictions] == sorted(p.model_examples for p in predictions)


def test_expired_join_entries(timeline):
    """With max_age 50 and labels 100 late, every feature expires first; every label then
    waits as an orphan and goes to the dead-letter topic, intact, once 50 ms old."""
    n, delay, age = 200, 100, 50
    records = timeline(PHISHING[:n], delay)
    engine = Engine(config(join=JoinConfig(max_age_ms=age)))
    dead = [o for o in run(engine, records) if isinstance(o, DeadLetter)]
    end = n - 1 + delay
    assert engine.n_learned == 0 and engine.counters.expired_features == n
    late_labels = [r for r in records if r.kind == "labels" and r.timestamp < end - age]
    assert [d.record for d in dead] == late_labels
    assert {d.reason for d in dead} == {"label_without_features"}
    assert engine.join.pending_labels == n - len(late_labels)


CHANGE = 1000


def _stagger(limit=3000):
    return list(stream("synth:stagger", limit=limit, drift_every=CHANGE, noise=0.0, seed=1))


def test_drift_reset_replaces_the_model(timeline):
    rows = _stagger()
    cfg = config("hoeffding_tree", drift=DriftConfig(policy="reset", detectors=[DetectorSpec(name="ADWIN")]))
    engine = Engine(cfg)
    for record in timeline(rows, 5):
        before = engine.model
        drifts = [o for o in engine.process(record, 0) if isinstance(o, DriftEvent)]
        if drifts:
            break
    else:
        pytest.fail("no drift detected on an abrupt concept change")
    (event,) = drifts
    assert event.position >= CHANGE and event.action == "reset" and event.detector == "ADWIN"
    assert engine.checkpoint_due == "drift" and engine.counters.drift_events == 1
    # the model is a fresh one that has learned exactly the example that revealed the drift
    assert engine.model is not before
    x_last, y_last = rows[int(orjson.loads(record.value)["id"][1:])]
    x_last = {str(k): v for k, v in x_last.items()}
    fresh = build_model(cfg.model)
    fresh.learn_one(x_last, y_last)
    probes = [{str(k): v for k, v in x.items()} for x, _ in rows[:50]]
    assert [engine.model.predict_proba_one(p) for p in probes] == [fresh.predict_proba_one(p) for p in probes]


def test_drift_without_reset_keeps_the_model(timeline):
    cfg = config("hoeffding_tree", checkpoint={"on_drift": False})
    engine = Engine(cfg)
    model = engine.model
    events = [o for o in run(engine, timeline(_stagger(), 5)) if isinstance(o, DriftEvent)]
    assert events and all(e.action == "none" for e in events)
    assert min(e.position for e in events) >= CHANGE
    assert engine.model is model and engine.checkpoint_due is None
    assert len({e.id for e in events}) == len(events)
