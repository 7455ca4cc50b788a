"""Adaptation policies in the engine, each checked against a model trained independently."""

from __future__ import annotations

import pickle

import pytest

from driftline.config import DeploymentConfig, DetectorSpec, ModelConfig
from driftline.core.engine import Engine
from driftline.core.models import build_model
from driftline.core.outputs import DriftEvent
from driftline.datasets import stream

CHANGE = 1500
ROWS = list(stream("synth:stagger", limit=2 * CHANGE, drift_every=CHANGE, noise=0.0, seed=1))
PHISHING = list(stream("river:Phishing"))


def engine_for(preset="hoeffding_tree", **drift) -> Engine:
    return Engine(DeploymentConfig(name="t", model=ModelConfig(preset=preset), drift=drift))


def run(engine, records, now_ms=0):
    return [o for r in records for o in engine.process(r, now_ms)]


def same_predictions(a, b, probes) -> bool:
    return [a.predict_one(x) for x, _ in probes] == [b.predict_one(x) for x, _ in probes]


def test_background_starts_at_warning_and_is_swapped_in_at_drift(timeline):
    engine = engine_for(policy="background", detectors=[DetectorSpec(name="binary.HDDMA")])
    events, swapped = [], None
    for record in timeline(ROWS, 0):
        before = engine.adapt.background
        new = [o for o in engine.process(record, 0) if isinstance(o, DriftEvent)]
        events += new
        if any(e.action == "background_swap" for e in new):
            swapped = before
            break
    assert swapped is not None, [(e.level, e.action) for e in events]
    warning, drift = events[-2], events[-1]
    assert (warning.level, warning.action, drift.level, drift.action) == ("warning", "background_start", "drift", "background_swap")
    assert engine.model is swapped and engine.adapt.background is None
    # oracle: a fresh tree that learned exactly the examples since the warning, then the one that revealed drift
    oracle = build_model(engine.config.model)
    for x, y in ROWS[warning.position: drift.position + 1]:
        oracle.learn_one({str(k): v for k, v in x.items()}, y)
    assert same_predictions(engine.model, oracle, [({str(k): v for k, v in x.items()}, y) for x, y in ROWS[::7]])


def test_reset_with_warm_start_trains_on_the_last_examples(timeline):
    engine = engine_for(policy="reset", warm_start=100, detectors=[DetectorSpec(name="binary.HDDMA")])
    for record in timeline(ROWS, 0):
        drift = [o for o in engine.process(record, 0) if isinstance(o, DriftEvent)]
        if drift:
            break
    (event,) = drift
    assert event.action == "reset"
    p = event.position
    oracle = build_model(engine.config.model)
    for x, y in ROWS[p - 100: p + 1]:
        oracle.learn_one({str(k): v for k, v in x.items()}, y)
    assert same_predictions(engine.model, oracle, [({str(k): v for k, v in x.items()}, y) for x, y in ROWS[::5]])


def test_periodic_cuts_versions_and_retrains_from_the_last_examples(timeline):
    engine = engine_for("logistic_regression", policy="periodic", period_examples=500, retrain_last=200, detectors=[])
    records = timeline(PHISHING[:1000], 0)
    due = []
    for record in records:
        engine.process(record, 0)
        if engine.checkpoint_due:
            due.append((engine.n_learned, engine.checkpoint_due))
            engine.checkpoint_due = None  # what the processor does when it cuts the version
    assert due == [(500, "periodic"), (1000, "periodic")]
    oracle = build_model(engine.config.model)
    for x, y in PHISHING[800:1000]:
        oracle.learn_one(x, y)
    assert engine.model.predict_proba_one(PHISHING[5][0]) == oracle.predict_proba_one(PHISHING[5][0])


def test_none_keeps_the_model_and_reports(timeline):
    engine = engine_for(policy="none", detectors=[DetectorSpec(name="binary.HDDMA")])
    model = engine.model
    events = [o for o in run(engine, timeline(ROWS, 0)) if isinstance(o, DriftEvent)]
    assert events and {e.action for e in events} == {"none"} and engine.model is model


@pytest.mark.parametrize("policy", ["background", "reset", "periodic"])
def test_pickled_mid_stream_continues_identically(policy, timeline):
    drift = {"policy": policy, "warm_start": 50, "period_examples": 700, "retrain_last": 300,
             "detectors": [DetectorSpec(name="binary.HDDMA"), DetectorSpec(name="binary.FHDDM")],
             "data": {"enabled": True, "reference_size": 500, "window_size": 500, "step": 50},
             "performance": [{"metric": "rolling_accuracy", "band_k": 2.0, "reference_windows": 2}]}
    records = timeline(ROWS, 3)
    a, b = engine_for(**drift), engine_for(**drift)
    cut = len(records) // 2 - 11
    run(a, records[:cut])
    run(b, records[:cut])
    b = pickle.loads(pickle.dumps(b))
    out_a, out_b = run(a, records[cut:], 5), run(b, records[cut:], 5)
    assert out_a == out_b and any(isinstance(o, DriftEvent) for o in out_a)
    assert a.scores.values() == b.scores.values()


def test_engines_pickled_before_policies_existed_restore_with_defaults(timeline):
    engine = engine_for(policy="reset", detectors=[DetectorSpec(name="binary.HDDMA")])
    run(engine, timeline(ROWS[:300], 0))
    state = dict(engine.__dict__)
    for name in ("adapt", "perf", "data_watch", "_data_version"):
        state.pop(name)
    old = Engine.__new__(Engine)
    old.__setstate__(state)
    assert old.adapt.policy == "reset" and old.data_watch is None
    run(old, timeline(ROWS[300:], 0))


def test_fresh_models_are_unfitted_copies_even_when_reused_from_a_kept_clone():
    from river import compose, linear_model, preprocessing

    from driftline.config import DriftConfig
    from driftline.core.policies import Adaptation

    adapt = Adaptation(DriftConfig(policy="reset"))
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(l2=0.01))
    rows = [({"x": float(i % 7), "z": float(i % 3)}, i % 2 == 0) for i in range(50)]
    for x, y in rows:
        model.learn_one(x, y)
    first = adapt.fresh(model)  # from clone()
    for x, y in rows:
        first.learn_one(x, y)
    second = adapt.fresh(first)  # from the kept unfitted clone
    for new in (first, second):
        assert new is not model and new._get_params() == model._get_params()
    assert second["LogisticRegression"].weights == {} and second["StandardScaler"].counts == {}
    # Each fresh model learns exactly like a brand-new clone.
    reference = model.clone()
    for x, y in rows:
        second.learn_one(x, y)
        reference.learn_one(x, y)
    assert second.predict_proba_one(rows[0][0]) == reference.predict_proba_one(rows[0][0])
    # A different model in service (a promotion) is cloned afresh, not served the old blank.
    other = linear_model.LogisticRegression(l2=0.5)
    assert adapt.fresh(other)._get_params() == other._get_params()
