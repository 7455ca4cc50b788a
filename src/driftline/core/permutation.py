"""Incremental permutation importance, for models with no structural importance.

For a sample of labelled events (one in ``every``), before the model learns the example, the
loss of the prediction is compared with the loss when one feature's value is replaced by
the value of a recent example (kept in a small ring): the increase, smoothed by an
exponential moving average, is that feature's importance (iPFI, Fumagalli et al. 2023).
One sampled event costs ``1 + d`` predictions for ``d`` features, and ``every`` spreads
that cost: the budget per labelled event is ``(1 + d) / every`` predictions. The choice of
the replacement comes from a seeded generator kept in the state, so a replay gives the same
importances. The loss is ``1 - p(label)`` for a classifier with probabilities, else the
0/1 error, and the absolute error for a regressor.

>>> import random
>>> from river import naive_bayes
>>> model = naive_bayes.GaussianNB()
>>> rng = random.Random(0)
>>> def predict(x):
...     proba = model.predict_proba_one(x)
...     return (max(proba, key=proba.get) if proba else None), proba
>>> perm = PermutationImportance("classification", every=5)
>>> for i in range(3000):
...     x = {"a": rng.random(), "b": rng.random()}
...     y = x["a"] > 0.5
...     perm.observe(predict, x, y)
...     model.learn_one(x, y)
>>> imp = perm.values()
>>> imp["a"] > 10 * abs(imp["b"])
True
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

__all__ = ["PermutationImportance"]


class PermutationImportance:
    """Smoothed loss increase per permuted feature, on one labelled event in ``every``."""

    def __init__(self, task: str, every: int = 200, ring: int = 64, smoothing: float = 0.02, seed: int = 0) -> None:
        self.task = task
        self.every = every
        self.ring = ring
        self.smoothing = smoothing
        self.seed = seed
        self._rng = random.Random(seed)
        self._rows: list[dict[str, Any]] = []
        self._pos = 0
        self._seen = 0
        self._values: dict[str, float] = {}
        self.sampled = 0

    def _loss(self, answer: tuple[Any, dict[Any, float] | None], label: Any) -> float:
        prediction, proba = answer
        if self.task == "classification":
            if proba:
                return 1.0 - float(proba.get(label, 0.0))
            return float(prediction != label)
        return abs(float(label) - float(prediction or 0.0))

    def observe(self, predict: Callable[[dict[str, Any]], tuple[Any, Any]], features: dict[str, Any],
                label: Any) -> None:
        """One labelled event, before the model learns it (only one in ``every`` costs anything)."""
        self._seen += 1
        if len(self._rows) < self.ring:
            self._rows.append(features)
        elif self._seen % self.every == 0:
            self._sample(predict, features, label)
            self._rows[self._pos] = features
            self._pos = (self._pos + 1) % self.ring
        elif self._seen % 7 == 0:  # keep the ring recent at no cost
            self._rows[self._pos] = features
            self._pos = (self._pos + 1) % self.ring

    def _sample(self, predict: Callable[[dict[str, Any]], tuple[Any, Any]], features: dict[str, Any],
                label: Any) -> None:
        try:
            base = self._loss(predict(features), label)
            rows, rng, a = self._rows, self._rng, self.smoothing
            for name in features:
                other = rows[rng.randrange(len(rows))]
                permuted = {**features, name: other.get(name, features[name])}
                delta = self._loss(predict(permuted), label) - base
                old = self._values.get(name)
                self._values[name] = delta if old is None else old + a * (delta - old)
        except Exception:  # noqa: BLE001 - an explanation never stops the stream
            return
        self.sampled += 1

    def values(self) -> dict[str, float] | None:
        """The current importances (``None`` before the first sample)."""
        return dict(self._values) if self._values else None
