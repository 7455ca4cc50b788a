"""Mini-batch learning: buffer joined examples, learn every ``size`` of them with one ``learn_many``.

Opt-in (``[model] mini_batch``). Predictions stay one at a time; only learning is batched,
and a batch boundary depends only on how many examples were buffered, never on what a
Kafka poll returned, so the engine stays a deterministic function of the record sequence.
Frames are built column-wise with polars (``pip install 'driftline[minibatch]'``), imported
only when a batch is learned. River's ``StandardScaler.learn_many`` can produce a negative
variance (see :class:`StandardScaler` here, which replaces it in mini-batch deployments). What differs from learning one example at a time is written
down in ``docs/minibatch.md``.

>>> from river import compose, linear_model, preprocessing
>>> model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
>>> supports_learn_many(model)
True
>>> batch = MiniBatchLearner(size=3)
>>> [batch.add({"x": float(i), "z": 1.0}, i > 0) for i in range(3)]
[False, False, True]
>>> batch.flush(model), batch.pending
(3, 0)

One SGD step (learning rate 0.01) on the batch's mean gradient: the scaled ``x`` is
(-1.22, 0, 1.22), the log-loss gradients (0.5, -0.5, -0.5), their mean product -0.408.

>>> model["LogisticRegression"].weights, round(float(model["LogisticRegression"].intercept), 6)
({'x': 0.00408248290463863, 'z': 0.0}, 0.001667)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from river import base, compose, preprocessing, utils

from driftline.exceptions import ConfigError

__all__ = ["MiniBatchLearner", "StandardScaler", "stable_scaling", "supports_learn_many", "check_supported", "to_frame"]


class MiniBatchLearner:
    """A buffer of ``(features, target)`` examples, learned in order by ``learn_many``.

    The buffer is plain lists of dicts and targets, so it pickles with the engine that owns
    it: a snapshot taken with a half-full buffer resumes exactly.
    """

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError(f"a mini-batch holds at least 2 examples, got {size}")
        self.size = size
        self._xs: list[dict[str, Any]] = []
        self._ys: list[Any] = []

    @property
    def pending(self) -> int:
        """Examples buffered and not learned yet."""
        return len(self._ys)

    def add(self, x: dict[str, Any], y: Any) -> bool:
        """Buffer one example; True when the buffer is full (time to :meth:`flush`)."""
        self._xs.append(x)
        self._ys.append(y)
        return len(self._ys) >= self.size

    def rows(self) -> list[tuple[dict[str, Any], Any]]:
        """The buffered examples, oldest first."""
        return list(zip(self._xs, self._ys))

    def flush(self, model: base.Estimator) -> int:
        """``model.learn_many`` on the buffered examples; return how many it learned.

        The buffer is emptied even when ``learn_many`` (or building the frame) raises: a
        batch the model cannot learn is dropped whole, and the exception propagates.
        """
        if not self._ys:
            return 0
        xs, ys = self._xs, self._ys
        self._xs, self._ys = [], []
        X, y = to_frame(xs, ys)
        model.learn_many(X, y)
        return len(ys)


def to_frame(xs: list[dict[str, Any]], ys: list[Any]) -> tuple[Any, Any]:
    """A polars frame (one Float64 column per feature) and target series, built column-wise.

    Every row must have the same features (River's linear models turn a missing value into
    NaN weights): rows that differ raise ``ValueError``.
    """
    import polars as pl

    names = xs[0].keys()
    if any(x.keys() != names for x in xs):
        raise ValueError("every example of a mini-batch must have the same features")
    frame = pl.DataFrame({n: [x[n] for x in xs] for n in names}, schema={n: pl.Float64 for n in names})
    return frame, pl.Series("y", ys)


class StandardScaler(preprocessing.StandardScaler):
    """River's ``StandardScaler`` with a numerically stable ``learn_many``.

    River 0.26.1 takes a batch's variance as mean(x²) - mean(x)²: on a constant column it can
    come out a hair below zero, its square root is then complex and ``transform_many`` raises
    ``TypeError`` (Elec2's ``vicprice`` does this in its first batch of 500, and every later
    batch fails the same way); on a feature with a large mean and a small spread it loses
    every digit. Here a batch's mean and variance are computed on the values shifted by the
    batch's first row (a constant column: its value and 0, exactly, as ``learn_one`` gives) and
    merged with the running statistics by the same formula as River's. ``learn_one`` and the
    transforms are River's own.

    >>> import polars as pl
    >>> from river import preprocessing
    >>> X = pl.DataFrame({"c": [0.003467] * 500})
    >>> river = preprocessing.StandardScaler()
    >>> river.learn_many(X)
    >>> river.vars["c"] < 0
    True
    >>> ours = StandardScaler()
    >>> ours.learn_many(X)
    >>> ours.vars["c"], ours.transform_many(X)["c"][0]
    (0.0, 0.0)
    """

    def learn_many(self, X: Any) -> None:
        if self.window_size is not None:
            super().learn_many(X)
            return
        frame = utils.dataframe.into_frame(X)
        values = utils.dataframe.to_numpy(frame)
        counts = np.sum(~np.isnan(values), axis=0)
        # Shifted by the first row: a constant column gets its value as mean and 0 as variance, exactly.
        shifted = values - values[0]
        offsets = np.nanmean(shifted, axis=0)
        means = values[0] + offsets
        deviations = shifted - offsets
        variances = np.nansum(deviations * deviations, axis=0) / counts
        for col, new_mean, new_var, new_count in zip(frame.columns, means, variances, counts):
            old_mean, old_var, old_count = self.means[col], self.vars[col], self.counts[col]
            a, b = old_count / (old_count + new_count), new_count / (old_count + new_count)
            self.means[col] = float(old_mean + b * (new_mean - old_mean))
            if self.with_std:
                self.vars[col] = float(a * old_var + b * new_var + a * b * (old_mean - new_mean) ** 2)
            self.counts[col] += int(new_count)


def stable_scaling(model: Any) -> Any:
    """``model`` with River's (unfitted) ``StandardScaler`` steps replaced by :class:`StandardScaler`."""
    if isinstance(model, compose.Pipeline):
        return compose.Pipeline(*((name, stable_scaling(step)) for name, step in model.steps.items()))
    if isinstance(model, compose.TransformerUnion):
        return compose.TransformerUnion(*(stable_scaling(t) for t in model.transformers.values()))
    if type(model) is preprocessing.StandardScaler and model.window_size is None and not model.counts:
        return StandardScaler(with_std=model.with_std)
    return model


def supports_learn_many(model: Any, as_transformer: bool = False) -> bool:
    """Can ``model`` learn from a frame? A pipeline or union can only if every step can.

    ``Pipeline`` and ``TransformerUnion`` always define ``learn_many`` but call it on each
    step, so they are checked step by step; a transformer inside a pipeline also needs
    ``transform_many``.
    """
    if isinstance(model, compose.Pipeline):
        steps = list(model.steps.values())
        return all(supports_learn_many(s, True) for s in steps[:-1]) and supports_learn_many(steps[-1], as_transformer)
    if isinstance(model, compose.TransformerUnion):
        return all(supports_learn_many(t, True) for t in model.transformers.values())
    needed = ("learn_many", "transform_many") if as_transformer else ("learn_many",)
    if not all(callable(getattr(model, name, None)) for name in needed):
        return False
    if isinstance(model, base.Wrapper):  # e.g. OneVsRestClassifier: learn_many calls the wrapped model's
        return supports_learn_many(model._wrapped_model, as_transformer)
    return True


def check_supported(model: base.Estimator) -> None:
    """Refuse ``[model] mini_batch`` for a model without ``learn_many``, or without polars."""
    if not supports_learn_many(model):
        raise ConfigError(
            f"model.mini_batch: {model} cannot learn mini-batches (River has learn_many for linear "
            "models, naive Bayes and preprocessing, and a pipeline needs it at every step; "
            "categorical features go through compose.Discard/Select, which have none)"
        )
    try:
        import polars  # noqa: F401
    except ImportError as exc:
        raise ConfigError("model.mini_batch needs polars: pip install 'driftline[minibatch]'") from exc
