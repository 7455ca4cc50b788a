"""The guarded policy: a candidate model that must beat the serving model before it serves.

On a detection the serving model is kept. A candidate starts beside it (``fresh``, or for a
linear model ``warm`` from the serving model's weights) and first learns, from a bounded
ring of recent examples, those since the detector's estimated change point (HDDM_A's cut,
ADWIN's kept window). From then on both learn every label, and the candidate predicts
every feature event too: when the label comes, its prediction is paired with the one the
serving model published for the same event, made with the same knowledge and the same
label delay (comparing them at label time instead favoured young models that fit the
present but predict the delayed future worse: on Elec2 with labels 1000 late it lost to
doing nothing). Every ``check_every`` labels McNemar's exact test (``core/arena.py``) runs
over the last ``window`` pairs: a candidate right significantly more often than the
serving model replaces it (``swap``); one that has not won after ``max_examples`` labels
is given up (``abandon``). A warm candidate races with a fresh **twin** (an unfitted model
learning from the detection on), which swaps in only with a clear lead (``twin_margin``): a
fresh model wins fast after an abrupt change, where a warm copy must first unlearn the old
concept. The guard measures the label delay (labels learned between an event's prediction and
its label) and judges a candidate on at least that many pairs (``delay_scaled``): with labels
1000 late, a lead over 500 labels did not hold over the next 1000. The model a swap replaced is kept as the **anchor**: it keeps
learning, predicts every feature event, and is paired with the served predictions the same
way over a longer window; if it is right significantly more often, it serves again
(``restore``). A swap that turns out worse than doing nothing is thus undone, and the
anchor is kept until then (later swaps keep the same anchor: the model that was never
replaced). Everything here is plain state that pickles with the engine, so
a restored snapshot takes the same decisions; nothing reads a clock or draws at random.

Why not River's ways: ``DriftRetrainingClassifier`` and ARF swap on the detection itself,
so with labels ``delay`` examples late the new model starts that far behind and nobody
checks that it is better; on Elec2 with labels 100 late that loses about 6 points to
doing nothing (docs/drift-benchmark.md).

>>> from river import linear_model
>>> from driftline.config import GuardConfig
>>> guard = Guard(GuardConfig(replay=10, window=20, min_pairs=10, check_every=10, max_examples=40))
>>> for i in range(10):
...     guard.learned({"x": float(i)}, True)
>>> guard.start(linear_model.LogisticRegression(), None, "ADWIN", {"windows": {"kept": 4}}, 10)["replayed"]
4
>>> decision = None
>>> for i in range(30):   # the served model keeps predicting False (error 1)
...     guard.pair(1.0, guard.foresee({"x": 1.0}), True, "classification")
...     guard.learned({"x": 1.0}, True)
...     decision = decision or guard.decide(11 + i)
>>> decision, guard.last_test["c"] > guard.last_test["b"]
('swap', True)
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

from river import base

from driftline.config import GuardConfig
from driftline.core.arena import PairedErrors, mcnemar_exact

__all__ = ["Guard", "change_point", "linear_estimator"]


def change_point(evidence: dict[str, Any]) -> int | None:
    """Examples since the change a detection estimated: HDDM_A's ``after_cut``, ADWIN's ``kept``.

    >>> change_point({"windows": {"before_cut": 900, "after_cut": 60}}), change_point({"windows": {}})
    (60, None)
    """
    windows = evidence.get("windows") or {}
    for name in ("after_cut", "kept"):
        value = windows.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None


def linear_estimator(model: base.Estimator) -> Any:
    """The linear estimator in ``model`` (the last step of a pipeline), or None for other models."""
    last = model
    steps = getattr(model, "steps", None)
    if steps:
        last = list(steps.values())[-1]
    return last if hasattr(last, "_weights") else None


class Guard:
    """The candidate, its paired record against the serving model, and the replay ring."""

    # The anchor (the model the first swap replaced, still learning), its paired record and
    # restores; class attributes so that guards pickled before the anchor existed restore.
    anchor: base.Estimator | None = None
    anchor_pairs: PairedErrors | None = None
    anchor_generation = 0
    anchor_test: dict[str, float] = {}
    anchor_origin: dict[str, Any] = {}
    restores = 0
    # Labels learned between an event's prediction and its label, summed over paired events:
    # the label delay the guard measures (``label_delay``).
    lag_sum = 0
    lag_n = 0
    # The fresh twin of a warm candidate (``twin``): an unfitted model racing beside it, which
    # swaps in only with a clear lead (``twin_margin``); class attributes for older pickles.
    twin: base.Estimator | None = None
    twin_pairs: PairedErrors | None = None
    twin_test: dict[str, float] = {}
    winner = "candidate"  # which of the two a "swap" decision is for

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self.ring: deque[tuple[dict[str, Any], Any]] | None = deque(maxlen=config.replay) if config.replay else None
        self.candidate: base.Estimator | None = None
        self.pairs = PairedErrors(config.window)
        self.since = -1  # position (examples learned) when the candidate started
        self.origin: dict[str, Any] = {}
        self.last_test: dict[str, float] = {}
        self.swaps = 0
        self.abandons = 0
        self.generation = 0  # which candidate a foreseen prediction came from

    def learned(self, features: dict[str, Any], target: Any) -> None:
        """The serving model learned this example: so do the ring and the candidate."""
        if self.ring is not None:
            self.ring.append((features, target))
        if self.candidate is not None:
            self.candidate.learn_one(features, target)
        if self.twin is not None:
            self.twin.learn_one(features, target)
        if self.anchor is not None:
            self.anchor.learn_one(features, target)

    def start(self, fresh: base.Estimator, serving: base.Estimator | None, detector: str,
              evidence: dict[str, Any], position: int) -> dict[str, Any]:
        """Start a candidate (``fresh``, or warm from ``serving``); return how it started."""
        start, rate = "fresh", 1.0
        model = fresh
        if self.config.start == "warm" and serving is not None and linear_estimator(serving) is not None:
            model, start = copy.deepcopy(serving), "warm"
            rates = self.config.rates
            wanted = rates[self.generation % len(rates)] if rates else 1.0
            if wanted != 1.0 and _scale_rate(linear_estimator(model), wanted):
                rate = wanted
        since = change_point(evidence)
        replay = list(self.ring)[-since:] if since and self.ring else []
        for features, target in replay:
            model.learn_one(features, target)
        self.candidate = model
        self.twin = None
        if start == "warm" and self.config.twin:
            self.twin, self.twin_pairs, self.twin_test = fresh, PairedErrors(self.config.window), {}
        self.generation += 1
        self.pairs = PairedErrors(self.config.window)
        self.since = position
        self.last_test = {}
        self.origin = {"detector": detector, "start": start, "rate": rate, "position": position,
                       "estimated_change": since, "replayed": len(replay)}
        return dict(self.origin)

    @property
    def active(self) -> bool:
        """Is a candidate or an anchor racing the serving model?"""
        return self.candidate is not None or self.anchor is not None

    def foresee(self, features: dict[str, Any], position: int = 0) -> tuple:
        """The candidate's (and anchor's) predictions for a feature event, kept until its label comes:
        ``(generation, candidate's, anchor generation, anchor's, position)`` (examples learned then)."""
        return (self.generation, _predict(self.candidate, features),
                self.anchor_generation, _predict(self.anchor, features), position, _predict(self.twin, features))

    @property
    def label_delay(self) -> int:
        """The mean number of labels learned between a paired event's prediction and its label."""
        return self.lag_sum // self.lag_n if self.lag_n else 0

    def pair(self, served_error: float, foreseen: tuple | None, target: Any, task: str,
             position: int | None = None) -> None:
        """A label (``position``: examples learned before it): pair the served prediction's error
        with the candidate's (and the anchor's) for the same event.

        Events predicted before this candidate (anchor) started, or by an earlier one, are not paired.
        """
        if foreseen is None:
            return
        if position is not None and len(foreseen) > 4:
            self.lag_sum += position - foreseen[4]
            self.lag_n += 1
        if self.candidate is not None and foreseen[0] == self.generation:
            theirs = _error(task, target, foreseen[1])
            self.pairs.add(served_error < theirs, theirs < served_error, served_error == 0, theirs == 0)
            if self.twin is not None and len(foreseen) > 5:
                theirs = _error(task, target, foreseen[5])
                self.twin_pairs.add(served_error < theirs, theirs < served_error, served_error == 0, theirs == 0)
        if self.anchor is not None and len(foreseen) > 2 and foreseen[2] == self.anchor_generation:
            theirs = _error(task, target, foreseen[3])
            self.anchor_pairs.add(served_error < theirs, theirs < served_error, served_error == 0, theirs == 0)

    def decide(self, position: int) -> str | None:
        """``restore`` (the anchor serves again), ``swap``, ``abandon`` or None, after the
        example at ``position`` was learned."""
        config = self.config
        anchor = self.anchor_pairs
        if self.anchor is not None and anchor.since_check >= config.check_every and len(anchor) >= config.anchor_min_pairs:
            anchor.since_check = 0
            test = mcnemar_exact(anchor.b, anchor.c)
            n = len(anchor)
            self.anchor_test = {**test, "n": n, "serving_accuracy": anchor.champion_ok / n,
                                "anchor_accuracy": anchor.challenger_ok / n, "alpha": config.alpha}
            if anchor.c > anchor.b and test["p_value"] < config.alpha:
                return "restore"
        if self.candidate is None:
            return None
        pairs = self.pairs
        age = position - self.since
        min_pairs = config.min_pairs
        if config.delay_scaled:
            # A lead worth a swap must hold over as many labels as the labels are late: the
            # candidate serves the events whose labels come that much later.
            lag = self.label_delay
            pairs.window = max(config.window, lag)
            min_pairs = max(min_pairs, lag)
        if pairs.since_check >= config.check_every and len(pairs) >= min_pairs:
            pairs.since_check = 0
            n = len(pairs)
            test = mcnemar_exact(pairs.b, pairs.c)
            self.last_test = {**test, "n": n, "serving_accuracy": pairs.champion_ok / n,
                              "candidate_accuracy": pairs.challenger_ok / n, "alpha": config.alpha, "age": age}
            lead = (pairs.c - pairs.b) / n
            self.last_test["lead"] = lead
            if pairs.c > pairs.b and lead >= config.margin and test["p_value"] < config.alpha:
                self.winner = "candidate"
                return "swap"
        twin = self.twin_pairs
        if self.twin is not None and twin.since_check >= config.check_every and len(twin) >= max(
                config.twin_min_pairs, self.label_delay if config.delay_scaled else 0):
            twin.since_check = 0
            n = len(twin)
            test = mcnemar_exact(twin.b, twin.c)
            lead = (twin.c - twin.b) / n
            self.twin_test = {**test, "n": n, "serving_accuracy": twin.champion_ok / n,
                              "candidate_accuracy": twin.challenger_ok / n, "alpha": config.alpha, "age": age,
                              "lead": lead, "margin": config.twin_margin}
            if twin.c > twin.b and lead >= config.twin_margin and test["p_value"] < config.alpha:
                self.winner = "twin"
                return "swap"
        if age >= config.max_examples:
            return "abandon"
        return None

    def finish(self, decision: str, serving: base.Estimator | None = None) -> tuple[base.Estimator | None, dict[str, Any]]:
        """End the candidate's life (or restore the anchor); the model that serves next (None:
        keep), with the evidence. ``serving``, replaced by a swap, becomes the anchor if none is kept."""
        if decision == "restore":
            model, self.anchor = self.anchor, None
            self.restores += 1
            self.anchor_generation += 1
            return model, {"anchor": dict(self.anchor_origin), "test": dict(self.anchor_test)}
        model, self.candidate = self.candidate, None
        evidence = {"candidate": dict(self.origin), "test": dict(self.last_test)}
        if decision == "swap" and self.winner == "twin":  # the fresh twin serves, the warm candidate is dropped
            model, self.winner = self.twin, "candidate"
            evidence = {"candidate": {**self.origin, "start": "fresh", "rate": 1.0, "replayed": 0, "twin": True},
                        "test": dict(self.twin_test)}
            self.last_test = dict(self.twin_test)
        self.twin = None
        if decision == "swap":
            self.swaps += 1
            if self.config.anchor and self.anchor is None and serving is not None:
                self.anchor, self.anchor_generation = serving, self.anchor_generation + 1
                self.anchor_pairs = PairedErrors(self.config.anchor_window)
                self.anchor_test = {}
                self.anchor_origin = {"candidate_started": self.origin.get("position"),
                                      "replaced_at": self.since + int(self.last_test.get("age", 0))}
            return model, evidence
        self.abandons += 1
        return None, evidence


def _predict(model: base.Estimator | None, features: dict[str, Any]) -> Any:
    if model is None:
        return None
    try:
        return model.predict_one(features)
    except Exception:  # noqa: BLE001 - a failing candidate is simply wrong on this example
        return None


def _scale_rate(estimator: Any, rate: float) -> bool:
    """Multiply a warm linear candidate's learning rate by ``rate`` (a constant schedule only:
    others are left as they are); did it?"""
    from river.optim import schedulers

    lr = getattr(getattr(estimator, "optimizer", None), "lr", None)
    if not isinstance(lr, schedulers.Constant):
        return False
    estimator.optimizer.lr = schedulers.Constant(lr.learning_rate * rate)
    return True


def _error(task: str, target: Any, prediction: Any) -> float:
    if prediction is None:
        return float("inf") if task == "regression" else 1.0
    if task == "regression":
        return abs(float(target) - float(prediction))
    return 0.0 if prediction == target else 1.0
