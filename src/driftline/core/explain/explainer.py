"""Choose the exact method for the model in service and turn its answer into a record member.

Scaled linear pipelines: ``w_i * z_i`` (:mod:`.linear`); Hoeffding trees, the adaptive tree
and the adaptive random forest: path contributions (:mod:`.trees`). Every other model gets
``{"method": "none"}``: no per-prediction reasons rather than approximate ones.

Contributions are reported under the names the producer sent: a one-hot column
``<feature>_<value>`` of a declared categorical feature counts for ``<feature>``.

A linear pipeline's prediction and its explanation share one transform: the engine predicts
through :meth:`Explainer.predict_proba_one` (the pipeline's transformers, then the linear
step, as ``Pipeline.predict_proba_one`` does), which keeps the transformed input of the
last call; explaining that same input (the same dict) of the same model next reads it
instead of transforming again. It is read once, so a model that learned since is never
explained from a stale transform; it is never pickled.

>>> from river import compose, linear_model, preprocessing
>>> model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
>>> for i in range(50):
...     model.learn_one({"age": float(i % 7), "debt": float(i % 3)}, i % 7 > 3)
>>> member = Explainer(top_k=1).explain(model, {"age": 1.0, "debt": 2.0}, True)
>>> member["method"], list(member["contributions"]), member["reasons"]
('linear', ['age'], ['age'])
"""

from __future__ import annotations

from typing import Any

from river import compose

from driftline.core.explain.explanation import Explanation, unexplained
from driftline.core.outputs import json_key
from driftline.core.explain.linear import explain_linear, linear_step
from driftline.core.explain.trees import TreeExplainer, supports_tree

__all__ = ["Explainer", "method_of"]


def method_of(model: Any) -> str:
    """The explanation method a model gets: ``linear``, ``saabas``, ``saabas_mean`` or ``none``."""
    from river import forest

    if linear_step(model) is not None:
        return "linear"
    if supports_tree(model):
        return "saabas_mean" if isinstance(model, forest.ARFClassifier) else "saabas"
    return "none"


class Explainer:
    """Per-prediction explanations for whatever model the engine serves (it may change)."""

    def __init__(self, top_k: int = 5, categorical: tuple[str, ...] = ()) -> None:
        self.top_k = top_k
        self.categorical = tuple(categorical)
        self._trees = TreeExplainer()
        self._names: dict[str, str] = {}
        self._linear: tuple[Any, Any, bool] = (None, None, False)  # (model, its linear step or None, a pipeline?)
        self._last: tuple[Any, Any, Any] | None = None  # (model, x, x transformed) of the last prediction

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_linear"], state["_last"] = (None, None, False), None  # a cache, and an event's features
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_linear", (None, None, False))  # pickled before the shared transform
        self.__dict__.setdefault("_last", None)

    def _linear_step(self, model: Any) -> tuple[Any, bool]:
        """``linear_step(model)`` and whether ``model`` is a pipeline, cached for the model in service."""
        cached, glm, pipeline = self._linear
        if cached is not model:
            glm, pipeline = linear_step(model), isinstance(model, compose.Pipeline)
            self._linear = (model, glm, pipeline)
        return glm, pipeline

    def predict_proba_one(self, model: Any, x: dict[str, Any]) -> dict[Any, float]:
        """``model.predict_proba_one(x)``, the same computation; for a linear pipeline the
        transformed input is kept for :meth:`explanation` of ``x``."""
        glm, pipeline = self._linear_step(model)
        if glm is None or not pipeline:
            return model.predict_proba_one(x)
        z = model.transform_one(x)
        self._last = (model, x, z)
        return glm.predict_proba_one(z)

    def predict_one(self, model: Any, x: dict[str, Any]) -> Any:
        """``model.predict_one(x)`` (a regressor), sharing the transform as above."""
        glm, pipeline = self._linear_step(model)
        if glm is None or not pipeline:
            return model.predict_one(x)
        z = model.transform_one(x)
        self._last = (model, x, z)
        return glm.predict_one(z)

    def name_of(self, column: str) -> str:
        """The producer's feature behind a model input (one-hot columns back to their feature)."""
        name = self._names.get(column)
        if name is None:
            name = str(column)
            for feature in self.categorical:
                if name.startswith(f"{feature}_"):
                    name = feature
                    break
            self._names[column] = name
        return name

    def explanation(self, model: Any, x: dict[str, Any], target: Any) -> Explanation | None:
        """The full explanation (every contribution), or None when the model has no exact method."""
        glm, _ = self._linear_step(model)
        if glm is not None:
            last, self._last = self._last, None  # read once: the model learns after it explained
            z = last[2] if last is not None and last[0] is model and last[1] is x else None
            return explain_linear(model, x, target, self.name_of if self.categorical else None, glm, z)
        if supports_tree(model):
            return self._trees.explain(model, x, target, self.name_of)
        return None

    def explain(self, model: Any, x: dict[str, Any], target: Any) -> dict[str, Any]:
        """The ``explanation`` member of a prediction record (top-k contributions, reason codes)."""
        e = self.explanation(model, x, target)
        return unexplained(model) if e is None else e.body(self.top_k)

    def explain_prediction(self, model: Any, x: dict[str, Any], prediction: Any, task: str,
                           classes: tuple[Any, ...], binary_codec: bool) -> dict[str, Any] | None:
        """What the engine puts in a prediction record: the explanation of the last class's
        logit or probability when there are two classes, else of the predicted class's.

        ``binary_codec``: the model answers True/False for "the last class" (a logistic
        regression over two named classes); the record names the class. None if the
        explainer itself fails: an explanation never costs the prediction.
        """
        if task != "classification":
            target = None
        elif len(classes) == 2:
            target = True if binary_codec else classes[-1]
        else:
            target = prediction
        try:
            member = self.explain(model, x, target)
        except Exception:  # noqa: BLE001 - a model shape the explainer did not foresee
            return None
        if binary_codec and member.get("target") == "true":
            member["target"] = json_key(classes[-1])
        return member
