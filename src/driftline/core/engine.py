"""The engine: predict, join and train stages over decoded records, with no I/O.

One :class:`Engine` holds all the learned state of a deployment (model, metrics, drift
detectors, join buffer, counters), so pickling it is a complete checkpoint. Records must
be fed in a deterministic order (see :mod:`driftline.core.ordering`); the same records
in the same order always give the same outputs and the same model.

>>> from driftline.config import DeploymentConfig
>>> from driftline.core.events import InputRecord
>>> engine = Engine(DeploymentConfig(name="demo"))
>>> out = engine.process(InputRecord("features", 0, 0, 1000, b"e1", b'{"id": "e1", "features": {"x": 1.0}}'), now_ms=0)
>>> out[0].prediction, out[0].model_version
(False, 0)
>>> engine.process(InputRecord("labels", 0, 0, 1010, b"e1", b'{"id": "e1", "label": true}'), now_ms=0)
[]
>>> engine.n_learned, engine.scores.values()["accuracy"]
(1, 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from river import base

from driftline.config import DeploymentConfig
from driftline.core.datadrift import DataDriftWatch
from driftline.core.augment import Oversampler, resampled
from driftline.core.detectors import ErrorWatch
from driftline.core.drift_reactions import DriftReactions
from driftline.core.history import MonitorHistory
from driftline.core.importance import ImportanceWatch, importances
from driftline.core.permutation import PermutationImportance
from driftline.core.events import EventSchema, InputRecord, decode_features, decode_label
from driftline.core.join import JoinBuffer, OrphanLabel, Pending
from driftline.core.label_delay import LabelDelay
from driftline.core.minibatch import MiniBatchLearner, check_supported, supports_learn_many
from driftline.core.models import build_model, task_of
from driftline.core.outputs import DeadLetter, Output, Prediction
from driftline.core.performance import PerformanceWatch
from driftline.core.policies import Adaptation
from driftline.core.privacy import policy_for
from driftline.core.sampling import LabelSample
from driftline.core.scoring import OnlineScores, error_of
from driftline.exceptions import BadEventError

__all__ = ["Engine", "Counters"]


@dataclass
class Counters:
    features: int = 0
    labels: int = 0
    predictions: int = 0
    joined: int = 0
    expired_features: int = 0
    expired_labels: int = 0
    dead_letters: int = 0
    drift_events: int = 0
    unsampled: int = 0  # joined labels outside the learn_share sample: scored, not learned


class Engine(DriftReactions):
    """All the learned state of one deployment, updated one record at a time."""

    # Challengers (core/arena.py); None keeps the hot path free of them. A class attribute
    # so that engines pickled before the arena existed restore without one.
    arena: Any = None
    # Mini-batch learning (core/minibatch.py, docs/minibatch.md); None learns one example at a
    # time. A class attribute so that engines pickled before it existed restore without one.
    minibatch: MiniBatchLearner | None = None
    # What the serving model had learned when it was installed, and the stream's count then
    # (see model_examples); engines pickled before it existed count from the stream's start.
    _model_base: tuple[int, int] = (0, 0)
    # Per-prediction explanations ([governance.explain], core/explain); None: off. A class
    # attribute so that engines pickled before it existed restore without one.
    explainer: Any = None
    # Fairness by group (core/fairness, docs/governance.md); None when [governance.fairness] is off.
    fairness: Any = None
    # Learning-time augmentation (core/augment.py); None learns the real examples alone.
    augment: Oversampler | None = None
    # The privacy field policy ([governance.privacy], core/privacy.py), applied as feature events
    # are decoded; None: every field allowed. Pickled without its key (see core/privacy.py).
    privacy: Any = None
    # How late labels come, in event time (core/label_delay.py; versions and cards show it).
    # A class attribute so that engines pickled before it existed restore without one.
    label_delay: LabelDelay | None = None
    # The seeded share of labels learned ([model] learn_share, core/sampling.py); None: all.
    sample: LabelSample | None = None
    # Whether feature events give a Prediction output (a global trainer serves none).
    builds_predictions = True

    def __init__(self, config: DeploymentConfig) -> None:
        self.config = config
        if config.model.learn_share < 1:
            self.sample = LabelSample(config.model.learn_share, config.model.learn_seed)
        self.label_delay = LabelDelay()
        self.model: base.Estimator = build_model(config.model)
        self.model = resampled(self.model, config.model.augment, tuple(config.model.classes))
        self.task = config.model.task or task_of(self.model)
        if config.model.mini_batch is not None:
            check_supported(self.model)
            self.minibatch = MiniBatchLearner(config.model.mini_batch)
        if config.model.augment.kind == "smote":
            self.augment = Oversampler(config.model.augment)
        self.schema = EventSchema(
            features=dict(config.model.features),
            classes=tuple(config.model.classes),
            task=self.task,
            max_bytes=config.processor.max_message_bytes,
            max_abs_value=config.processor.max_abs_feature,
        )
        self.scores = OnlineScores(self.task, config.drift.metrics_window, self.schema.classes)
        self.watch = ErrorWatch(config.drift.detectors, self.task, config.drift.grace_examples)
        self.adapt = Adaptation(config.drift)
        self.perf = PerformanceWatch(config.drift.performance) if config.drift.performance else None
        self.data_watch = (
            DataDriftWatch(config.drift.data, dict(config.model.features)) if config.drift.data.enabled else None
        )
        self._data_version = 0
        drift = config.drift
        self.importance = None if drift.importance_min_tau is None else ImportanceWatch(
            drift.importance_min_tau, drift.importance_warmup,
            tuple(n for n, k in config.model.features.items() if k == "cat"))
        self.join = JoinBuffer(config.join.max_age_ms, config.join.max_pending)
        self.privacy = policy_for(config)
        # Reports and the live page (core/history.py); permutation importance for models with none.
        self.history = MonitorHistory()
        self._evaluations = 0
        self._categorical = tuple(n for n, k in config.model.features.items() if k == "cat")
        self.permutation = None if importances(self.model, self._categorical) is not None else \
            PermutationImportance(self.task)
        self.counters = Counters()
        self.version = 0
        self.n_learned = 0
        self.stream_time = 0
        self.checkpoint_due: str | None = None
        self._window_before: dict[str, float] = {}
        # A binary-only model (e.g. logistic regression) learns "is it the last class?" and
        # its True/False answers are mapped back to the configured classes.
        classes = self.schema.classes
        self._binary_codec = (
            self.task == "classification" and len(classes) == 2
            and not getattr(self.model, "_multiclass", True) and not all(type(c) is bool for c in classes)
        )
        if config.governance.explain.enabled:
            from driftline.core.explain import Explainer

            self.explainer = Explainer(config.governance.explain.top_k,
                                       tuple(n for n, k in config.model.features.items() if k == "cat"))
        if config.governance.fairness.enabled:
            from driftline.core.fairness.watch import FairnessWatch

            self.fairness = FairnessWatch(config.governance.fairness, self.schema.classes, config.join)
        if config.lifecycle.challengers:
            from driftline.core.arena import Arena

            self.arena = Arena.from_config(self, config)

    @property
    def model_examples(self) -> int:
        """Examples the serving model itself has learned, before and since it was installed
        (``n_learned`` counts the stream's)."""
        base_examples, installed_at = self._model_base
        return base_examples + self.n_learned - installed_at

    def install_champion(self, model: base.Estimator, scores: OnlineScores | None = None,
                         examples: int = 0) -> None:
        """Serve (and keep training) ``model`` from now on: a promotion or a blue/green swap.

        ``scores`` are the model's own (its metrics go on from them; default: fresh ones),
        ``examples`` what it has learned so far (:attr:`model_examples` goes on from it)."""
        from driftline.core.arena import binary_codec

        if self.minibatch is not None:
            # The outgoing model learns what was joined while it served (as one at a time would).
            self._learn_batch(None, [])
            if not supports_learn_many(model):
                self.minibatch = None  # this champion learns one example at a time from now on
        elif getattr(self.config.model, "mini_batch", None) is not None and supports_learn_many(model):
            self.minibatch = MiniBatchLearner(self.config.model.mini_batch)
        self.model = model
        self._binary_codec = binary_codec(self.task, self.schema.classes, model)
        self.watch.reset()
        self.scores = scores if scores is not None else OnlineScores(
            self.task, self.config.drift.metrics_window, self.schema.classes)
        self._model_base = (examples, self.n_learned)
        if self.adapt.guard is not None:
            self.adapt.guard.candidate = self.adapt.guard.anchor = self.adapt.guard.twin = None  # they raced the outgoing model

    def feature_importances(self) -> dict[str, float] | None:
        """Linear weights, tree split shares, or permutation importance (core/importance.py)."""
        if self.permutation is not None:
            return self.permutation.values()
        return importances(self.model, self._categorical)

    # -- the three stages ------------------------------------------------------------

    def predict(self, features: dict[str, Any]) -> tuple[Any, dict[Any, float] | None]:
        """Stage 1: the current model's prediction (and class probabilities)."""
        try:
            explainer = self.explainer  # it shares a linear pipeline's transform with the explanation
            if self.task == "classification":
                proba = (self.model.predict_proba_one(features) if explainer is None
                         else explainer.predict_proba_one(self.model, features))
                if self._binary_codec and proba:
                    negative, positive = self.schema.classes
                    proba = {negative: proba.get(False, 0.0), positive: proba.get(True, 0.0)}
                return (max(proba, key=proba.get) if proba else None), proba
            if self.minibatch is not None:  # learn_many leaves numpy scalars in a linear model: JSON needs a float
                return float(self.model.predict_one(features)), None
            if explainer is not None:
                return explainer.predict_one(self.model, features), None
            return self.model.predict_one(features), None
        except Exception as exc:  # noqa: BLE001 - any model failure is this input's fault
            raise BadEventError("model_error", f"predict failed: {exc!r}") from exc

    def explain(self, features: dict[str, Any], prediction: Any) -> dict[str, Any] | None:
        """The champion's explanation of its prediction (core/explain); None when off."""
        if self.explainer is None:
            return None
        return self.explainer.explain_prediction(self.model, features, prediction, self.task,
                                                 self.schema.classes, self._binary_codec)

    def train(self, pending: Pending, label: Any, record: InputRecord, now_ms: int,
              event_id: str) -> list[Output]:
        """Stage 3: score the stored prediction, watch the error, then learn.

        ``record`` is the label's record: if the model cannot learn the example, the label
        goes to the dead-letter topic and everything else stands. With ``[model] learn_share``
        below 1, a label outside the seeded sample of ``event_id`` is scored and watched but
        not learned.
        """
        out: list[Output] = []
        scores = self.scores
        if self.label_delay is not None and record is not None:
            self.label_delay.add(record.timestamp - pending.event_time)
        if pending.prediction is not None:
            # The detectors see the error first, so that a drift event's metrics_before are the
            # metrics just before this example was scored (read only when a detector fired).
            detections = self.watch.update(error_of(self.task, label, pending.prediction))
            before = scores.values() if detections else None
            scores.update(label, pending.prediction, pending.proba)
            if scores.n % scores.window == 0:
                self._window_before = scores.values()
                if self.perf is not None:
                    out.extend(self._on_performance(record, now_ms))
                if self.importance is not None:
                    out.extend(self._on_importance(record, now_ms))
                self.history.add_metrics(self.n_learned, self.stream_time, self.version, self._window_before,
                                         self.feature_importances())
            if detections:
                out.extend(self._on_drift(detections, record, now_ms, before))
            elif self.watch.warning and self.adapt.uses_warning and self.adapt.background is None:
                out.extend(self._on_warning(record, now_ms))
            if self.fairness is not None:
                out.extend(self.fairness.on_label(self, _fair(pending), pending.prediction, label,
                                                  pending.event_time, record, now_ms, pending.proba,
                                                  getattr(pending, "fairness_keys", None)))
        if self.permutation is not None:
            self.permutation.observe(self.predict, pending.features, label)
        if self.sample is not None and not self.sample.keeps(event_id):
            self.counters.joined += 1
            self.counters.unsampled += 1
            return out
        target = label == self.schema.classes[-1] if self._binary_codec else label
        adapt = self.adapt
        guard = adapt.guard
        if guard is not None and guard.active and pending.prediction is not None:
            # guarded: the served prediction against the candidate's for the same features
            guard.pair(error_of(self.task, label, pending.prediction), getattr(pending, "candidate", None),
                       target, self.task, self.n_learned)
        batch = self.minibatch
        if batch is not None:
            # Learned when the buffer is full, or early so that a periodic version falls on its multiple.
            self.counters.joined += 1
            if not batch.add(pending.features, target) and not (
                    adapt.period and (self.n_learned + batch.pending) % adapt.period == 0):
                return out
            if not self._learn_batch(record, out):
                return out
        else:
            try:
                if self.fairness is not None and self.fairness.reweigher is not None:
                    self.fairness.learn(self.model, pending.features, target, label, _fair(pending))
                else:
                    self.model.learn_one(pending.features, target)
            except Exception as exc:  # noqa: BLE001 - never let one example stop the stream
                self.counters.dead_letters += 1
                out.append(DeadLetter(record, "model_error", f"learn failed: {exc!r}"))
                return out
            if self.augment is not None:
                self.augment.learned(self.model, pending.features, target)
            self.n_learned += 1
            self.counters.joined += 1
            if adapt.buffer is not None or adapt.background is not None or guard is not None:
                adapt.learned(pending.features, target)
        if adapt.period and self.n_learned % adapt.period == 0:
            self.model = adapt.retrain(self.model)
            self.checkpoint_due = self.checkpoint_due or "periodic"
        if guard is not None and guard.active:
            decision = guard.decide(self.n_learned)
            if decision is not None:
                out.append(self._on_candidate(decision, record, now_ms))
        return out

    def _learn_batch(self, record: InputRecord | None, out: list[Output]) -> int:
        """Mini-batch mode: the model learns the buffer with one ``learn_many``; how many it learned.

        A batch the model cannot learn is dropped whole and the label ``record`` that completed
        it goes to the dead-letter topic (with no record: an outgoing model's last batch).
        """
        batch, adapt = self.minibatch, self.adapt
        size = batch.pending
        rows = batch.rows() if adapt.buffer is not None or adapt.background is not None or adapt.guard else ()
        try:
            learned = batch.flush(self.model)
        except Exception as exc:  # noqa: BLE001 - never let one batch stop the stream
            if record is not None:
                self.counters.dead_letters += 1
                out.append(DeadLetter(record, "model_error", f"learn_many failed, {size} examples not learned: {exc!r}"))
            return 0
        self.n_learned += learned
        for features, target in rows:
            adapt.learned(features, target)
        return learned

    # -- records -----------------------------------------------------------------------

    def process(self, record: InputRecord, now_ms: int) -> list[Output]:
        """Handle one input record; return what must be published for it."""
        try:
            if record.kind == "features":
                out = self._on_features(record, now_ms)
            elif record.kind == "protected":  # the protected side topic: fairness only (core/fairness/side.py)
                out = self._on_protected(record, now_ms)
            else:
                out = self._on_label(record, now_ms)
            # Only valid records move event time (a bad record's timestamp is not trusted).
            if record.timestamp > self.stream_time:
                self.stream_time = record.timestamp
        except BadEventError as exc:
            self.counters.dead_letters += 1
            out = [DeadLetter(record, exc.reason, exc.detail)]
        expired = self.join.expire(self.stream_time)
        if expired is not None:
            self.counters.expired_features += expired.features
            self.counters.expired_labels += len(expired.labels)
            for orphan in expired.labels:
                if orphan.record is not None:
                    self.counters.dead_letters += 1
                    out.append(DeadLetter(orphan.record, "label_without_features", "no features arrived within the join window"))
        return out

    def _on_features(self, record: InputRecord, now_ms: int) -> list[Output]:
        event = decode_features(record.value, self.schema, self.config.name, self.privacy)
        self.counters.features += 1
        prediction, proba = self.predict(event.features)
        # Fairness reads its attributes from the features, and from the protected fields
        # ([governance.privacy]), which the model never sees.
        fair = event.features if event.protected is None else {**event.features, **event.protected}
        side = None  # groups from the protected side topic that came before these features
        if self.fairness is not None and self.fairness.side is not None:
            side = self.fairness.side.take(event.id, max(self.stream_time, record.timestamp))
            if side is not None:
                fair = {**fair, **side}
        if self.fairness is not None and self.fairness.thresholds is not None:
            prediction = self.fairness.decide(fair, prediction, proba)
        pending = Pending(event.features, prediction, proba, self.version, record.timestamp)
        if event.protected is not None and self.fairness is not None:  # only their groups wait for the label
            pending.protected = self.privacy.fairness_groups(self.fairness.monitor.grouping, event.protected)
        if side is not None:
            pending.protected = {**(pending.protected or {}), **side}
        guard = self.adapt.guard
        if guard is not None and guard.active:
            pending.candidate = guard.foresee(event.features, self.n_learned)
        waiting = self.join.add_features(event.id, pending)
        self.counters.predictions += 1
        out: list[Output] = []
        if self.builds_predictions or self.arena is not None:  # the arena may replace out[0]
            out.append(Prediction(event.id, self.config.name, self.version, self.n_learned,
                                  prediction, proba, record.timestamp, now_ms))
            if self.explainer is not None:
                out[0].explanation = self.explain(event.features, prediction)
        if self.data_watch is not None:
            self._on_data(event.features, record, now_ms, out)
        if self.fairness is not None:
            out.extend(self.fairness.on_prediction(self, fair, prediction, record, now_ms, pending))
        if self.arena is not None:
            self.arena.on_features(self, event.id, event.features, out, record.timestamp)
        if waiting is not None:
            out.extend(self.train(pending, waiting.label, waiting.record or record, now_ms, event.id))
            if self.arena is not None:
                out.extend(self.arena.on_label(self, event.id, pending, waiting.label, now_ms))
        return out

    def _on_label(self, record: InputRecord, now_ms: int) -> list[Output]:
        event = decode_label(record.value, self.schema, self.config.name)
        self.counters.labels += 1
        pending = self.join.take_features(event.id)
        if pending is None:
            kept = record if self.privacy is None else self._redacted(record)
            pending = self.join.add_label(event.id, OrphanLabel(event.label, record.timestamp, kept))
            if pending is None:
                return []
        if self.arena is not None:
            return self.train(pending, event.label, record, now_ms, event.id) + self.arena.on_label(
                self, event.id, pending, event.label, now_ms)
        return self.train(pending, event.label, record, now_ms, event.id)

    def _on_protected(self, record: InputRecord, now_ms: int) -> list[Output]:
        if self.fairness is None:
            raise BadEventError("unexpected_protected", "[governance.fairness] is off: nothing reads protected records")
        return self.fairness.on_protected(self, record, now_ms)

    def _redacted(self, record: InputRecord) -> InputRecord:
        """A label record as the join buffer (and a snapshot) may keep it: redacted by the
        privacy policy (core/privacy.py), the same record when nothing is redacted."""
        value, redacted = self.privacy.redact(record.value)
        if not redacted:
            return record
        return InputRecord(record.kind, record.partition, record.offset, record.timestamp, record.key, value)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Engines pickled before drift policies and data drift existed get the defaults."""
        self.__dict__.update(state)
        drift = self.config.drift
        if "adapt" not in state:
            self.adapt = Adaptation(drift)
        for name, value in (("perf", PerformanceWatch(drift.performance) if drift.performance else None),
                            ("data_watch", None), ("_data_version", self.version), ("importance", None),
                            ("history", MonitorHistory()), ("_evaluations", 0), ("permutation", None),
                            ("_categorical", ())):
            if name not in state:
                setattr(self, name, value)
        if "privacy" not in state:  # pickled before [governance.privacy]: the policy in force now
            from driftline.core.privacy import _ACTIVE

            self.privacy = _ACTIVE.get(self.config.name)


def _fair(pending: Pending) -> dict[str, Any]:
    """The features fairness groups a joined example by: the model's and the protected groups."""
    groups = getattr(pending, "protected", None)  # Pending pickled before it: the slot is unset
    return pending.features if groups is None else {**pending.features, **groups}
