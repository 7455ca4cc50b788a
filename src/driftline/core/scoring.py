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

from typing import Any

from river import metrics, utils

from driftline.core.roc_auc import BinnedROCAUC

__all__ = ["OnlineScores", "error_of"]

# name -> (metric class, what it is fed). Label metrics of a classifier all read one shared
# confusion matrix (one cumulative, one rolling), which is updated once per example.
_BINARY = {
    "accuracy": (metrics.Accuracy, "cm"),
    "precision": (metrics.Precision, "cm"),
    "recall": (metrics.Recall, "cm"),
    "f1": (metrics.F1, "cm"),
    "roc_auc": (BinnedROCAUC, "proba"),  # O(1) per update; see core/roc_auc.py
    "log_loss": (metrics.LogLoss, "proba"),
}
_MULTICLASS = {
    "accuracy": (metrics.Accuracy, "cm"),
    "precision": (metrics.MacroPrecision, "cm"),
    "recall": (metrics.MacroRecall, "cm"),
    "f1": (metrics.MacroF1, "cm"),
    "log_loss": (metrics.CrossEntropy, "proba"),
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
            self._cms = (metrics.ConfusionMatrix(), utils.Rolling(metrics.ConfusionMatrix, window_size=self.window))
        built = []
        for name, (cls, feed) in table.items():
            kwargs: dict[str, Any] = {}
            if feed == "cm":
                built.append((name, "", cls(cm=self._cms[0], **kwargs)))
                built.append((f"rolling_{name}", "", cls(cm=self._cms[1], **kwargs)))
            else:
                built.append((name, feed, cls(**kwargs)))
                built.append((f"rolling_{name}", feed, utils.Rolling(cls, window_size=self.window, **kwargs)))
        self._fed = [(feed, metric) for _, feed, metric in built if feed]
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
