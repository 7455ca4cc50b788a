"""Build the River estimator a deployment runs: a named preset or a ``module:factory``.

>>> from driftline.config import ModelConfig
>>> model = build_model(ModelConfig(preset="logistic_regression"))
>>> type(model).__name__
'Pipeline'
>>> task_of(model)
'classification'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from river import base, compose, forest, linear_model, naive_bayes, preprocessing, tree

from driftline.config import ModelConfig
from driftline.exceptions import ConfigError

__all__ = ["PRESETS", "build_model", "task_of"]


def _scaled(estimator: base.Estimator, categorical: tuple[str, ...] = ()) -> base.Estimator:
    """Standard-scale numbers; one-hot encode the declared categorical features."""
    if not categorical:
        return compose.Pipeline(preprocessing.StandardScaler(), estimator)
    numbers = compose.Discard(*categorical) | preprocessing.StandardScaler()
    categories = compose.Select(*categorical) | preprocessing.OneHotEncoder()
    return compose.Pipeline(compose.TransformerUnion(numbers, categories), estimator)


# Each preset takes the categorical feature names and the estimator's parameters.
PRESETS: dict[str, Callable[..., base.Estimator]] = {
    "logistic_regression": lambda cat, **p: _scaled(linear_model.LogisticRegression(**p), cat),
    "hoeffding_tree": lambda cat, **p: tree.HoeffdingTreeClassifier(**p),
    "hoeffding_adaptive_tree": lambda cat, **p: tree.HoeffdingAdaptiveTreeClassifier(**{"seed": 42, **p}),
    "adaptive_random_forest": lambda cat, **p: forest.ARFClassifier(**{"seed": 42, **p}),
    "gaussian_naive_bayes": lambda cat, **p: naive_bayes.GaussianNB(**p),
    "linear_regression": lambda cat, **p: _scaled(linear_model.LinearRegression(**p), cat),
    "hoeffding_tree_regressor": lambda cat, **p: tree.HoeffdingTreeRegressor(**p),
    "adaptive_random_forest_regressor": lambda cat, **p: forest.ARFRegressor(**{"seed": 42, **p}),
}


def _import_factory(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"model factory {path!r} must look like 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import model factory {path!r}: {exc}") from exc


def build_model(config: ModelConfig) -> base.Estimator:
    """A fresh, unfitted estimator from the model config."""
    try:
        if config.factory:
            model = _import_factory(config.factory)(**config.params)
        else:
            try:
                preset = PRESETS[config.preset]
            except KeyError:
                known = ", ".join(sorted(PRESETS))
                raise ConfigError(f"unknown model preset {config.preset!r}; known: {known}") from None
            categorical = tuple(name for name, kind in config.features.items() if kind == "cat")
            model = preset(categorical, **config.params)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad model parameters {config.params}: {exc}") from exc
    if not isinstance(model, base.Estimator):
        raise ConfigError(f"the model factory returned {type(model).__name__}, not a River estimator")
    if config.mini_batch is not None:
        from driftline.core.minibatch import stable_scaling

        model = stable_scaling(model)  # River's StandardScaler.learn_many can make a variance negative
    return model


def task_of(model: base.Estimator) -> str:
    """``classification`` or ``regression``; other estimators are refused."""
    if isinstance(model, base.Classifier):
        return "classification"
    if isinstance(model, base.Regressor):
        return "regression"
    raise ConfigError(f"{type(model).__name__} is neither a River classifier nor a regressor")
