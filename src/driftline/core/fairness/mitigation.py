"""Mitigation for online learning: reweighing (Kamiran-Calders) and per-group thresholds.

:class:`Reweigher` keeps windowed counts of (group, label) and gives each example the weight
``w(a, y) = n_a * n_y / (n * n_ay)``, which makes group and label independent in the
weighted data; :func:`learn_weighted` passes it as ``learn_one(x, y, w=...)`` or, for a
model without ``w`` (River's forests, bagging and boosting ensembles, naive Bayes, KNN),
repeats the example ``k ~ Poisson(w)`` times from a seeded generator.

:class:`GroupThresholds` keeps the last scores and labels of each group and picks, for one
selection rate common to every group, the per-group score thresholds that select it, the
rate chosen to maximise accuracy on the window (as fairlearn's ``ThresholdOptimizer`` does
under demographic parity). With a ``feedback`` gain, each group's decisions are also steered
to that rate: a group that got fewer favourable decisions than the rate asks for (its
``owed`` count) is decided at a slightly higher rate of its window's scores, and the reverse,
so the selection rates the groups actually receive agree closely, not only on average.
Deciding by group is disparate treatment under US credit law.

>>> rw = Reweigher(window=100)
>>> for a, y in [("a", True)] * 30 + [("a", False)] * 30 + [("b", True)] * 10 + [("b", False)] * 30:
...     rw.observe(a, y)
>>> round(rw.weight("b", True), 3), round(rw.weight("a", True), 3)
(1.6, 0.8)
"""

from __future__ import annotations

import inspect
import itertools
import math
import random
from collections import Counter, deque
from typing import Any

__all__ = ["Reweigher", "learn_weighted", "takes_weight", "last_step", "GroupThresholds", "thresholds_for"]


class Reweigher:
    """Kamiran-Calders weights from the last ``window`` (group, label) pairs."""

    def __init__(self, window: int = 5000) -> None:
        self.window = window
        self._pairs: deque[tuple[str, Any]] = deque()
        self._a: Counter = Counter()
        self._y: Counter = Counter()
        self._ay: Counter = Counter()

    def observe(self, group: str, label: Any) -> None:
        self._pairs.append((group, label))
        self._a[group] += 1
        self._y[label] += 1
        self._ay[group, label] += 1
        if len(self._pairs) > self.window:
            a, y = self._pairs.popleft()
            self._a[a] -= 1
            self._y[y] -= 1
            self._ay[a, y] -= 1

    def weight(self, group: str, label: Any) -> float:
        """1.0 until the pair has been seen."""
        n_ay = self._ay[group, label]
        if not n_ay:
            return 1.0
        return self._a[group] * self._y[label] / (len(self._pairs) * n_ay)


def last_step(model: Any) -> Any:
    """A Pipeline's last step, or the model itself."""
    steps = getattr(model, "steps", None)
    return list(steps.values())[-1] if steps else model


def takes_weight(model: Any) -> bool:
    """Does ``learn_one`` take a sample weight ``w`` (a Pipeline passes it to its last step)?"""
    try:
        return "w" in inspect.signature(last_step(model).learn_one).parameters
    except (TypeError, ValueError):
        return False


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: fine for the weights of reweighing (a few units at most)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def learn_weighted(model: Any, x: dict, y: Any, w: float, rng: random.Random, weighted: bool | None = None) -> int:
    """Learn (x, y) with weight w; how many times ``learn_one`` was called."""
    if takes_weight(model) if weighted is None else weighted:
        model.learn_one(x, y, w=w)
        return 1
    k = _poisson(rng, w)
    for _ in range(k):
        model.learn_one(x, y)
    return k


def thresholds_for(config: Any) -> GroupThresholds:
    """The group thresholds a :class:`~driftline.config.FairnessConfig` asks for."""
    return GroupThresholds(min(config.mitigation_window, 5000), 100, feedback=config.threshold_feedback)


class GroupThresholds:
    """Per-group score thresholds that equalise the selection rate, from the last ``window`` scores.

    One window for all groups, so each group weighs in the accuracy by its share of the stream.

    >>> gt = GroupThresholds(window=100, refresh=100, feedback=0.05)
    >>> for i in range(100):  # group b's scores are 0.6 times a's, for the same labels
    ...     s = (i % 50) / 50
    ...     gt.observe("a", s, s > 0.4) if i % 2 else gt.observe("b", 0.6 * s, s > 0.4)
    >>> gt.rate, {g: round(t, 2) for g, t in sorted(gt.thresholds.items())}
    (0.55, {'a': 0.46, 'b': 0.26})
    >>> gt.decide("b", 0.35), gt.decide("a", 0.35)
    (True, False)
    >>> gt.decided("b", True); gt.decided("b", True); round(gt.owed["b"], 2)  # b got more than 0.55 asks
    -0.9
    """

    feedback: float = 0.0  # pickled before the feedback existed: none
    owed: dict[str, float] | None = None

    def __init__(self, window: int = 5000, refresh: int = 500, default: float = 0.5, feedback: float = 0.0) -> None:
        self.window = window
        self.refresh = refresh
        self.default = default
        self.feedback = feedback
        self._scores: deque[tuple[str, float, bool]] = deque(maxlen=window)
        self._n = 0
        self.thresholds: dict[str, float] = {}
        self.rate: float | None = None
        self.owed = {}  # group -> favourable decisions the rate asked for minus those made
        self._sorted: dict[str, list[float]] = {}  # group -> its window's scores, ascending

    def observe(self, group: str, score: float, label: bool) -> None:
        """A joined example: its score (probability of the favourable outcome) and label."""
        self._scores.append((group, score, label))
        self._n += 1
        if self._n % self.refresh == 0:
            self.update()

    def windows(self) -> dict[str, list[tuple[float, bool]]]:
        """Group -> its (score, label) pairs in the window."""
        out: dict[str, list[tuple[float, bool]]] = {}
        for group, score, label in self._scores:
            out.setdefault(group, []).append((score, label))
        return out

    def decide(self, group: str, score: float) -> bool:
        """Is ``score`` favourable for ``group``? (Pure: :meth:`decided` records the decision.)"""
        if self.feedback and self.rate is not None and (scores := self._sorted.get(group)):
            rate = min(1.0, max(0.0, self.rate + self.feedback * self.owed.get(group, 0.0)))
            k = round(rate * len(scores))
            return k > 0 and score >= scores[len(scores) - k]
        return score >= self.thresholds.get(group, self.default)

    def decided(self, group: str, favourable: bool) -> None:
        """A decision was made for ``group``: the feedback's count of what is owed moves."""
        if self.feedback and self.rate is not None:
            self.owed[group] = self.owed.get(group, 0.0) + self.rate - favourable

    def update(self) -> None:
        """Choose the common selection rate with the best accuracy on the window, and its thresholds."""
        ranked = {g: sorted(w, key=lambda s: -s[0]) for g, w in self.windows().items()}
        if not ranked:
            return
        # positives among each group's top-k, for every k
        tops = {g: [0, *itertools.accumulate(int(lbl) for _, lbl in r)] for g, r in ranked.items()}
        best, best_rate = -1, 0.5
        for step in range(1, 100):
            rate = step / 100
            correct = 0
            for g, r in ranked.items():
                k = round(rate * len(r))
                tp = tops[g][k]
                correct += tp + (len(r) - k) - (tops[g][-1] - tp)
            if correct > best:
                best, best_rate = correct, rate
        self.rate = best_rate
        for g, r in ranked.items():
            k = round(best_rate * len(r))
            scores = sorted(s for s, _ in r)
            # select the k highest: the threshold is the k-th highest score
            self.thresholds[g] = scores[len(scores) - k] if k else math.inf
            if self.feedback:
                self._sorted[g] = scores

