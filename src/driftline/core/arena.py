"""The arena: challengers learning side by side with the champion, compared on paired errors.

Every challenger predicts every feature event and learns every label, right after the
champion, so all of them are scored test-then-train on identical events with the same
label delay. A stable hash of the event id assigns each key to a variant (canary / A-B):
the serving variant's prediction goes to ``.predictions``, the others to ``.shadow``.

The promotion policy compares each challenger with the champion on the last ``window``
paired examples: the discordant pairs (one right, the other wrong; for regression, one
strictly closer) feed an exact one-sided binomial test (McNemar's exact test). A
challenger is promoted after ``patience`` consecutive checks that it is ahead by
``margin`` with p < ``alpha``. Everything is deterministic (no clock, no randomness), so
replays and restored snapshots decide exactly the same promotions.

>>> from driftline.config import DeploymentConfig
>>> from driftline.core.engine import Engine
>>> engine = Engine(DeploymentConfig(name="demo", lifecycle={"challengers": [{"name": "nb", "share": 0.5,
...     "model": {"preset": "gaussian_naive_bayes"}}]}))
>>> sorted(engine.arena.members), engine.arena.variant_of("e1"), engine.arena.variant_of("e5")
(['nb'], 'nb', 'champion')
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from river import base

from driftline.config import ChallengerSpec, DeploymentConfig, PromotionConfig
from driftline.core.join import Pending
from driftline.core.models import build_model
from driftline.core.outputs import LifecycleEvent, Output, Prediction, ShadowPrediction
from driftline.core.scoring import OnlineScores
from driftline.exceptions import ConfigError

if TYPE_CHECKING:
    from driftline.core.engine import Engine

__all__ = ["Arena", "Challenger", "PairedErrors", "bucket_of", "binary_codec", "mcnemar_exact"]


def bucket_of(key: str) -> float:
    """A stable position in [0, 1) for a key (not Python's salted ``hash``).

    >>> bucket_of("e1") == bucket_of("e1"), 0 <= bucket_of("anything") < 1
    (True, True)
    """
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64


def binary_codec(task: str, classes: tuple[Any, ...], model: base.Estimator) -> bool:
    """Whether a binary-only model learns "is it the last class?" (as the engine does)."""
    return (
        task == "classification" and len(classes) == 2
        and not getattr(model, "_multiclass", True) and not all(type(c) is bool for c in classes)
    )


def mcnemar_exact(b: int, c: int) -> dict[str, float]:
    """McNemar's exact test that the challenger (``c`` wins) beats the champion (``b`` wins).

    >>> r = mcnemar_exact(5, 20)
    >>> round(r["p_value"], 5), r["statistic"]
    (0.00204, 9.0)
    """
    from scipy.stats import binomtest  # imported on first use: scipy is slow to import

    n = b + c
    p = float(binomtest(c, n, 0.5, alternative="greater").pvalue) if n else 1.0
    statistic = (b - c) ** 2 / n if n else 0.0  # the chi-square form, for reference
    return {"b": b, "c": c, "statistic": statistic, "p_value": p}


class PairedErrors:
    """The last ``window`` (champion better, challenger better) outcomes, counted incrementally."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._pairs: deque[tuple[bool, bool, bool, bool]] = deque()
        self.b = 0  # champion strictly better
        self.c = 0  # challenger strictly better
        self.champion_ok = 0
        self.challenger_ok = 0
        self.since_check = 0

    def add(self, champion_better: bool, challenger_better: bool, champion_ok: bool, challenger_ok: bool) -> None:
        self._pairs.append((champion_better, challenger_better, champion_ok, challenger_ok))
        self.b += champion_better
        self.c += challenger_better
        self.champion_ok += champion_ok
        self.challenger_ok += challenger_ok
        if len(self._pairs) > self.window:
            old = self._pairs.popleft()
            self.b -= old[0]
            self.c -= old[1]
            self.champion_ok -= old[2]
            self.challenger_ok -= old[3]
        self.since_check += 1

    def __len__(self) -> int:
        return len(self._pairs)


class Challenger:
    """One candidate: its model, how it started, the keys it serves and its scores."""

    # Examples its model has learned, before it joined and since (a class attribute so that
    # challengers pickled before it existed restore with a count).
    learned = 0

    def __init__(self, name: str, model: base.Estimator, engine: Engine, share: float, origin: str, window: int,
                 learned: int = 0) -> None:
        self.name = name
        self.model = model
        self.learned = learned
        self.share = share
        self.origin = origin
        self.codec = binary_codec(engine.task, engine.schema.classes, model)
        self.scores = OnlineScores(engine.task, engine.config.drift.metrics_window, engine.schema.classes)
        self.pairs = PairedErrors(window)
        self.wins = 0
        self.errors = 0
        self.last_test: dict[str, float] = {}

    def predict(self, task: str, classes: tuple[Any, ...], features: dict[str, Any]) -> tuple[Any, Any]:
        try:
            if task == "classification":
                proba = self.model.predict_proba_one(features)
                if self.codec and proba:
                    proba = {classes[0]: proba.get(False, 0.0), classes[1]: proba.get(True, 0.0)}
                return (max(proba, key=proba.get) if proba else None), proba
            return self.model.predict_one(features), None
        except Exception:  # noqa: BLE001 - a failing challenger never stops the champion
            self.errors += 1
            return None, None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "share": self.share, "origin": self.origin, "model_class": type(self.model).__name__,
            "scored": self.scores.n, "learned": self.learned, "metrics": self.scores.values(), "errors": self.errors,
            "window": {"n": len(self.pairs), "b": self.pairs.b, "c": self.pairs.c}, "wins": self.wins,
            "last_test": dict(self.last_test),
        }


class Arena:
    """The challengers of one engine and the predictions they owe a score."""

    def __init__(self, promotion: PromotionConfig, max_pending: int, max_age_ms: int) -> None:
        self.promotion = promotion
        self.members: dict[str, Challenger] = {}
        self.served: dict[str, OnlineScores] = {}
        self._pending: OrderedDict[str, tuple[int, dict[str, tuple[Any, Any]], str]] = OrderedDict()
        self._max_pending = max_pending
        self._max_age_ms = max_age_ms
        self.promotions = 0

    @classmethod
    def from_config(cls, engine: Engine, config: DeploymentConfig) -> Arena:
        arena = cls(config.lifecycle.promotion, config.join.max_pending, config.join.max_age_ms)
        for spec in config.lifecycle.challengers:
            arena.add(engine, spec.name, challenger_model(engine, spec), spec.share, spec.start)
        return arena

    # -- membership --------------------------------------------------------------------

    def add(self, engine: Engine, name: str, model: base.Estimator, share: float, origin: str,
            learned: int | None = None) -> Challenger:
        """Add a challenger; ``learned`` is what its model learned before (default: a warm
        copy of the champion learned what the champion did, any other start nothing)."""
        if learned is None:
            learned = engine.model_examples if origin == "warm" else 0
        if name == "champion" or name in self.members:
            raise ConfigError(f"challenger {name!r} already exists")
        if sum(m.share for m in self.members.values()) + share > 1.0 + 1e-9:
            raise ConfigError("the challengers' traffic shares add up to more than 1")
        member = self.members[name] = Challenger(name, model, engine, share, origin, self.promotion.window, learned)
        return member

    def remove(self, name: str) -> Challenger:
        try:
            return self.members.pop(name)
        except KeyError:
            raise ConfigError(f"no challenger named {name!r}") from None

    def variant_of(self, key: str) -> str:
        """Which variant serves ``key``: cumulative shares in the order challengers were added."""
        if not any(m.share for m in self.members.values()):
            return "champion"
        point, edge = bucket_of(key), 0.0
        for member in self.members.values():
            edge += member.share
            if point < edge:
                return member.name
        return "champion"

    # -- the two hooks the engine calls -------------------------------------------------

    def on_features(self, engine: Engine, event_id: str, features: dict[str, Any], out: list[Output],
                    event_time: int) -> None:
        """Challengers predict; the serving variant's prediction replaces ``out[0]`` if need be."""
        champion: Prediction = out[0]  # type: ignore[assignment]
        task, classes = engine.task, engine.schema.classes
        predictions = {name: m.predict(task, classes, features) for name, m in self.members.items()}
        variant = self.variant_of(event_id)
        self._remember(engine.stream_time, event_id, event_time, predictions, variant)
        for name, (pred, proba) in predictions.items():
            other = Prediction(champion.id, champion.model, champion.model_version, champion.model_examples,
                               pred, proba, champion.event_time, champion.predicted_at, name)
            if name == variant:
                out[0] = other
                out.append(ShadowPrediction(champion))
            else:
                out.append(ShadowPrediction(other))

    def on_label(self, engine: Engine, event_id: str, pending: Pending, label: Any, now_ms: int) -> list[Output]:
        """Score every challenger against the champion on this example, learn, maybe promote."""
        entry = self._pending.pop(event_id, None)
        predictions = entry[1] if entry is not None else {}
        variant = entry[2] if entry is not None else "champion"
        task, classes = engine.task, engine.schema.classes
        champion_err = _error(task, label, pending.prediction)
        served = pending.prediction, pending.proba
        out: list[Output] = []
        winner: Challenger | None = None
        for name, member in self.members.items():
            pred, proba = predictions.get(name, (None, None))
            if name == variant:
                served = pred, proba
            if pred is not None:
                member.scores.update(label, pred, proba)
            err = _error(task, label, pred)
            member.pairs.add(champion_err < err, err < champion_err, champion_err == 0, err == 0)
            target = label == classes[-1] if member.codec else label
            try:
                member.model.learn_one(pending.features, target)
                member.learned += 1
            except Exception:  # noqa: BLE001
                member.errors += 1
            if self.promotion.enabled and member.pairs.since_check >= self.promotion.window and winner is None:
                if self._check(member):
                    winner = member
        if served[0] is not None:
            scores = self.served.get(variant)
            if scores is None:
                scores = self.served[variant] = OnlineScores(task, engine.config.drift.metrics_window, classes)
            scores.update(label, served[0], served[1])
        if winner is not None:
            details = {"test": "mcnemar_exact" if task == "classification" else "sign_exact", **winner.last_test}
            reason = (f"{winner.name} beat the champion in {self.promotion.patience} consecutive windows of "
                      f"{self.promotion.window} paired examples (p={winner.last_test['p_value']:.3g})")
            out.append(self.promote(engine, winner.name, "policy:promotion", reason, details, now_ms))
        return out

    # -- promotion ---------------------------------------------------------------------

    def _check(self, member: Challenger) -> bool:
        policy, pairs = self.promotion, member.pairs
        pairs.since_check = 0
        n = len(pairs)
        test = mcnemar_exact(pairs.b, pairs.c)
        lead = (pairs.c - pairs.b) / n
        member.last_test = {**test, "n": n, "lead": lead, "champion_accuracy": pairs.champion_ok / n,
                            "challenger_accuracy": pairs.challenger_ok / n, "alpha": policy.alpha,
                            "margin": policy.margin, "window": policy.window}
        member.wins = member.wins + 1 if lead >= policy.margin and test["p_value"] < policy.alpha else 0
        member.last_test["consecutive_wins"] = member.wins
        return member.wins >= policy.patience

    def promote(self, engine: Engine, name: str, actor: str, reason: str, details: dict[str, Any],
                now_ms: int) -> LifecycleEvent:
        """Make challenger ``name`` the champion (the old champion is dropped: its last
        version keeps it) and ask for a version cut. Deterministic: replays promote alike."""
        member = self.remove(name)
        engine.install_champion(member.model, member.scores, member.learned)  # its own metrics and count
        event_id = f"{engine.config.name}-promote-{engine.n_learned}-{name}"
        engine.champion_origin = {"name": name, "origin": member.origin, "event": event_id,
                                  "examples_seen": engine.n_learned}
        for other in self.members.values():  # they now face a different champion
            other.pairs = PairedErrors(self.promotion.window)
            other.wins = 0
        self.served.pop(name, None)
        self.promotions += 1
        engine.checkpoint_due = "promote"
        if not self.members:  # back to the challenger-free hot path
            engine.arena = None
        return LifecycleEvent(
            id=event_id, model=engine.config.name,
            action="promote", actor=actor, reason=reason, model_version=engine.version,
            details={"challenger": name, "origin": member.origin, "model_class": type(member.model).__name__,
                     "examples_seen": engine.n_learned, "challenger_metrics": member.scores.values(), **details},
            at=now_ms,
        )

    def _remember(self, stream_time: int, event_id: str, event_time: int, predictions, variant: str) -> None:
        pending = self._pending
        pending[event_id] = (event_time, predictions, variant)
        horizon = stream_time - self._max_age_ms
        while pending and (len(pending) > self._max_pending or next(iter(pending.values()))[0] < horizon):
            pending.popitem(last=False)

    def summary(self) -> dict[str, Any]:
        return {
            "challengers": [m.summary() for m in self.members.values()],
            "served": {variant: s.values() for variant, s in self.served.items()},
            "promotion": self.promotion.model_dump(),
        }


def _error(task: str, label: Any, prediction: Any) -> float:
    if prediction is None:
        return float("inf")
    if task == "regression":
        return abs(float(label) - float(prediction))
    return 0.0 if label == prediction else 1.0


def challenger_model(engine: Engine, spec: ChallengerSpec) -> base.Estimator:
    """The starting model of a challenger: a fresh estimator, or a warm copy of the champion."""
    if spec.start == "warm":
        return engine.model.clone(include_attributes=True)
    return build_model(spec.model or engine.config.model)
