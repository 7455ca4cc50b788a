"""Online metrics, cumulative and over a rolling window, built from ``river.metrics``.

Classifier metrics are chosen at the first label: binary metrics (with ROC AUC and log
loss) when the labels are booleans or the configured classes are two, macro-averaged
ones otherwise. As in ``river.evaluate.progressive_val_score``, an example whose
prediction was empty (an untrained model) does not update the metrics.

>>> scores = OnlineScores(task="classification", window=2)
>>> for y, p in [(True, {True: .8, False: .2}), (False, {True: .6, False: .4}), (True, {True: .9, False: .1})]:
...     scores.update(y, max(p, key=p.get), p)
>>> scores.n
3
>>> round(scores.values()["accuracy"], 4), round(scores.values()["rolling_accuracy"], 4)
(0.6667, 0.5)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

from river import metrics, stats

from driftline.core.roc_auc import BinnedROCAUC

__all__ = ["OnlineScores", "error_of", "Windowed", "MeanLoss", "cross_entropy", "log_loss"]

# name -> (metric class, what it is fed). Label metrics of a classifier all read one shared
# confusion matrix (one cumulative, one rolling), which is updated once per example; a
# "loss" metric is a mean of per-example losses, evaluated once per example (MeanLoss).
_BINARY = {
    "accuracy": (metrics.Accuracy, "cm"),
    "precision": (metrics.Precision, "cm"),
    "recall": (metrics.Recall, "cm"),
    "f1": (metrics.F1, "cm"),
    "roc_auc": (BinnedROCAUC, "proba"),  # O(1) per update; see core/roc_auc.py
    "log_loss": (metrics.LogLoss, "loss"),
}
_MULTICLASS = {
    "accuracy": (metrics.Accuracy, "cm"),
    "precision": (metrics.MacroPrecision, "cm"),
    "recall": (metrics.MacroRecall, "cm"),
    "f1": (metrics.MacroF1, "cm"),
    "log_loss": (metrics.CrossEntropy, "loss"),
}
_REGRESSION = {
    "mae": (metrics.MAE, "label"),
    "rmse": (metrics.RMSE, "label"),
    "r2": (metrics.R2, "label"),
}


def error_of(task: str, y_true: Any, y_pred: Any) -> float:
    """The per-example error fed to drift detectors: 0/1 loss or absolute error.

    >>> error_of("classification", "a", "b"), error_of("regression", 2.0, 3.5)
    (1.0, 1.5)
    """
    if task == "regression":
        return abs(float(y_true) - float(y_pred))
    return 0.0 if y_true == y_pred else 1.0


_MIN_P, _MAX_P = 1e-15, 1 - 1e-15  # River's probability clamp


def cross_entropy(y_true: Any, proba: dict[Any, float]) -> float:
    """One example's loss as ``river.metrics.CrossEntropy`` computes it (same expressions).

    >>> cross_entropy("b", {"a": 0.25, "b": 0.75}) == -math.log(0.75)
    True
    """
    total = 0.0
    for label, p in proba.items():
        if y_true == label:
            total += math.log(max(min(p, _MAX_P), _MIN_P))
    return -total


def log_loss(y_true: Any, proba: dict[Any, float] | float) -> float:
    """One example's loss as ``river.metrics.LogLoss`` computes it (same expressions).

    >>> log_loss(False, {True: 0.25, False: 0.75}) == -math.log(1 - 0.25)
    True
    """
    p = proba.get(True, 0.0) if isinstance(proba, dict) else proba
    p = max(min(p, _MAX_P), _MIN_P)
    return -math.log(p) if y_true else -math.log(1 - p)


_LOSSES: dict[type, Callable[[Any, Any], float]] = {metrics.CrossEntropy: cross_entropy, metrics.LogLoss: log_loss}


class Windowed:
    """``river.utils.Rolling`` for a metric updated with ``(y_true, y_pred)``, with less overhead.

    ``Rolling`` stores ``(args, kwargs)`` for every update and unpacks both to revert; in the
    engine's profile that wrapper cost about as much as the confusion matrix it wrapped. This
    makes the same calls on the wrapped metric in the same order (revert the oldest, then
    update), so its value is River's; tests/unit/core/test_scoring.py compares the two.

    >>> window = Windowed(metrics.Accuracy(), window_size=2)
    >>> for y, p in [(1, 1), (1, 0), (0, 0)]:
    ...     window.update(y, p)
    >>> window.get()  # the last two: one right, one wrong
    0.5
    """

    def __init__(self, metric: Any, window_size: int) -> None:
        self.metric = metric
        self.window_size = window_size
        self._window: deque[tuple[Any, Any]] = deque()

    def update(self, y_true: Any, y_pred: Any) -> None:
        window = self._window
        if len(window) == self.window_size:
            self.metric.revert(*window.popleft())
        self.metric.update(y_true, y_pred)
        window.append((y_true, y_pred))

    def get(self) -> float:
        return self.metric.get()


class MeanLoss:
    """A mean per-example loss (log loss, cross-entropy), cumulative and over a window.

    River's ``LogLoss`` and ``CrossEntropy`` are running means of a per-example loss; with
    ``utils.Rolling`` for the window, the loss is evaluated three times per example
    (cumulative, window, and again to revert the oldest), the most expensive metric in the
    engine's profile. This evaluates it once, makes the same ``stats.Mean`` updates and
    reverts as River and keeps the window's losses to revert them: the values are River's
    to the bit (tests/unit/core/test_scoring.py checks them against River's classes).

    >>> means = MeanLoss(log_loss, window_size=1)
    >>> means.update(True, 0.5)
    >>> means.update(True, 0.25)
    >>> round(means.total.get(), 4), round(means.recent.get(), 4)  # (ln 2 + ln 4) / 2, ln 4
    (1.0397, 1.3863)
    """

    def __init__(self, loss: Callable[[Any, Any], float], window_size: int) -> None:
        self.loss = loss
        self.window_size = window_size
        self.total = stats.Mean()
        self.recent = stats.Mean()
        self._window: deque[float] = deque()

    def update(self, y_true: Any, y_pred: Any) -> None:
        loss = self.loss(y_true, y_pred)
        self.total.update(loss)
        window = self._window
        if len(window) == self.window_size:
            self.recent.revert(window.popleft())
        self.recent.update(loss)
        window.append(loss)


class OnlineScores:
    """Every metric of a task, cumulative and over the last ``window`` labels."""

    def __init__(self, task: str, window: int = 1000, classes: tuple[Any, ...] = ()) -> None:
        self.task = task
        self.window = window
        self.classes = classes
        self.n = 0
        self._metrics: list[tuple[str, str, Any]] | None = None
        self._cms: tuple[Any, Any] | None = None
        self._fed: list[tuple[str, Any]] = []
        self._positive: Any = None
        self._map_positive = False  # a plain flag, not a sentinel object: it must survive pickling

    def _build(self, y_true: Any) -> list[tuple[str, str, Any]]:
        if self.task == "regression":
            table = _REGRESSION
        elif isinstance(y_true, bool) or len(self.classes) == 2:
            table = _BINARY
        else:
            table = _MULTICLASS
        # Binary metrics see booleans: "is it the positive class (the last configured one)?"
        if table is _BINARY and len(self.classes) == 2 and self.classes[-1] is not True:
            self._positive, self._map_positive = self.classes[-1], True
        if table is not _REGRESSION:
            self._cms = (metrics.ConfusionMatrix(), Windowed(metrics.ConfusionMatrix(), self.window))
        built: list[tuple[str, str, Any]] = []
        self._fed = []
        for name, (cls, feed) in table.items():
            if feed == "cm":
                built.append((name, "", cls(cm=self._cms[0])))
                built.append((f"rolling_{name}", "", cls(cm=self._cms[1].metric)))
            elif feed == "loss":
                means = MeanLoss(_LOSSES[cls], self.window)
                built += [(name, "", means.total), (f"rolling_{name}", "", means.recent)]
                self._fed.append(("proba", means))
            else:
                cumulative, rolling = cls(), Windowed(cls(), self.window)
                built += [(name, feed, cumulative), (f"rolling_{name}", feed, rolling)]
                self._fed += [(feed, cumulative), (feed, rolling)]
        return built

    def update(self, y_true: Any, y_pred: Any, proba: dict[Any, float] | None) -> None:
        """Update every metric with one labelled example (skipped if nothing was predicted)."""
        if y_pred is None:
            return
        if self._metrics is None:
            self._metrics = self._build(y_true)
        self.n += 1
        if self._map_positive:
            positive = self._positive
            y_true, y_pred = y_true == positive, y_pred == positive
            if proba:
                p = proba.get(positive, 0.0)
                proba = {True: p, False: 1.0 - p}
        if self._cms is not None:
            self._cms[0].update(y_true, y_pred)
            self._cms[1].update(y_true, y_pred)
        for feed, metric in self._fed:
            if feed == "label":
                metric.update(y_true, y_pred)
            elif proba:
                metric.update(y_true, proba)

    def values(self) -> dict[str, float]:
        """Current metric values by name (``rolling_`` prefix for the window)."""
        if self._metrics is None:
            return {}
        return {name: float(metric.get()) for name, _, metric in self._metrics}
