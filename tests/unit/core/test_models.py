"""Contract of every model preset, and how factories and bad configs are handled."""

from __future__ import annotations

import itertools
import math
import pickle

import pytest
from river import base, linear_model, preprocessing

from driftline.config import ModelConfig
from driftline.core.models import PRESETS, build_model, task_of
from driftline.datasets import stream
from driftline.exceptions import ConfigError

DATA = {
    "classification": list(stream("river:Phishing", limit=300)),
    "regression": list(stream("river:TrumpApproval", limit=300)),
}


def predictions(model, xs):
    if task_of(model) == "classification":
        return [(model.predict_one(x), model.predict_proba_one(x)) for x in xs]
    return [model.predict_one(x) for x in xs]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_contract(preset):
    model = build_model(ModelConfig(preset=preset))
    assert isinstance(model, base.Estimator)
    task = task_of(model)
    rows = DATA[task]
    train, probe = rows[:200], [x for x, _ in rows[200:]]
    for x, y in train:
        model.predict_one(x)
        model.learn_one(x, y)
    clone = pickle.loads(pickle.dumps(model))
    assert predictions(clone, probe) == predictions(model, probe)
    for x, y in rows[200:]:  # and both keep learning the same way
        model.learn_one(x, y)
        clone.learn_one(x, y)
    assert predictions(clone, probe) == predictions(model, probe)
    if task == "classification":
        assert {model.predict_one(x) for x in probe} <= {True, False}
    else:
        assert all(math.isfinite(model.predict_one(x)) for x in probe)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_build_fresh_unfitted_models(preset):
    first, second = build_model(ModelConfig(preset=preset)), build_model(ModelConfig(preset=preset))
    assert first is not second
    rows = DATA[task_of(first)]
    for x, y in rows[:100]:
        first.learn_one(x, y)
    untouched = build_model(ModelConfig(preset=preset))
    xs = [x for x, _ in rows[100:150]]
    assert predictions(second, xs) == predictions(untouched, xs)


def test_preset_params_reach_the_estimator():
    model = build_model(ModelConfig(preset="hoeffding_tree", params={"grace_period": 17}))
    assert model.grace_period == 17
    model = build_model(ModelConfig(preset="logistic_regression", params={"l2": 0.5}))
    assert model["LogisticRegression"].l2 == 0.5


def test_linear_presets_one_hot_encode_declared_categories():
    config = ModelConfig(preset="logistic_regression", features={"x": "num", "day": "cat"})
    model = build_model(config)
    for i, day in zip(range(200), itertools.cycle(["mon", "tue", "wed"])):
        model.learn_one({"x": float(i % 7), "day": day}, day == "tue")
    tue, mon = model.predict_proba_one({"x": 3.0, "day": "tue"}), model.predict_proba_one({"x": 3.0, "day": "mon"})
    assert tue[True] > 0.5 > mon[True]


def test_factory_path():
    model = build_model(ModelConfig(factory="river.linear_model:LogisticRegression", params={"l2": 0.1}))
    assert isinstance(model, linear_model.LogisticRegression) and model.l2 == 0.1


@pytest.mark.parametrize("config", [
    ModelConfig(preset="nope"),
    ModelConfig(factory="no_colon"),
    ModelConfig(factory=":attr"),
    ModelConfig(factory="no_such_module_xyz:f"),
    ModelConfig(factory="river.linear_model:Nope"),
    ModelConfig(factory="builtins:dict"),
])
def test_bad_model_configs_are_config_errors(config):
    with pytest.raises(ConfigError):
        build_model(config)


def test_task_of_refuses_non_supervised_estimators():
    assert task_of(linear_model.LinearRegression()) == "regression"
    with pytest.raises(ConfigError):
        task_of(preprocessing.StandardScaler())


@pytest.mark.parametrize("config", [
    ModelConfig(preset="hoeffding_tree", params={"bogus": 1}),
    ModelConfig(factory="river.linear_model:LogisticRegression", params={"bogus": 1}),
])
def test_bad_model_params_are_config_errors(config):
    # regression: a typo in [model.params] used to escape as a raw TypeError past the CLI
    with pytest.raises(ConfigError):
        build_model(config)
