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

__all__ = ["OnlineScores", "error_of"]

_BINARY = {
    "accuracy": (metrics.Accuracy, "label"),
    "precision": (metrics.Precision, "label"),
    "recall": (metrics.Recall, "label"),
    "f1": (metrics.F1, "label"),
    "roc_auc": (metrics.ROCAUC, "proba"),
    "log_loss": (metrics.LogLoss, "proba"),
}
_MULTICLASS = {
    "accuracy": (metrics.Accuracy, "label"),
    "precision": (metrics.MacroPrecision, "label"),
    "recall": (metrics.MacroRecall, "label"),
    "f1": (metrics.MacroF1, "label"),
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

    def _build(self, y_true: Any) -> list[tuple[str, str, Any]]:
        if self.task == "regression":
            table = _REGRESSION
        elif isinstance(y_true, bool) or len(self.classes) == 2:
            table = _BINARY
        else:
            table = _MULTICLASS
        pos_val = self.classes[-1] if len(self.classes) == 2 else True
        built = []
        for name, (cls, needs) in table.items():
            kwargs = {"pos_val": pos_val} if table is _BINARY and name not in ("accuracy", "log_loss") else {}
            built.append((name, needs, cls(**kwargs)))
            built.append((f"rolling_{name}", needs, utils.Rolling(cls, window_size=self.window, **kwargs)))
        return built

    def update(self, y_true: Any, y_pred: Any, proba: dict[Any, float] | None) -> None:
        """Update every metric with one labelled example (skipped if nothing was predicted)."""
        if y_pred is None:
            return
        if self._metrics is None:
            self._metrics = self._build(y_true)
        self.n += 1
        for _, needs, metric in self._metrics:
            if needs == "label":
                metric.update(y_true, y_pred)
            elif proba:
                metric.update(y_true, proba)

    def values(self) -> dict[str, float]:
        """Current metric values by name (``rolling_`` prefix for the window)."""
        if self._metrics is None:
            return {}
        return {name: float(metric.get()) for name, _, metric in self._metrics}
