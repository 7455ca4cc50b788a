"""Linear models, alone or at the end of a pipeline of transformers (scaling, one-hot).

The logit (or a regressor's output) is ``intercept + sum(w_i * z_i)`` over the inputs ``z``
the last step sees, so ``w_i * z_i`` is each input's exact contribution. With a standard
scaler ``z_i = 0`` at the running mean: this is the Shapley value of input ``i`` against a
baseline at the mean (tests/unit/core/explain checks it by enumeration). One-hot columns
``<feature>_<value>`` are summed back to the feature the producer sent.

>>> from river import compose, linear_model, preprocessing
>>> model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
>>> for i in range(50):
...     model.learn_one({"a": float(i % 7), "b": float(i % 3)}, i % 7 > 3)
>>> e = explain_linear(model, {"a": 6.0, "b": 1.0}, True)
>>> abs(e.total() - model["LogisticRegression"]._raw_dot_one(model["StandardScaler"].transform_one({"a": 6.0, "b": 1.0}))) < 1e-12
True
>>> sorted(e.contributions)
['a', 'b']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from river import compose, linear_model

from driftline.core.explain.explanation import Explanation

__all__ = ["linear_step", "explain_linear"]

_LINEAR = (linear_model.LogisticRegression, linear_model.LinearRegression)


def linear_step(model: Any) -> Any | None:
    """The linear estimator at the end of ``model`` (itself or a pipeline's last step), or None."""
    if isinstance(model, compose.Pipeline):
        model = list(model.steps.values())[-1]
    return model if type(model) in _LINEAR else None


def explain_linear(model: Any, x: dict[str, Any], target: Any = True,
                   name_of: Callable[[str], str] | None = None, glm: Any = None,
                   z: dict[str, Any] | None = None) -> Explanation:
    """``Explanation`` of one prediction of a (pipelined) linear model (``target`` is ignored:
    a logistic regression explains the logit of True, a linear regression its output).
    ``name_of`` maps an input column to the reported name; ``glm``: the linear step, if known;
    ``z``: what the linear step saw, if known (the pipeline's transform of ``x`` made for the
    prediction, :meth:`Explainer.predict_proba_one`), so that it is not computed again."""
    if glm is None:
        glm = linear_step(model)
    if z is None:
        z = model.transform_one(x) if isinstance(model, compose.Pipeline) else x
    get = glm._weights.get
    if name_of is None:
        contributions = {key: get(key, 0.0) * value for key, value in z.items()}
    else:
        contributions = {}
        for key, value in z.items():
            name = name_of(key)
            contributions[name] = contributions.get(name, 0.0) + get(key, 0.0) * value
    intercept = float(glm.intercept)
    # A River logistic regression is binary: its logit is always that of True.
    if type(glm) is linear_model.LogisticRegression:
        return Explanation("linear", True, "logit", intercept + sum(contributions.values()), intercept, contributions)
    return Explanation("linear", None, "value", intercept + sum(contributions.values()), intercept, contributions)
