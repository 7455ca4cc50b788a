"""Mitigation: Kamiran-Calders weights, Poisson repeats, per-group thresholds against fairlearn.

The model never sees the group: it learns from income, debt and region (a proxy, equal to
the group 80% of the time); the mitigations use the group, as the protected side topic gives
it to fairness."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from river import compose, linear_model, naive_bayes, preprocessing

from driftline.core.fairness.mitigation import GroupThresholds, Reweigher, learn_weighted, takes_weight
from driftline.fairness_data import lending


def test_kamiran_calders_weights_make_group_and_label_independent():
    rng = random.Random(3)
    pairs = [(g, rng.random() < (0.5 if g == "a" else 0.3)) for g in rng.choices("aab", k=3000)]
    rw = Reweigher(window=len(pairs))
    for g, y in pairs:
        rw.observe(g, y)
    n, n_a, n_y = len(pairs), Counter(g for g, _ in pairs), Counter(y for _, y in pairs)
    weighted = Counter()
    for g, y in pairs:
        weighted[g, y] += rw.weight(g, y)
    for (g, y), w in weighted.items():
        assert w == pytest.approx(n_a[g] * n_y[y] / n, rel=1e-12)


def test_models_without_a_weight_learn_poisson_repeats_seeded():
    nb, lr = naive_bayes.GaussianNB(), compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    assert not takes_weight(nb) and takes_weight(lr)
    rng = random.Random(5)
    counts = [learn_weighted(nb, {"x": 1.0}, True, 1.6, rng) for _ in range(2000)]
    assert np.mean(counts) == pytest.approx(1.6, abs=0.1) and np.var(counts) == pytest.approx(1.6, abs=0.2)
    rng = random.Random(5)
    assert counts == [learn_weighted(naive_bayes.GaussianNB(), {"x": 1.0}, True, 1.6, rng) for _ in range(2000)]
    assert learn_weighted(lr, {"x": 1.0}, True, 1.6, random.Random(0)) == 1


def _model():
    num = compose.Select("income", "debt") | preprocessing.StandardScaler()
    cat = compose.Select("region") | preprocessing.OneHotEncoder()
    return (num + cat) | linear_model.LogisticRegression()


def run(policy: str, seed: int = 1, n: int = 30_000, last: int = 10_000, feedback: float = 0.02):
    """Prequential on the lending stream with label bias 0.3: the demographic-parity ratio of the
    decisions and their accuracy against the unbiased truth, over the last ``last`` events."""
    model, rw, rng = _model(), Reweigher(30_000), random.Random(seed)
    gt = GroupThresholds(5000, 100, feedback=feedback)
    selected, seen, correct = Counter(), Counter(), 0
    for i, (x, y, truth) in enumerate(itertools.islice(lending(seed=seed, beta=0.3), n)):
        group = x.pop("group")
        assert "group" not in x
        score = model.predict_proba_one(x).get(True, 0.0)
        if policy == "group_threshold":
            decision = gt.decide(group, score)
            gt.decided(group, decision)
        else:
            decision = score >= 0.5
        if i >= n - last:
            selected[group] += decision
            seen[group] += 1
            correct += decision == truth
        if policy == "reweigh":
            rw.observe(group, y)
            learn_weighted(model, x, y, rw.weight(group, y), rng)
        else:
            model.learn_one(x, y)
        gt.observe(group, score, y)
    rates = [selected[g] / seen[g] for g in ("a", "b")]
    return min(rates) / max(rates), correct / last, gt


@pytest.fixture(scope="module")
def runs():
    return {policy: run(policy) for policy in ("none", "reweigh", "group_threshold")}


def test_reweighing_and_group_thresholds_raise_demographic_parity_without_costing_accuracy(runs):
    (dp_none, acc_none, _), (dp_rw, acc_rw, _), (dp_gt, acc_gt, _) = (
        runs["none"], runs["reweigh"], runs["group_threshold"])
    print(f"DP ratio / accuracy vs truth: none {dp_none:.3f} / {acc_none:.4f}, reweigh {dp_rw:.3f} / {acc_rw:.4f}, "
          f"group_threshold {dp_gt:.3f} / {acc_gt:.4f}")
    assert dp_none < 0.9
    assert dp_rw >= 0.95 and dp_gt >= 0.99  # the targets (docs/governance.md#mitigation)
    assert acc_rw >= acc_none - 0.005 and acc_gt >= acc_none - 0.005


def test_without_feedback_the_thresholds_alone_fall_short_of_parity():
    """The window's thresholds equalise the *expected* selection rates; the rates the groups
    actually get still differ by sampling (about 0.01 at 3,000 and 7,000 decisions)."""
    dp, _, _ = run("group_threshold", feedback=0.0)
    print(f"group_threshold without feedback: DP ratio {dp:.4f}")
    assert 0.95 <= dp < 0.99


def test_group_thresholds_agree_with_fairlearn_threshold_optimizer(runs):
    from fairlearn.postprocessing import ThresholdOptimizer
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Scores(ClassifierMixin, BaseEstimator):
        """The stream's scores as a prefit estimator: X holds the score."""

        def fit(self, X, y):
            self.classes_ = np.array([False, True])
            return self

        def predict_proba(self, X):
            s = np.asarray(X)[:, 0]
            return np.column_stack([1 - s, s])

        def predict(self, X):
            return np.asarray(X)[:, 0] >= 0.5

    gt = runs["group_threshold"][2]
    rows = [(g, s, y) for g, window in sorted(gt.windows().items()) for s, y in window]
    X = pd.DataFrame({"score": [s for _, s, _ in rows]})
    y = np.array([y for _, _, y in rows])
    groups = pd.Series([g for g, _, _ in rows])
    optimizer = ThresholdOptimizer(estimator=Scores().fit(X, y), constraints="demographic_parity", prefit=True,
                                   predict_method="predict_proba")
    optimizer.fit(X, y, sensitive_features=groups)
    theirs = pd.Series(optimizer._pmf_predict(X, sensitive_features=groups)[:, 1]).groupby(groups).mean()
    gt.update()
    for g, window in gt.windows().items():
        # the window's thresholds (the feedback moves a decision's rate by feedback * owed around them)
        ours = np.mean([s >= gt.thresholds[g] for s, _ in window])
        print(f"group {g}: selection rate {ours:.4f}, ThresholdOptimizer {theirs[g]:.4f}")
        assert ours == pytest.approx(theirs[g], abs=0.02), (g, ours, theirs[g])
