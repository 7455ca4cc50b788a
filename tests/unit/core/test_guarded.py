"""The guarded policy: a candidate serves only after beating the serving model on the same labels."""

from __future__ import annotations

import pickle

import pytest
from river import base, linear_model

from driftline.config import DeploymentConfig, DetectorSpec, GuardConfig, ModelConfig
from driftline.core.detectors import ErrorWatch
from driftline.core.engine import Engine
from driftline.core.guarded import Guard, change_point, linear_estimator
from driftline.core.models import build_model
from driftline.core.outputs import DriftEvent
from driftline.datasets import stream

CHANGE = 1500
ROWS = list(stream("synth:stagger", limit=2 * CHANGE, drift_every=CHANGE, noise=0.0, seed=1))
NOISY = list(stream("synth:sine", limit=6000, drift_every=2000, noise=0.1, seed=3))


def engine_for(preset="hoeffding_tree", **drift) -> Engine:
    return Engine(DeploymentConfig(name="t", model=ModelConfig(preset=preset),
                                   drift={"detectors": [DetectorSpec(name="binary.HDDMA")], **drift}))


def drift_events(engine, records):
    return [o for r in records for o in engine.process(r, 0) if isinstance(o, DriftEvent)]


def keyed(x):
    return {str(k): v for k, v in x.items()}


def test_change_point_reads_hddm_a_and_adwin_windows():
    assert change_point({"windows": {"before_cut": 10, "after_cut": 7}}) == 7
    assert change_point({"windows": {"dropped": 30, "kept": 12}}) == 12
    assert change_point({}) is None and change_point({"windows": {"after_cut": 0}}) is None


def test_a_better_candidate_is_swapped_in_and_a_worse_one_abandoned():
    config = GuardConfig(replay=0, window=100, min_pairs=20, check_every=10, alpha=0.01, max_examples=300)
    serving = linear_model.LogisticRegression()
    for _ in range(200):
        serving.learn_one({"x": 1.0}, False)  # serving learned the old concept
    better = Guard(config)
    better.start(linear_model.LogisticRegression(), None, "binary.HDDMA", {}, 0)
    decisions = []
    for i in range(1, 300):
        better.pair(float(serving.predict_one({"x": 1.0}) is not True), better.foresee({"x": 1.0}), True,
                    "classification")
        serving.learn_one({"x": 1.0}, True)
        better.learned({"x": 1.0}, True)
        decisions.append(better.decide(i))
        if decisions[-1]:
            break
    assert decisions[-1] == "swap" and len(decisions) >= config.min_pairs
    model, evidence = better.finish("swap")
    assert model is not None and evidence["test"]["c"] > evidence["test"]["b"] and better.swaps == 1

    worse = Guard(config)
    worse.start(linear_model.LogisticRegression(), None, "binary.HDDMA", {}, 0)
    decisions = []
    for i in range(1, 301):
        worse.pair(float(serving.predict_one({"x": 1.0}) is not True), worse.foresee({"x": 1.0}), True,
                   "classification")
        serving.learn_one({"x": 1.0}, True)
        decisions.append(worse.decide(i))  # the candidate never learns: never better
    assert decisions[-1] == "abandon" and "swap" not in decisions
    assert worse.finish("abandon")[0] is None and worse.abandons == 1


def test_warm_start_copies_a_linear_model_and_trees_start_fresh():
    lr, tree = build_model(ModelConfig(preset="logistic_regression")), build_model(ModelConfig(preset="hoeffding_tree"))
    assert linear_estimator(lr) is not None and linear_estimator(tree) is None
    for i in range(50):
        lr.learn_one({"x": float(i % 3)}, i % 2 == 0)
    guard = Guard(GuardConfig(start="warm"))
    assert guard.start(lr.clone(), lr, "d", {}, 50)["start"] == "warm"
    assert linear_estimator(guard.candidate).weights == linear_estimator(lr).weights
    assert guard.candidate is not lr
    assert guard.start(tree.clone(), tree, "d", {}, 50)["start"] == "fresh"


def test_the_swapped_candidate_is_a_tree_trained_since_the_estimated_change(timeline):
    engine = engine_for(policy="guarded", grace_examples=0, guard={"start": "fresh", "replay": 500})
    events = drift_events(engine, timeline(ROWS, 0))
    started = next(e for e in events if e.action == "candidate_start")
    swap = next(e for e in events if e.action == "candidate_swap")
    assert started.position >= CHANGE and swap.position > started.position
    origin = started.evidence["candidate"]
    assert origin["estimated_change"] == started.evidence["windows"]["after_cut"]
    assert origin["replayed"] == min(origin["estimated_change"], 500)
    assert swap.evidence["candidate"] == origin and swap.p_value < 0.01
    assert swap.statistic["candidate_accuracy"] > swap.statistic["serving_accuracy"]
    # oracle: a fresh tree that learned the replayed examples, then every one up to the swap
    oracle = build_model(engine.config.model)
    for x, y in ROWS[started.position - origin["replayed"]: swap.position]:
        oracle.learn_one(keyed(x), y)
    for x, y in ROWS[swap.position:]:
        oracle.learn_one(keyed(x), y)
    probes = [keyed(x) for x, _ in ROWS[::7]]
    assert [engine.model.predict_one(x) for x in probes] == [oracle.predict_one(x) for x in probes]


def test_guarded_keeps_serving_while_the_candidate_learns(timeline):
    engine = engine_for(policy="guarded", grace_examples=0)
    records = timeline(ROWS, 0)
    for i, record in enumerate(records):
        events = [o for o in engine.process(record, 0) if isinstance(o, DriftEvent)]
        if any(e.action == "candidate_start" for e in events):
            break
    serving = engine.model
    assert engine.adapt.guard.candidate is not None and engine.adapt.guard.candidate is not serving
    engine.process(records[i + 1], 0)
    assert engine.model is serving


def test_predictions_made_before_a_candidate_started_are_not_paired():
    guard = Guard(GuardConfig())
    guard.start(linear_model.LogisticRegression(), None, "d", {}, 0)
    old = guard.foresee({"x": 1.0})
    guard.start(linear_model.LogisticRegression(), None, "d", {}, 5)
    guard.pair(1.0, old, True, "classification")
    guard.pair(1.0, None, True, "classification")
    assert len(guard.pairs) == 0
    guard.pair(1.0, guard.foresee({"x": 1.0}), True, "classification")
    assert len(guard.pairs) == 1


def test_grace_period_feeds_no_detector_while_the_model_is_young():
    watch = ErrorWatch([DetectorSpec(name="binary.DDM")], "classification", grace=200)
    assert all(watch.update(1.0) == () for _ in range(200))
    assert watch.young == 0
    watch.reset()
    assert watch.young == 200


POLICIES = [
    {"policy": "none"},
    {"policy": "reset"},
    {"policy": "background"},
    {"policy": "periodic", "period_examples": 1000, "retrain_last": 300},
    {"policy": "guarded"},
    {"policy": "guarded", "guard": {"start": "fresh"}},
]


@pytest.mark.parametrize("preset", ["logistic_regression", "hoeffding_tree"])
@pytest.mark.parametrize("drift", POLICIES, ids=lambda d: d["policy"] + ("-fresh" if "guard" in d else ""))
def test_each_policy_is_deterministic_and_a_snapshot_continues_exactly(timeline, drift, preset):
    """Two runs agree; an engine pickled mid-stream (mid-candidate for guarded) and restored
    gives the very outputs and accuracy of the uninterrupted run."""
    records = timeline(NOISY, 50)
    reference = engine_for(preset, **drift)
    reference_out = [o for r in records for o in reference.process(r, 0)]
    again = engine_for(preset, **drift)
    assert [o for r in records for o in again.process(r, 0)] == reference_out

    engine = engine_for(preset, **drift)
    cut = None
    out = []
    for i, record in enumerate(records):
        out += engine.process(record, 0)
        guard = engine.adapt.guard
        if i > len(records) // 3 and (guard is None or guard.candidate is not None):
            cut = i
            break
    assert cut is not None, "no candidate was alive after the first third"
    restored = pickle.loads(pickle.dumps(engine))
    for record in records[cut + 1:]:
        out += restored.process(record, 0)
    assert out == reference_out
    assert restored.scores.values() == reference.scores.values()
    if drift["policy"] == "guarded":
        actions = {o.action for o in reference_out if isinstance(o, DriftEvent)}
        assert "candidate_start" in actions


def test_candidate_events_follow_the_drift_schema(timeline):
    import json
    from pathlib import Path

    import jsonschema
    import orjson

    schema = json.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" / "drift.schema.json").read_text())
    engine = engine_for(policy="guarded", grace_examples=0, guard={"max_examples": 400})
    events = drift_events(engine, timeline(NOISY, 0))
    actions = {e.action for e in events}
    assert {"candidate_start", "candidate_swap"} <= actions, actions
    for event in events:
        jsonschema.validate(json.loads(orjson.dumps(event.body())), schema)


def _race(guard, serving_right, anchor_right, n, start=0):
    """``n`` labels where the served prediction is right iff ``serving_right(i)`` and the
    anchor's iff ``anchor_right(i)``; the decisions taken."""
    decisions = []
    for i in range(start, start + n):
        foreseen = guard.foresee({"x": 1.0})
        foreseen = (foreseen[0], foreseen[1], foreseen[2], True if anchor_right(i) else False)
        guard.pair(0.0 if serving_right(i) else 1.0, foreseen, True, "classification")
        decisions.append(guard.decide(i + 1))
    return decisions


def test_a_swap_keeps_the_replaced_model_as_an_anchor_that_serves_again_when_better():
    config = GuardConfig(replay=0, anchor_window=200, anchor_min_pairs=100, check_every=10, alpha=0.01)
    assert Guard(config).decide(0) is None  # nothing racing: nothing to decide
    guard = Guard(config)
    old, new = linear_model.LogisticRegression(), linear_model.LogisticRegression()
    guard.start(new, None, "d", {}, 0)
    model, _ = guard.finish("swap", old)
    assert model is new and guard.anchor is old and guard.candidate is None and guard.active
    guard.learned({"x": 1.0}, True)
    assert old.weights != {}  # the anchor keeps learning
    # as good as the serving model: never restored
    assert set(_race(guard, lambda i: i % 2 == 0, lambda i: i % 2 == 0, 400)) == {None}
    # right where the serving model is wrong, on a fifth of the labels: restored
    decisions = _race(guard, lambda i: i % 5 != 0, lambda i: True, 400, start=400)
    assert "restore" in decisions
    assert guard.anchor_test["c"] > guard.anchor_test["b"] and guard.anchor_test["p_value"] < 0.01
    model, evidence = guard.finish("restore")
    assert model is old and guard.anchor is None and guard.restores == 1 and not guard.active
    assert evidence["test"] == guard.anchor_test and "replaced_at" in evidence["anchor"]


def test_a_second_swap_keeps_the_first_anchor_and_anchor_off_keeps_none():
    guard = Guard(GuardConfig(replay=0))
    first, second, third = (linear_model.LogisticRegression() for _ in range(3))
    guard.start(second, None, "d", {}, 0)
    guard.finish("swap", first)
    guard.start(third, None, "d", {}, 10)
    guard.finish("swap", second)
    assert guard.anchor is first and guard.swaps == 2
    plain = Guard(GuardConfig(replay=0, anchor=False))
    plain.start(second, None, "d", {}, 0)
    plain.finish("swap", first)
    assert plain.anchor is None and not plain.active


def test_warm_linear_candidates_take_their_learning_rates_in_turn():
    lr = build_model(ModelConfig(preset="logistic_regression"))
    base_rate = linear_estimator(lr).optimizer.lr.learning_rate
    guard = Guard(GuardConfig(replay=0, rates=[3.0, 0.5]))
    rates = []
    for position in range(3):
        origin = guard.start(lr.clone(), lr, "d", {}, position)
        rates.append((origin["rate"], linear_estimator(guard.candidate).optimizer.lr.learning_rate))
    assert rates == [(3.0, 3.0 * base_rate), (0.5, 0.5 * base_rate), (3.0, 3.0 * base_rate)]
    assert linear_estimator(lr).optimizer.lr.learning_rate == base_rate  # the serving model is untouched
    same = Guard(GuardConfig(replay=0, rates=[1.0]))
    assert same.start(lr.clone(), lr, "d", {}, 0)["rate"] == 1.0
    assert linear_estimator(same.candidate).optimizer.lr.learning_rate == base_rate


class AlwaysFalse(base.Classifier):
    """A serving model gone wrong: it always says False."""

    def learn_one(self, x, y):
        pass

    def predict_proba_one(self, x):
        return {False: 1.0, True: 0.0}


def test_an_engine_restores_the_anchor_and_says_so(timeline):
    """After a swap the replaced tree is kept as the anchor; a snapshot taken while it is alive
    continues exactly; when the serving model turns out worse, the anchor serves again, with
    the test in its drift event."""
    engine = engine_for(policy="guarded", grace_examples=0,
                        guard={"start": "fresh", "alpha": 0.01, "anchor_min_pairs": 100})
    records = timeline(ROWS + ROWS[CHANGE:], 0)
    outputs, cut = [], None
    for i, record in enumerate(records):
        outputs.append(engine.process(record, 0))
        if engine.adapt.guard.anchor is not None:
            cut = i
            break
    assert cut is not None, "no swap"
    anchor = engine.adapt.guard.anchor
    engine.model = AlwaysFalse()  # the swapped-in model goes wrong
    snapshot = pickle.dumps(engine)
    later = [engine.process(r, 0) for r in records[cut + 1:]]
    restored = pickle.loads(snapshot)
    assert [restored.process(r, 0) for r in records[cut + 1:]] == later
    events = [o for out in later for o in out if isinstance(o, DriftEvent)]
    restore = next(e for e in events if e.action == "anchor_restore")
    assert restore.p_value < 0.01 and restore.evidence["test"]["c"] > restore.evidence["test"]["b"]
    assert restore.statistic["anchor_accuracy"] > restore.statistic["serving_accuracy"]
    assert engine.adapt.guard.restores == 1 and type(engine.model) is type(anchor)


@pytest.mark.parametrize("scaled", [True, False])
def test_a_candidate_is_judged_on_as_many_labels_as_they_are_late(scaled):
    """Labels 150 examples late: with ``delay_scaled`` the first test waits for 150 pairs
    (``min_pairs`` is 20) and the window grows to 150; without it, 20 pairs suffice."""
    lag = 150
    config = GuardConfig(replay=0, window=100, min_pairs=20, check_every=10, alpha=0.01, max_examples=10_000,
                         delay_scaled=scaled)
    guard = Guard(config)
    guard.start(linear_model.LogisticRegression(), None, "binary.HDDMA", {}, 0)
    foreseen, first = [], None
    for i in range(1, 400):
        foreseen.append(guard.foresee({"x": 1.0}, i - 1))  # predicted when i - 1 examples were learned
        if len(foreseen) > lag:
            # the serving model is always wrong, the candidate always right: the label of the
            # event predicted ``lag`` examples ago
            served = foreseen.pop(0)
            guard.pair(1.0, (served[0], True, served[2], served[3], served[4]), True, "classification", i - 1)
        guard.learned({"x": 1.0}, True)
        if guard.decide(i) is not None and first is None:
            first = len(guard.pairs)
            break
    assert guard.label_delay == lag
    assert first == (lag if scaled else config.min_pairs)
    assert guard.pairs.window == (lag if scaled else config.window)


@pytest.mark.parametrize("twin", [True, False])
def test_a_fresh_twin_with_a_clear_lead_swaps_in_when_the_warm_candidate_cannot(twin):
    """After an abrupt change the warm candidate (a copy of the serving model, which learned the
    old concept) must unlearn it; its fresh twin learns the new concept at once and wins first."""
    config = GuardConfig(replay=0, window=100, min_pairs=100, check_every=10, alpha=0.01, max_examples=300,
                         rates=[1.0], twin=twin, twin_min_pairs=20)
    serving = build_model(ModelConfig(preset="logistic_regression"))
    for _ in range(300):
        serving.learn_one({"x": 1.0}, False)
    guard = Guard(config)
    assert guard.start(serving.clone(), serving, "binary.HDDMA", {}, 0)["start"] == "warm"
    assert (guard.twin is not None) is twin
    decision = None
    for i in range(1, 300):
        guard.pair(float(serving.predict_one({"x": 1.0}) is not True), guard.foresee({"x": 1.0}, i - 1), True,
                   "classification", i - 1)
        guard.learned({"x": 1.0}, True)  # the serving model does not learn: it stays wrong
        decision = guard.decide(i)
        if decision:
            break
    assert decision == "swap"
    model, evidence = guard.finish(decision, serving)
    if not twin:  # the warm candidate wins, once it has its 100 pairs
        assert evidence["candidate"]["start"] == "warm" and "twin" not in evidence["candidate"]
        assert evidence["test"]["n"] >= 100
        return
    assert evidence["candidate"]["twin"] is True and evidence["candidate"]["start"] == "fresh"
    assert evidence["test"]["n"] < 100  # before the warm candidate could be judged
    assert evidence["test"]["lead"] >= config.twin_margin and guard.twin is None and guard.candidate is None
    assert model.predict_one({"x": 1.0}) is True and guard.anchor is serving
