"""Data drift per feature, streaming: a reference window against a sliding current window.

The first ``reference_size`` feature events (after start, or after a version is cut when
``rebase_on_version``) form the reference; its statistics are computed once: the sorted
values and the ``psi_bins`` quantile bins with their proportions for numeric features, the
category counts for categorical ones. Each event then only goes into a ring of the last
``window_size`` events (two list stores, no allocation); every ``step`` events, once the
ring is full, each feature is tested:

- numeric: two-sample Kolmogorov-Smirnov (asymptotic p-value, as ``scipy.stats.ks_2samp``
  with ``method="asymp"``), and the PSI on the reference-quantile bins (reported, and
  required to reach ``psi_min``);
- categorical: chi-square homogeneity test of the two windows' category counts.

p-values are adjusted across features (Holm by default, Bonferroni or Benjamini-Hochberg).
A feature drifts when its adjusted p-value is at most ``alpha``; the data set drifts when a
share ``dataset_share`` of the features do. A feature is reported once when it starts to
drift and re-armed when its raw p-value is back above 0.05. PSI is refused on windows too
small for it: under no drift it averages about (B - 1)(1/n + 1/m), which must stay below
0.05.

>>> import random
>>> from driftline.config import DataDriftConfig
>>> rng = random.Random(1)
>>> watch = DataDriftWatch(DataDriftConfig(enabled=True), {"x": "num", "c": "cat"})
>>> found = None
>>> for i in range(4000):
...     shift = 0.5 if i >= 2000 else 0.0
...     result = watch.observe({"x": rng.gauss(shift, 1), "c": rng.choice("ab")}, i)
...     if result and found is None:
...         found = (i, result.drifting)
>>> 2000 < found[0] <= 2500, found[1]
(True, ['x'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

from driftline.config import DataDriftConfig
from driftline.exceptions import ConfigError

__all__ = ["DataDriftWatch", "DataDriftResult", "adjust", "psi", "ks_pvalue", "chi2_pvalue"]

_EPS = 1e-4  # floor of a bin proportion in the PSI (an empty bin would be infinite)
_REARM_P = 0.05


def adjust(pvalues: list[float], method: str) -> list[float]:
    """Adjusted p-values (Holm step-down, Bonferroni, or Benjamini-Hochberg), capped at 1.

    >>> [round(p, 3) for p in adjust([0.01, 0.04, 0.03], "holm")]
    [0.03, 0.06, 0.06]
    >>> [round(p, 3) for p in adjust([0.01, 0.04, 0.03], "bh")]
    [0.03, 0.04, 0.04]
    """
    m = len(pvalues)
    order = sorted(range(m), key=pvalues.__getitem__)
    out = [1.0] * m
    if method == "bonferroni":
        return [min(1.0, p * m) for p in pvalues]
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, (m - rank) * pvalues[i])
            out[i] = min(1.0, running)
        return out
    running = 1.0
    for rank in range(m - 1, -1, -1):  # Benjamini-Hochberg step-up
        i = order[rank]
        running = min(running, pvalues[i] * m / (rank + 1))
        out[i] = min(1.0, running)
    return out


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two proportion vectors (floored at 1e-4).

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])), 4)
    0.2747
    """
    r = np.maximum(reference, _EPS)
    c = np.maximum(current, _EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided KS p-value of statistic ``d`` for samples of sizes n and m.

    As ``scipy.stats.ks_2samp(method="asymp")`` (``kstwo.sf(d, round(nm / (n + m)))``) between
    1e-9 and 0.05, where decisions are made; outside, the limiting Kolmogorov distribution,
    which is within a few percent of it there and 50 times cheaper (a drifting feature is
    tested every step, so its p-value is usually far below any alpha).

    >>> a, b = [i / 1000 for i in range(1000)], [0.1 + i / 500 for i in range(500)]
    >>> d = stats.ks_2samp(a, b, method="asymp")
    >>> bool(np.isclose(ks_pvalue(d.statistic, 1000, 500), d.pvalue))
    True
    """
    en = n * m / (n + m)
    p = float(special.kolmogorov(math.sqrt(en) * d))
    if 1e-9 < p < 0.05:
        p = float(stats.kstwo.sf(d, round(en)))
    return p


def chi2_pvalue(table: np.ndarray) -> tuple[float, float]:
    """Pearson chi-square test of homogeneity of the rows of a 2 x K count table.

    >>> chi2, p = chi2_pvalue(np.array([[30.0, 70.0], [50.0, 50.0]]))
    >>> expected = stats.chi2_contingency([[30, 70], [50, 50]], correction=False)
    >>> bool(np.isclose(chi2, expected[0]) and np.isclose(p, expected[1]))
    True
    """
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    return chi2, float(special.chdtrc(table.shape[1] - 1, chi2))


@dataclass
class _Numeric:
    sorted: np.ndarray
    edges: np.ndarray  # inner cut points of the quantile bins
    proportions: np.ndarray
    counts: np.ndarray


@dataclass
class _Categorical:
    categories: list[Any]
    index: dict[Any, int]
    counts: np.ndarray  # per category, plus one "other" slot for unseen ones


@dataclass
class DataDriftResult:
    """One evaluation that found newly drifting features."""

    drifting: list[str]
    dataset_drift: bool
    share: float
    tests: dict[str, dict[str, Any]]
    min_p_adjusted: float
    reference: dict[str, Any]
    current: dict[str, Any]
    evaluated: int = 0
    newly: list[str] = field(default_factory=list)


def _mark(record: Any, index: int) -> dict[str, Any]:
    mark: dict[str, Any] = {"index": index}
    for attr in ("partition", "offset", "timestamp"):
        value = getattr(record, attr, None)
        if value is not None:
            mark["event_time" if attr == "timestamp" else attr] = value
    return mark


class DataDriftWatch:
    """Per-feature two-window tests over the feature events of one deployment."""

    evaluations = 0  # how many evaluations ran (a class default: older pickles restore without it)

    def __init__(self, config: DataDriftConfig, kinds: dict[str, str] | None = None) -> None:
        floor = (config.psi_bins - 1) * (1 / config.reference_size + 1 / config.window_size)
        if floor > 0.05:
            raise ConfigError(
                f"data drift windows too small for a {config.psi_bins}-bin PSI: under no drift it "
                f"averages {floor:.3f} (> 0.05); enlarge reference_size/window_size or use fewer bins")
        self.config = config
        self.kinds = dict(kinds or {})
        self.seen = 0  # feature events observed since start (never rebased)
        self.last: dict[str, dict[str, Any]] = {}
        self.rebase()

    # -- windows ---------------------------------------------------------------------

    def rebase(self) -> None:
        """Start collecting a new reference (after a version was cut)."""
        size = self.config.window_size
        self._ref_rows: list[dict[str, Any]] = []
        self._ref_marks: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._ref_first: dict[str, Any] | None = None
        self._reference: dict[str, _Numeric | _Categorical] | None = None
        self._rows: list[Any] = [None] * size
        self._records: list[Any] = [None] * size
        self._pos = 0
        self._count = 0
        self._reported: set[str] = set()

    def observe(self, features: dict[str, Any], record: Any = None) -> DataDriftResult | None:
        """One feature event; a result when an evaluation finds newly drifting features."""
        self.seen += 1
        if self._reference is None:
            self._collect(features, record)
            return None
        pos = self._pos
        self._rows[pos] = features
        self._records[pos] = record
        self._pos = pos + 1 if pos + 1 < self.config.window_size else 0
        self._count += 1
        if self._count >= self.config.window_size and self._count % self.config.step == 0:
            return self._evaluate()
        return None

    def _collect(self, features: dict[str, Any], record: Any) -> None:
        if not self._ref_rows:
            self._ref_first = _mark(record, self.seen - 1)
        self._ref_rows.append(features)
        if len(self._ref_rows) == self.config.reference_size:
            self._ref_marks = (self._ref_first or {}, _mark(record, self.seen - 1))
            self._reference = self._build_reference(self._ref_rows)
            self._ref_rows = []

    def _names(self, rows: list[dict[str, Any]]) -> list[str]:
        if self.config.features:
            return list(self.config.features)
        return list(self.kinds) if self.kinds else sorted(rows[0])

    def _build_reference(self, rows: list[dict[str, Any]]) -> dict[str, _Numeric | _Categorical]:
        reference: dict[str, _Numeric | _Categorical] = {}
        bins = self.config.psi_bins
        for name in self._names(rows):
            values = [row.get(name) for row in rows]
            kind = self.kinds.get(name) or (
                "num" if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) else "cat")
            if kind == "num":
                ordered = np.sort(np.asarray(values, dtype=float))
                edges = np.unique(np.quantile(ordered, np.arange(1, bins) / bins))
                counts = np.bincount(np.searchsorted(edges, ordered, side="right"), minlength=len(edges) + 1)
                reference[name] = _Numeric(ordered, edges, counts / len(ordered), counts)
            else:
                categories = sorted({v for v in values}, key=repr)
                index = {c: i for i, c in enumerate(categories)}
                counts = np.zeros(len(categories) + 1)
                for v in values:
                    counts[index[v]] += 1
                reference[name] = _Categorical(categories, index, counts)
        return reference

    # -- tests -----------------------------------------------------------------------

    def _test(self, name: str, ref: _Numeric | _Categorical) -> dict[str, Any]:
        rows = self._rows
        if isinstance(ref, _Numeric):
            cur = np.sort(np.fromiter((row[name] for row in rows), dtype=float, count=len(rows)))
            n, m = len(ref.sorted), len(cur)
            both = np.concatenate((ref.sorted, cur))
            d = float(np.max(np.abs(np.searchsorted(ref.sorted, both, side="right") / n
                                    - np.searchsorted(cur, both, side="right") / m)))
            counts = np.bincount(np.searchsorted(ref.edges, cur, side="right"), minlength=len(ref.edges) + 1)
            return {"test": "ks", "statistic": d, "p_value": ks_pvalue(d, n, m),
                    "psi": psi(ref.proportions, counts / m),
                    "histogram": {"edges": ref.edges.tolist(), "reference": ref.counts.tolist(),
                                  "current": counts.tolist()}}
        counts = np.zeros(len(ref.counts))
        other = len(ref.categories)
        for row in rows:
            counts[ref.index.get(row[name], other)] += 1
        keep = (ref.counts + counts) > 0
        table = np.vstack((ref.counts[keep], counts[keep]))
        if table.shape[1] < 2:
            chi2, p = 0.0, 1.0
        else:
            chi2, p = chi2_pvalue(table)
        return {"test": "chi2", "statistic": float(chi2), "p_value": float(p),
                "histogram": {"categories": [repr(c) if not isinstance(c, str) else c for c in ref.categories]
                              + ["<other>"], "reference": ref.counts.tolist(), "current": counts.tolist()}}

    def _evaluate(self) -> DataDriftResult | None:
        assert self._reference is not None
        cfg = self.config
        tests = {name: self._test(name, ref) for name, ref in self._reference.items()}
        names = list(tests)
        adjusted = adjust([tests[n]["p_value"] for n in names], cfg.correction)
        drifting = []
        for name, p_adj in zip(names, adjusted):
            t = tests[name]
            t["p_adjusted"] = p_adj
            t["drift"] = p_adj <= cfg.alpha and t.get("psi", math.inf) >= cfg.psi_min
            if t["drift"]:
                drifting.append(name)
            elif t["p_value"] > _REARM_P:
                self._reported.discard(name)
        self.last = tests
        self.evaluations += 1
        newly = [n for n in drifting if n not in self._reported]
        if not newly:
            return None
        self._reported.update(newly)
        share = len(drifting) / len(names)
        oldest = self._records[self._pos]
        newest = self._records[self._pos - 1]
        ref_first, ref_last = self._ref_marks or ({}, {})
        return DataDriftResult(
            drifting=drifting, dataset_drift=share >= cfg.dataset_share, share=share, tests=tests,
            min_p_adjusted=min(tests[n]["p_adjusted"] for n in drifting),
            reference={"size": cfg.reference_size, "start": ref_first, "end": ref_last},
            current={"size": cfg.window_size, "start": _mark(oldest, self.seen - cfg.window_size),
                     "end": _mark(newest, self.seen - 1)},
            evaluated=len(names), newly=newly,
        )

    def report(self) -> dict[str, dict[str, Any]]:
        """The last evaluation of every feature: test, statistic, p-values, PSI, histograms."""
        return self.last
