"""Mini-batch learning (core/minibatch.py) against River's own learn_many, fed by hand.

The engine-level tests skip until ``Engine`` has mini-batch mode (``Engine.minibatch``).
"""

from __future__ import annotations

import math
import pickle

import orjson
import pytest
from river import compose, linear_model, multiclass, naive_bayes, preprocessing, tree

from driftline.config import ChallengerSpec, DeploymentConfig, DetectorSpec, ModelConfig, load_config
from driftline.core.engine import Engine
from driftline.core.minibatch import MiniBatchLearner, StandardScaler, check_supported, supports_learn_many
from driftline.core.models import build_model
from driftline.core.outputs import DeadLetter, DriftEvent, Prediction
from driftline.datasets import stream
from driftline.exceptions import ConfigError

pl = pytest.importorskip("polars")

PHISHING = list(stream("river:Phishing"))  # 1250 rows, 9 numeric features, boolean label
FEATURES = {name: "num" for name in PHISHING[0][0]}
B = 64  # 1250 = 19 * 64 + 34: the stream ends with a part-full buffer


def scaled_logreg():
    """The preset as a mini-batch deployment builds it (with the stable StandardScaler)."""
    return build_model(ModelConfig(preset="logistic_regression", features=FEATURES, mini_batch=B))


def by_hand(rows, size):
    """River's learn_many on polars frames built row-wise, independently of ``to_frame``."""
    model = scaled_logreg()
    for start in range(0, len(rows) - size + 1, size):
        chunk = rows[start:start + size]
        model.learn_many(pl.DataFrame([x for x, _ in chunk]).cast(pl.Float64), pl.Series([y for _, y in chunk]))
    return model


def state(model):
    scaler, logreg = model["StandardScaler"], model["LogisticRegression"]
    return dict(scaler.means), dict(scaler.vars), logreg.weights, float(logreg.intercept)


# -- the learner -------------------------------------------------------------------------


def test_flushes_equal_learn_many_by_hand():
    model, batch = scaled_logreg(), MiniBatchLearner(B)
    learned = sum(batch.flush(model) for x, y in PHISHING if batch.add(x, y))
    assert learned == 19 * B and batch.pending == len(PHISHING) - learned
    assert state(model) == state(by_hand(PHISHING, B))


def test_predictions_come_from_the_model_as_of_the_last_flush():
    """Between flushes predict_proba_one is untouched: it answers from the last learned batch."""
    model, batch = scaled_logreg(), MiniBatchLearner(B)
    for i, (x, y) in enumerate(PHISHING):
        if i % 97 == 0 or i % B in (0, 1, B - 1):
            assert model.predict_proba_one(x) == by_hand(PHISHING[:i], B).predict_proba_one(x)
        if batch.add(x, y):
            batch.flush(model)


def test_one_learn_many_is_one_step_on_the_mean_gradient():
    """River issue #1912, written down: w -= lr * mean(g_i * x_i), b -= lr * mean(g_i),
    with g_i = sigmoid(w.x_i + b) - y_i, all against the same (pre-batch) weights."""
    rows = [({k: float(v) for k, v in x.items()}, y) for x, y in PHISHING[:B]]
    model, batch = linear_model.LogisticRegression(), MiniBatchLearner(B)
    for x, y in rows:
        batch.add(x, y)
    batch.flush(model)
    g = [1 / (1 + math.exp(-0.0)) - y for _, y in rows]  # initial weights and intercept are 0
    expected = {k: -0.01 * sum(gi * x[k] for gi, (x, _) in zip(g, rows)) / B for k in rows[0][0]}
    assert model.weights == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert float(model.intercept) == pytest.approx(-0.01 * sum(g) / B, rel=1e-12)
    one_at_a_time = linear_model.LogisticRegression()
    for x, y in rows:
        one_at_a_time.learn_one(x, y)
    assert one_at_a_time.weights != pytest.approx(model.weights, rel=0.5)  # B steps move much further


def test_pickled_half_full_buffer_continues_identically():
    a_model, a = scaled_logreg(), MiniBatchLearner(B)
    b_model, b = scaled_logreg(), MiniBatchLearner(B)
    cut = 5 * B + B // 2
    for model, batch in ((a_model, a), (b_model, b)):
        for x, y in PHISHING[:cut]:
            if batch.add(x, y):
                batch.flush(model)
    b_model, b = pickle.loads(pickle.dumps((b_model, b)))
    assert b.pending == B // 2
    for model, batch in ((a_model, a), (b_model, b)):
        for x, y in PHISHING[cut:]:
            if batch.add(x, y):
                batch.flush(model)
    assert state(a_model) == state(b_model) and a.rows() == b.rows()


def test_rows_with_different_features_are_refused_and_dropped():
    batch = MiniBatchLearner(2)
    batch.add({"a": 1.0}, True)
    batch.add({"b": 1.0}, False)
    with pytest.raises(ValueError, match="same features"):
        batch.flush(linear_model.LogisticRegression())
    assert batch.pending == 0


def test_size_below_two_is_refused():
    with pytest.raises(ValueError):
        MiniBatchLearner(1)


@pytest.mark.parametrize(("model", "ok"), [
    (scaled_logreg(), True),
    (build_model(ModelConfig(preset="linear_regression")), True),
    (build_model(ModelConfig(preset="gaussian_naive_bayes")), True),
    (compose.Pipeline(preprocessing.StandardScaler(), multiclass.OneVsRestClassifier(linear_model.LogisticRegression())), True),
    (build_model(ModelConfig(preset="logistic_regression", features={"a": "num", "c": "cat"})), False),  # Discard/Select
    (build_model(ModelConfig(preset="hoeffding_tree")), False),
    (build_model(ModelConfig(preset="adaptive_random_forest")), False),
    (compose.Pipeline(preprocessing.StandardScaler(), tree.HoeffdingTreeClassifier()), False),
    (multiclass.OneVsRestClassifier(tree.HoeffdingTreeClassifier()), False),
])
def test_which_models_support_learn_many(model, ok):
    assert supports_learn_many(model) is ok
    if not ok:
        with pytest.raises(ConfigError, match="cannot learn mini-batches"):
            check_supported(model)


def test_gaussian_naive_bayes_learns_batches():
    model, batch = naive_bayes.GaussianNB(), MiniBatchLearner(B)
    for x, y in PHISHING:
        if batch.add(x, y):
            batch.flush(model)
    reference = naive_bayes.GaussianNB()
    for x, y in PHISHING[:19 * B]:
        reference.learn_one(x, y)  # naive Bayes counts and moments: a batch equals its rows
    assert model.predict_proba_one(PHISHING[3][0]) == pytest.approx(reference.predict_proba_one(PHISHING[3][0]))


def test_mini_batch_deployments_get_the_stable_scaler():
    assert type(build_model(ModelConfig(preset="logistic_regression"))["StandardScaler"]) is preprocessing.StandardScaler
    assert type(scaled_logreg()["StandardScaler"]) is StandardScaler


def test_stable_scaler_matches_learn_one_where_rivers_learn_many_goes_negative():
    """A large mean with a small spread: River's mean(x²) - mean(x)² loses every digit."""
    import random

    rng = random.Random(3)
    rows = [{"big": rng.gauss(1e6, 1e-2), "n": rng.gauss(0, 1), "const": 0.003467} for _ in range(2000)]
    one, ours, rivers = preprocessing.StandardScaler(), StandardScaler(), preprocessing.StandardScaler()
    for x in rows:
        one.learn_one(x)
    for start in range(0, len(rows), 500):
        frame = pl.DataFrame(rows[start:start + 500])
        ours.learn_many(frame)
        rivers.learn_many(frame)
    assert rivers.vars["big"] < 0 or rivers.vars["const"] < 0  # River's own, for the record
    assert ours.vars["const"] == 0.0 and ours.means["const"] == 0.003467
    assert ours.vars == pytest.approx(dict(one.vars), rel=1e-8)
    assert ours.means == pytest.approx(dict(one.means), rel=1e-12)
    assert ours.counts == one.counts


# -- config ------------------------------------------------------------------------------


def test_config_needs_declared_numeric_features():
    assert ModelConfig(mini_batch=B, features=FEATURES).mini_batch == B
    for model in ({"mini_batch": B}, {"mini_batch": B, "features": {"a": "num", "c": "cat"}}, {"mini_batch": 1, "features": FEATURES}):
        with pytest.raises(ConfigError):
            load_config(name="t", model=model)
    with pytest.raises(ValueError, match="challengers learn one example at a time"):
        ChallengerSpec(name="c", model=ModelConfig(mini_batch=B, features=FEATURES))


# -- the engine (once core/engine.py has mini-batch mode) --------------------------------


def engine_for(preset="logistic_regression", size=B, **drift) -> Engine:
    if not hasattr(Engine, "minibatch"):
        pytest.skip("Engine has no mini-batch mode yet")
    drift.setdefault("policy", "none")
    return Engine(DeploymentConfig(name="t", model=ModelConfig(preset=preset, features=FEATURES, mini_batch=size),
                                   drift=drift))


def run(engine, records, now_ms=0):
    return [o for r in records for o in engine.process(r, now_ms)]


def test_engine_learns_in_batches_and_predicts_one_at_a_time(timeline):
    engine = engine_for()
    predictions = [o for o in run(engine, timeline(PHISHING, 0)) if isinstance(o, Prediction)]
    assert engine.n_learned == 19 * B and engine.minibatch.pending == len(PHISHING) - 19 * B
    assert engine.counters.joined == len(PHISHING) == engine.n_learned + engine.minibatch.pending
    assert state(engine.model) == state(by_hand(PHISHING, B))
    # With no delay, features i arrive after labels 0..i-1: the model has learned the full batches among them.
    reference, batch = scaled_logreg(), MiniBatchLearner(B)
    for (x, y), p in zip(PHISHING, predictions):
        assert p.proba == reference.predict_proba_one(x)
        assert p.model_examples == B * (int(p.id[1:]) // B)
        if batch.add(x, y):
            batch.flush(reference)


def test_engine_pickled_with_a_half_full_buffer_continues_identically(timeline):
    records = timeline(PHISHING, 7)
    a, b = engine_for(), engine_for()
    cut = len(records) // 2 + 13
    run(a, records[:cut])
    run(b, records[:cut])
    assert 0 < b.minibatch.pending < B
    b = pickle.loads(pickle.dumps(b))
    assert run(a, records[cut:]) == run(b, records[cut:])
    assert state(a.model) == state(b.model) and a.n_learned == b.n_learned


def test_engine_refuses_a_model_without_learn_many():
    if not hasattr(Engine, "minibatch"):
        pytest.skip("Engine has no mini-batch mode yet")
    with pytest.raises(ConfigError, match="cannot learn mini-batches"):
        Engine(DeploymentConfig(name="t", model=ModelConfig(preset="hoeffding_tree", features=FEATURES, mini_batch=B)))


def test_drift_flushes_the_buffer_into_the_model_in_service_first(timeline):
    """A confirmed drift first learns the buffer (as one at a time would have), then resets."""
    flipped = PHISHING[:600] + [(x, not y) for x, y in PHISHING[600:]]
    engine = engine_for(policy="reset", detectors=[DetectorSpec(name="binary.HDDMA")])
    drifts = []
    for record in timeline(flipped, 0):
        joined = engine.counters.joined
        for o in engine.process(record, 0):
            if isinstance(o, DriftEvent) and o.drift_kind == "concept":
                drifts.append((o.action, o.position, joined, engine.minibatch.pending, engine.n_learned))
    assert drifts, "the flipped labels must be detected"
    for action, position, joined, pending, n_learned in drifts:
        # every example joined before the drift was learned; the one that revealed it waits in the new buffer
        assert (action, position, pending, n_learned) == ("reset", joined, 1, joined)


def test_drift_without_a_new_model_does_not_cut_the_batch(timeline):
    """Policy none keeps the model: batches stay whole, a drift's position is what was learned."""
    flipped = PHISHING[:600] + [(x, not y) for x, y in PHISHING[600:]]
    engine = engine_for(policy="none", detectors=[DetectorSpec(name="binary.HDDMA")])
    drifts = [o for o in run(engine, timeline(flipped, 0)) if isinstance(o, DriftEvent) and o.drift_kind == "concept"]
    assert drifts and all(d.position % B == 0 for d in drifts) and engine.n_learned == 19 * B


def test_a_new_champion_gets_a_flushed_buffer_or_learns_one_at_a_time(timeline):
    records = timeline(PHISHING, 0)
    engine = engine_for()
    run(engine, records[:2 * (3 * B + 10)])
    old = engine.model
    engine.install_champion(old.clone())  # a manual reset: the outgoing model learned its 10 first
    assert (engine.n_learned, engine.minibatch.pending, engine.counters.joined) == (3 * B + 10, 0, 3 * B + 10)
    reference, batch = scaled_logreg(), MiniBatchLearner(B)
    for x, y in PHISHING[:3 * B + 10]:
        if batch.add(x, y):
            batch.flush(reference)
    batch.flush(reference)
    assert state(old) == state(reference)
    engine.install_champion(tree.HoeffdingTreeClassifier())  # no learn_many: one at a time from now on
    assert engine.minibatch is None
    run(engine, records[2 * (3 * B + 10):])
    assert engine.n_learned == engine.counters.joined == len(PHISHING)


def test_a_batch_the_model_cannot_learn_is_dropped_and_dead_lettered(timeline, monkeypatch):
    engine = engine_for()

    def fail(X, y):
        raise ValueError("no")

    monkeypatch.setattr(engine.model, "learn_many", fail)
    records = timeline(PHISHING[:B + 1], 0)
    dead = [o for o in run(engine, records) if isinstance(o, DeadLetter)]
    assert [(d.reason, d.record.kind, d.record.offset) for d in dead] == [("model_error", "labels", B - 1)]
    assert f"{B} examples not learned" in dead[0].detail
    assert (engine.n_learned, engine.counters.joined, engine.minibatch.pending) == (0, B + 1, 1)


def test_periodic_versions_fall_on_their_multiple(timeline):
    engine = engine_for(policy="periodic", period_examples=100, detectors=[])
    due = []
    for record in timeline(PHISHING, 0):
        engine.process(record, 0)
        if engine.checkpoint_due:
            due.append(engine.n_learned)
            engine.checkpoint_due = None
    assert due == list(range(100, len(PHISHING) + 1, 100))


def test_regression_predictions_are_plain_floats(timeline):
    rows = [(x, float(sum(x.values()))) for x, _ in PHISHING[:300]]
    engine = engine_for("linear_regression")
    outputs = run(engine, timeline(rows, 0))
    predictions = [o for o in outputs if isinstance(o, Prediction)]
    assert engine.n_learned == 4 * B and not any(isinstance(o, DeadLetter) for o in outputs)
    assert all(type(p.prediction) is float for p in predictions)
    orjson.dumps([p.body() for p in predictions])  # numpy scalars would not serialize
