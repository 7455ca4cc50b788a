"""Feature importance over time, and a drift signal when its ranking shifts.

For a linear model, the importance of a feature is ``|coefficient| × scale``: the weight
times the feature's standard deviation. Behind River's ``StandardScaler`` the inputs already
have unit variance, so it is ``|coefficient|``; for a bare linear model the scale is the
feature's running standard deviation, which :class:`ImportanceWatch` does not track, so only
scaled pipelines (Driftline's linear presets) are supported. One-hot columns ``c_value`` add up
to their feature ``c``. Hoeffding trees and forests of them give split-based shares
(:mod:`driftline.core.tree_importance`); other models give ``None`` here, and the engine
estimates theirs by incremental permutation (:mod:`driftline.core.permutation`).

The ranking is checked once per metrics window; the first ranking (after ``warmup`` windows)
is the reference, and a shift is a Kendall tau between the reference and the current
importances below ``min_tau``. After a shift the current ranking becomes the reference.

>>> from river import compose, linear_model, preprocessing
>>> model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LinearRegression())
>>> for i in range(300):
...     model.learn_one({"a": i % 7, "b": i % 3}, 3.0 * (i % 7) + 0.1 * (i % 3))
>>> imp = importances(model)
>>> imp["a"] > imp["b"]
True
"""

from __future__ import annotations

from typing import Any

from river import compose, linear_model, preprocessing
from scipy import stats

from driftline.core.tree_importance import tree_importances

__all__ = ["importances", "ImportanceWatch"]


def _linear(model: Any) -> tuple[Any, bool] | None:
    if isinstance(model, compose.Pipeline):
        steps = list(model.steps.values())
        last = steps[-1]
        scaled = any(isinstance(s, preprocessing.StandardScaler) for s in steps[:-1]) or any(
            isinstance(s, compose.TransformerUnion) for s in steps[:-1])
        return (last, scaled) if isinstance(last, (linear_model.LinearRegression, linear_model.LogisticRegression)) else None
    return None


def importances(model: Any, categorical: tuple[str, ...] = ()) -> dict[str, float] | None:
    """``|w| × scale`` per feature for a scaled linear pipeline, split shares for trees, else ``None``."""
    found = _linear(model)
    if found is None:
        return tree_importances(model)
    if not found[1]:
        return None
    weights = found[0].weights
    out: dict[str, float] = {}
    for name, w in weights.items():
        feature = next((c for c in categorical if str(name).startswith(f"{c}_")), str(name))
        out[feature] = out.get(feature, 0.0) + abs(float(w))
    return out


class ImportanceWatch:
    """Reference ranking against the current one, once per metrics window."""

    def __init__(self, min_tau: float = 0.5, warmup: int = 5, categorical: tuple[str, ...] = ()) -> None:
        self.min_tau = min_tau
        self.warmup = warmup
        self.categorical = categorical
        self.windows = 0
        self.reference: dict[str, float] | None = None

    def rebase(self) -> None:
        self.windows, self.reference = 0, None

    def check(self, model: Any, current: dict[str, float] | None = None
              ) -> tuple[float, dict[str, float], dict[str, float]] | None:
        """``(tau, reference, current)`` when the ranking shifted, else ``None``.

        ``current`` (e.g. permutation importances) replaces the model's own when given."""
        self.windows += 1
        if current is None:
            current = importances(model, self.categorical)
        if not current or self.windows < self.warmup:  # none yet (e.g. a tree before its first split)
            return None
        if self.reference is None:
            self.reference = current
            return None
        names = sorted(set(self.reference) | set(current))
        if len(names) < 3:
            return None
        tau = stats.kendalltau([self.reference.get(n, 0.0) for n in names], [current.get(n, 0.0) for n in names]).statistic
        if tau != tau or tau >= self.min_tau:  # NaN (constant importances) is no evidence
            return None
        reference, self.reference = self.reference, current
        return float(tau), reference, current
