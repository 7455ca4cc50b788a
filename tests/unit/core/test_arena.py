"""The arena: challengers learn test-then-train beside the champion, promotion on paired errors."""

from __future__ import annotations

import math
import pickle

import pytest
from river import datasets, linear_model, naive_bayes, preprocessing

from driftline.config import DeploymentConfig
from driftline.core.arena import bucket_of, mcnemar_exact
from driftline.core.engine import Engine
from driftline.core.outputs import LifecycleEvent, Prediction, ShadowPrediction
from driftline.datasets import stream
from driftline.runtime.replay import encode_features


def _config(**lifecycle) -> DeploymentConfig:
    # policy "none": a reset of the champion would make a warm twin differ for that reason alone
    return DeploymentConfig(name="t", lifecycle=lifecycle, drift={"policy": "none"})


def _phishing(n=600):
    return [(x, y) for x, y in datasets.Phishing()][:n]


def test_no_challengers_means_no_arena_and_unchanged_outputs(timeline):
    engine = Engine(_config())
    assert engine.arena is None
    out = [o for r in timeline(_phishing(50), 3) for o in engine.process(r, 0)]
    assert all(type(o) is Prediction and o.variant == "champion" for o in out)


def test_a_challenger_learns_exactly_what_a_lone_model_learns(timeline):
    """Its scores and model equal a stand-alone Gaussian NB fed the same examples in the same order."""
    rows = _phishing()
    engine = Engine(_config(challengers=[{"name": "nb", "model": {"preset": "gaussian_naive_bayes"}}]))
    out = [o for r in timeline(rows, 5) for o in engine.process(r, 0)]
    shadows = [o.prediction for o in out if type(o) is ShadowPrediction]
    assert len(shadows) == len(rows) and {p.variant for p in shadows} == {"nb"}
    alone = naive_bayes.GaussianNB()
    expected = []
    for i, (x, y) in enumerate(rows):  # delay 5: label i learned before features i + 5
        if i >= 5:
            alone.learn_one(rows[i - 5][0], rows[i - 5][1])
        proba = alone.predict_proba_one(x)
        expected.append(max(proba, key=proba.get) if proba else None)
    assert [p.prediction for p in shadows] == expected
    member = engine.arena.members["nb"]
    x_new = rows[0][0]
    for i in range(len(rows) - 5, len(rows)):
        alone.learn_one(rows[i][0], rows[i][1])
    assert member.model.predict_proba_one(x_new) == alone.predict_proba_one(x_new)


def test_canary_keys_are_served_by_their_variant_and_the_rest_goes_to_shadow(timeline):
    engine = Engine(_config(challengers=[{"name": "nb", "share": 0.3, "model": {"preset": "gaussian_naive_bayes"}}]))
    out = [o for r in timeline(_phishing(400), 2) for o in engine.process(r, 0)]
    served = {o.id: o.variant for o in out if type(o) is Prediction}
    assert all(v == ("nb" if bucket_of(k) < 0.3 else "champion") for k, v in served.items())
    assert 0.2 < sum(v == "nb" for v in served.values()) / len(served) < 0.4
    shadow = {(o.prediction.id, o.prediction.variant) for o in out if type(o) is ShadowPrediction}
    assert shadow == {(k, "champion" if v == "nb" else "nb") for k, v in served.items()}
    assert set(engine.arena.served) == {"champion", "nb"}


def test_mcnemar_matches_the_exact_binomial_tail():
    for b, c in [(0, 0), (3, 3), (5, 20), (40, 61), (0, 12)]:
        n = b + c
        tail = sum(math.comb(n, k) for k in range(c, n + 1)) / 2**n if n else 1.0
        assert mcnemar_exact(b, c)["p_value"] == pytest.approx(tail, rel=1e-12)


def _drifting(n=4000):
    return [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=n, seed=7, drift_every=2000)]


POLICY = {"enabled": True, "window": 500, "margin": 0.02, "alpha": 0.01, "patience": 2}


def test_a_clearly_better_challenger_is_promoted_once_with_its_test(timeline):
    engine = Engine(_config(challengers=[{"name": "hat", "model": {"preset": "hoeffding_adaptive_tree"}}],
                            promotion=POLICY))
    out = [o for r in timeline(_drifting(), 50) for o in engine.process(r, 0)]
    events = [o for o in out if type(o) is LifecycleEvent]
    assert len(events) == 1 and events[0].action == "promote"
    d = events[0].details
    assert d["n"] == 500 and d["consecutive_wins"] == 2 and d["p_value"] < 0.01 and d["lead"] >= 0.02
    assert d["examples_seen"] % 500 == 0 and d["examples_seen"] >= 1000  # never before two windows
    assert type(engine.model).__name__ == "HoeffdingAdaptiveTreeClassifier"
    assert engine.arena is None and engine.champion_origin["name"] == "hat"


def test_an_identical_challenger_is_never_promoted(timeline):
    """A warm copy of the champion makes the same errors: no discordant pairs, no promotion."""
    engine = Engine(_config(challengers=[{"name": "twin", "start": "warm"}], promotion={**POLICY, "patience": 1}))
    out = [o for r in timeline(_drifting(3000), 50) for o in engine.process(r, 0)]
    assert not [o for o in out if type(o) is LifecycleEvent]
    assert engine.arena.members["twin"].pairs.b == engine.arena.members["twin"].pairs.c == 0


def test_pickled_mid_stream_the_arena_continues_identically(timeline):
    records = timeline(_drifting(3000), 50)
    config = _config(challengers=[{"name": "hat", "share": 0.2, "model": {"preset": "hoeffding_adaptive_tree"}}],
                     promotion=POLICY)
    straight = Engine(config)
    expected = [repr(o) for r in records for o in straight.process(r, 0)]
    engine = Engine(config)
    got = [repr(o) for r in records[:2500] for o in engine.process(r, 0)]
    engine = pickle.loads(pickle.dumps(engine))
    got += [repr(o) for r in records[2500:] for o in engine.process(r, 0)]
    assert got == expected


def test_shares_above_one_are_refused():
    from driftline.exceptions import ConfigError

    with pytest.raises(ConfigError):
        Engine(_config(challengers=[{"name": "a", "share": 0.6}, {"name": "b", "share": 0.6}]))


def test_warm_start_copies_the_champions_learned_state():
    engine = Engine(_config())
    engine.model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    engine.model.learn_one({"x": 1.0}, True)
    from driftline.config import ChallengerSpec
    from driftline.core.arena import challenger_model

    warm = challenger_model(engine, ChallengerSpec(name="w", start="warm"))
    assert warm["StandardScaler"].counts == {"x": 1} and warm is not engine.model


def test_a_promoted_challenger_serves_with_its_own_examples_and_metrics(timeline):
    """Added after the champion learned 1000 examples, it brings its own count and scores."""
    records = list(timeline(_drifting(3000), 50))
    engine = Engine(_config())
    split = next(i for i, r in enumerate(records) if r.kind == "labels" and r.offset == 999) + 1
    for r in records[:split]:
        engine.process(r, 0)
    assert engine.model_examples == engine.n_learned == 1000
    from driftline.core.arena import Arena

    engine.arena = Arena(engine.config.lifecycle.promotion, 10_000, 10**12)
    member = engine.arena.add(engine, "hat", _hat(), 0.0, "cold")
    for r in records[split:]:
        engine.process(r, 0)
    assert (engine.n_learned, member.learned) == (3000, 2000)
    own = member.scores.values()
    assert own != engine.scores.values()
    engine.arena.promote(engine, "hat", "test", "its own record", {}, 0)
    assert engine.model_examples == 2000 and engine.scores.values() == own  # before: 3000, the old champion's


def _hat():
    from river import tree

    return tree.HoeffdingAdaptiveTreeClassifier(seed=1)


def test_install_champion_takes_the_models_scores_and_count_and_engines_pickle():
    engine = Engine(_config())
    engine.n_learned = 500
    engine.install_champion(naive_bayes.GaussianNB(), examples=120)
    assert engine.model_examples == 120 and engine.scores.n == 0
    engine.n_learned += 30
    assert pickle.loads(pickle.dumps(engine)).model_examples == 150
    old = Engine(_config())
    del old.__dict__["n_learned"]
    old.n_learned = 7  # an engine pickled before model_examples existed counts the stream's
    assert old.model_examples == 7
