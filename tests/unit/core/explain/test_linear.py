"""Scaled linear pipelines: contributions plus intercept are the logit, and they are the
exact Shapley values against a baseline at the scaler's means (checked by enumeration)."""

from __future__ import annotations

import itertools
import math
import random

from river import compose, linear_model, preprocessing

from driftline.core.explain import Explainer, explain_linear
from driftline.core.models import PRESETS


def _trained(model, n=300, seed=3):
    rng = random.Random(seed)
    for _ in range(n):
        x = {"a": rng.gauss(1, 2), "b": rng.gauss(-3, 0.5), "c": rng.uniform(0, 10), "colour": rng.choice("rgb")}
        y = 0.8 * x["a"] - 2 * x["b"] + (x["colour"] == "r") + rng.gauss(0, 1) > 7
        model.learn_one(x, y)
    return model, rng


def test_contributions_and_intercept_reproduce_the_logit():
    model, rng = _trained(PRESETS["logistic_regression"](("colour",)))
    lr = model["LogisticRegression"]
    for _ in range(200):
        x = {"a": rng.gauss(1, 2), "b": rng.gauss(-3, 0.5), "c": rng.uniform(0, 10), "colour": rng.choice("rgbx")}
        e = explain_linear(model, x, True)
        logit = lr._raw_dot_one(model.transform_one(x))
        assert abs(e.total() - logit) < 1e-9
        assert abs(e.value - logit) < 1e-9
        p = model.predict_proba_one(x)[True]
        assert abs(1 / (1 + math.exp(-e.value)) - p) < 1e-9


def test_one_hot_columns_are_reported_under_the_producer_feature():
    model, _ = _trained(PRESETS["logistic_regression"](("colour",)))
    member = Explainer(top_k=10, categorical=("colour",)).explain(model, {"a": 1.0, "b": -3.0, "c": 2.0, "colour": "r"}, True)
    assert set(member["contributions"]) == {"a", "b", "c", "colour"}


def test_contributions_are_exact_shapley_values_against_the_mean():
    """v(S) = logit with the features in S at x and the others at the scaler's mean (z = 0)."""
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    rng = random.Random(11)
    for _ in range(500):
        x = {"a": rng.gauss(2, 1), "b": rng.gauss(0, 3), "c": rng.gauss(-1, 0.2)}
        model.learn_one(x, x["a"] + 0.3 * x["b"] - x["c"] + rng.gauss(0, 0.5) > 3)
    scaler, lr = model["StandardScaler"], model["LogisticRegression"]
    baseline = dict(scaler.means)
    x = {"a": 3.5, "b": -2.0, "c": -0.7}
    names = sorted(x)

    def v(subset):
        point = {n: (x[n] if n in subset else baseline[n]) for n in names}
        return lr._raw_dot_one(scaler.transform_one(point))

    d = len(names)
    for name in names:
        others = [n for n in names if n != name]
        phi = 0.0
        for size in range(d):
            for subset in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
                phi += weight * (v(set(subset) | {name}) - v(set(subset)))
        assert abs(phi - explain_linear(model, x, True).contributions[name]) < 1e-9
    assert abs(v(set()) - lr.intercept) < 1e-9  # the baseline's logit is the intercept


def test_linear_regression_explains_its_prediction():
    model = PRESETS["linear_regression"](())
    rng = random.Random(5)
    for _ in range(200):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(5, 2)}
        model.learn_one(x, 3 * x["a"] - x["b"])
    x = {"a": 0.3, "b": 4.0}
    e = explain_linear(model, x, None)
    assert e.output == "value" and abs(e.total() - model.predict_one(x)) < 1e-9
