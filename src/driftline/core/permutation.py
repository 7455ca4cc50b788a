"""Incremental permutation feature importance (iPFI), as the iXAI package defines it.

iPFI (Fumagalli et al., "Incremental permutation feature importance (iPFI): towards
online explanations on data streams", Machine Learning 2023; the ``ixai`` package's
``IncrementalPFI``): for an explained labelled event ``(x, y)``, before the model learns it,
each feature ``j`` in turn takes the value of a row drawn uniformly from a reservoir of
past inputs (iXAI's ``MarginalImputer``, ``joint``); ``loss(y, f(x with x_j replaced)) -
loss(y, f(x))`` is that feature's sample, and each feature's importance is the exponential
smoothing ``I_j <- (1 - alpha) I_j + alpha * sample`` from 0 (``ExponentialSmoothingTracker``).
The reservoir is iXAI's ``GeometricReservoirStorage`` (100 rows; once full, a new row
replaces a random one with probability 1/100), fed with every labelled event.

Driftline explains only one labelled event in ``every`` (the others only feed the
reservoir), so the CPU it costs stays within a budget: ``1 + d`` predictions per explained
event for ``d`` features, and ``every`` defaults to ``ceil((1 + d) / budget)``, so a
labelled event costs ``budget`` predictions on average (0.05: one twentieth of a
prediction). It runs when a label joins, in the learning step, never where a prediction is
made. The random draws come from a seeded generator kept in the state, in iXAI's order (a
test seeds iXAI's global ``random`` alike and gets the same values), so a replay gives the
same importances. The loss is ``1 - p(label)`` for a classifier with probabilities, else
the 0/1 error, and the absolute error for a regressor.

>>> import random
>>> from river import naive_bayes
>>> model = naive_bayes.GaussianNB()
>>> rng = random.Random(0)
>>> def predict(x):
...     proba = model.predict_proba_one(x)
...     return (max(proba, key=proba.get) if proba else None), proba
>>> perm = PermutationImportance("classification", every=5, smoothing=0.02)
>>> for i in range(3000):
...     x = {"a": rng.random(), "b": rng.random()}
...     y = x["a"] > 0.5
...     perm.observe(predict, x, y)
...     model.learn_one(x, y)
>>> imp = perm.values()
>>> imp["a"] > 10 * abs(imp["b"]), perm.sampled
(True, 599)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

__all__ = ["PermutationImportance"]


class PermutationImportance:
    """iPFI on one labelled event in ``every`` (None: from ``budget``); see the module docstring."""

    def __init__(self, task: str, every: int | None = None, budget: float = 0.05, size: int = 100,
                 smoothing: float = 0.02, seed: int = 0) -> None:
        self.task = task
        self.every = every
        self.budget = budget
        self.size = size
        self.smoothing = smoothing
        self.seed = seed
        self._rng = random.Random(seed)
        self._storage: list[dict[str, Any]] = []
        self._names: tuple[str, ...] | None = None  # iXAI's feature_names: the first event's
        self._seen = 0  # labelled events observed
        self._explained = 0  # iXAI's seen_samples: explain_one calls
        self._values: dict[str, float] = {}
        self.sampled = 0  # explained events that produced samples

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "_storage" not in state:  # pickled by the sliding-ring version: start afresh, same settings
            self.__init__(state.get("task", "classification"), seed=state.get("seed", 0))
            return
        self.__dict__.update(state)

    def _loss(self, answer: tuple[Any, dict[Any, float] | None], label: Any) -> float:
        prediction, proba = answer
        if self.task == "classification":
            if proba:
                return 1.0 - float(proba.get(label, 0.0))
            return float(prediction != label)
        return abs(float(label) - float(prediction or 0.0))

    def observe(self, predict: Callable[[dict[str, Any]], tuple[Any, Any]], features: dict[str, Any],
                label: Any) -> None:
        """One labelled event, before the model learns it (only one in ``every`` costs predictions)."""
        if self._names is None:
            self._names = tuple(features)
            if self.every is None:
                self.every = max(1, math.ceil((1 + len(self._names)) / self.budget))
        self._seen += 1
        if self._seen % self.every == 0:
            self._explain(predict, features, label)
        self._store(features)

    def _store(self, features: dict[str, Any]) -> None:
        """iXAI's ``GeometricReservoirStorage.update``."""
        storage = self._storage
        if len(storage) < self.size:
            storage.append(features)
        elif self._rng.random() <= 1 / self.size:
            storage[self._rng.randrange(self.size)] = features

    def _explain(self, predict: Callable[[dict[str, Any]], tuple[Any, Any]], features: dict[str, Any],
                 label: Any) -> None:
        """iXAI's ``IncrementalPFI.explain_one`` (one inner sample), storage update apart."""
        self._explained += 1
        if self._explained == 1 or not self._storage:  # iXAI explains from its second call on
            return
        try:
            base = self._loss(predict(features), label)
            storage, rng, a = self._storage, self._rng, self.smoothing
            samples = {}
            for name in self._names or ():
                row = storage[rng.randrange(len(storage))]
                samples[name] = self._loss(predict({**features, name: row[name]}), label) - base
        except Exception:  # noqa: BLE001 - an explanation never stops the stream
            return
        values = self._values
        for name, sample in samples.items():
            values[name] = (1 - a) * values.get(name, 0) + a * sample
        self.sampled += 1

    def values(self) -> dict[str, float] | None:
        """The current importances (``None`` before the first sample)."""
        return dict(self._values) if self._values else None
