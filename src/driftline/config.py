"""Typed, frozen configuration for one model deployment.

A deployment is configured by a TOML file (see ``deploy/*.toml``), CLI flags and the
environment; secrets (SASL password, snapshot signing key) come only from the environment
and are kept in ``SecretStr`` so they never print.

>>> cfg = DeploymentConfig(name="elec")
>>> cfg.topics.features
'driftline.elec.features'
>>> cfg.kafka.as_librdkafka_dict()["bootstrap.servers"]
'127.0.0.1:9092'
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from driftline.exceptions import ConfigError

__all__ = [
    "KafkaConfig",
    "TopicNames",
    "ModelConfig",
    "JoinConfig",
    "DriftConfig",
    "GuardConfig",
    "AugmentConfig",
    "DetectorSpec",
    "PerformanceRule",
    "DataDriftConfig",
    "CheckpointConfig",
    "ProcessorConfig",
    "ChallengerSpec",
    "PromotionConfig",
    "AlertRule",
    "LifecycleConfig",
    "ScaleConfig",
    "ExplainConfig",
    "AuditConfig",
    "FairnessAttribute",
    "FairnessConfig",
    "PrivacyConfig",
    "GovernanceConfig",
    "MIN_SECRET_BYTES",
    "secret_from_env",
    "DeploymentConfig",
    "load_config",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Client settings the exactly-once / at-least-once machinery relies on: not overridable.
_GUARANTEE_KEYS = frozenset({
    "enable.idempotence", "transactional.id", "isolation.level", "enable.auto.commit",
    "enable.auto.offset.store", "group.id", "enable.partition.eof",
})


class KafkaConfig(_Frozen):
    """Connection settings; ``extra`` passes any librdkafka key through (SASL/SSL, ...)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)
    # librdkafka keys for Driftline's producers or consumers only, applied over Driftline's
    # own defaults (e.g. ``linger.ms``, which trades output latency for broker requests).
    producer: dict[str, str] = Field(default_factory=dict)
    consumer: dict[str, str] = Field(default_factory=dict)

    @field_validator("producer", "consumer")
    @classmethod
    def _keeps_guarantees(cls, value: dict[str, str]) -> dict[str, str]:
        fixed = sorted(set(value) & _GUARANTEE_KEYS)
        if fixed:
            raise ValueError(f"{fixed} are set by Driftline (its delivery guarantees depend on them)")
        return value

    def as_librdkafka_dict(self) -> dict[str, Any]:
        """The common client settings as a fresh librdkafka dict (secrets revealed)."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "ssl.ca.location": self.ssl_ca_location,
        }
        conf.update({k: v for k, v in optional.items() if v is not None})
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        conf.update(self.extra)
        return conf


class TopicNames(_Frozen):
    """The topics one deployment owns: ``<prefix>.<model>.<kind>``."""

    prefix: str
    model: str

    def _name(self, kind: str) -> str:
        return f"{self.prefix}.{self.model}.{kind}"

    @property
    def features(self) -> str:
        return self._name("features")

    @property
    def labels(self) -> str:
        return self._name("labels")

    @property
    def protected(self) -> str:
        """Protected attributes keyed by event id, for fairness only ([governance.fairness]
        attributes with ``source = "protected"``): joined like labels, never seen by the model."""
        return self._name("protected")

    @property
    def predictions(self) -> str:
        return self._name("predictions")

    @property
    def drift(self) -> str:
        return self._name("drift")

    @property
    def versions(self) -> str:
        return self._name("versions")

    @property
    def dlq(self) -> str:
        return self._name("dlq")

    @property
    def shadow(self) -> str:
        """Predictions of the variants that did not serve an event (challengers)."""
        return self._name("shadow")

    @property
    def lifecycle(self) -> str:
        """The audit trail: promotions, rollbacks, alias moves, resets, deletions."""
        return self._name("lifecycle")

    @property
    def order(self) -> str:
        """The processor's merge decisions (which source, which offsets, in which order),
        written in the transactions of the outputs they produced: recovery repeats them."""
        return self._name("order")

    @property
    def checkpoints(self) -> str:
        """Keyed mode: per task, a pointer to its latest snapshot (compacted, key = task)."""
        return self._name("checkpoints")

    @property
    def audit(self) -> str:
        """The hash-chained, signed audit log (core/audit.py): one entry per lifecycle event."""
        return self._name("audit")

    def all(self) -> dict[str, str]:
        """Kind -> topic name, for every topic of the deployment."""
        kinds = ("features", "labels", "protected", "predictions", "drift", "versions", "dlq", "shadow", "lifecycle", "order",
                 "checkpoints", "audit")
        return {k: self._name(k) for k in kinds}


class AugmentConfig(_Frozen):
    """Learning-time data augmentation for imbalanced classes (``core/augment.py``).

    ``smote``: each time the model learns an example of a class rarer than ``ratio`` times the
    most frequent one, it also learns ``k`` synthetic examples interpolated (numeric features)
    between it and random recent examples of that class, kept in a ring of ``ring`` per class;
    seeded. Predictions and metrics never see them. The other kinds wrap the model in one of
    River's ``imblearn`` resamplers (seeded with ``seed``).
    """

    kind: Literal["none", "smote", "random_over", "random_under", "hard_sampling"] = "none"
    k: int = Field(default=3, ge=1)
    ratio: float = Field(default=0.5, gt=0, le=1)
    ring: int = Field(default=200, ge=2)
    seed: int = 42
    # River's imblearn wrappers (core/augment.py:resampled): "random_over" / "random_under"
    # (RandomOverSampler / RandomUnderSampler) learn towards ``desired`` class shares (None:
    # equal shares of the configured classes); "hard_sampling" (HardSamplingClassifier)
    # keeps the ``ring`` examples with the largest loss and relearns one with probability ``p``.
    desired: dict[str, float] | None = None
    p: float = Field(default=0.1, gt=0, le=1)


class ModelConfig(_Frozen):
    """Which River estimator to run: a preset name or a ``module:factory`` path.

    ``preset`` also takes a ``module:factory`` path (as ``--preset`` does), which sets ``factory``:

    >>> ModelConfig(preset="river.tree:HoeffdingTreeClassifier").factory
    'river.tree:HoeffdingTreeClassifier'
    """

    preset: str = "logistic_regression"
    factory: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    task: Literal["classification", "regression"] | None = None
    features: dict[str, Literal["num", "cat"]] = Field(default_factory=dict)
    classes: list[Any] = Field(default_factory=list)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    mini_batch: int | None = Field(
        default=None, ge=2,
        description=(
            "Opt-in mini-batch learning (docs/minibatch.md): joined examples are buffered and every "
            "mini_batch-th one makes the model learn the buffer with one learn_many; predictions stay "
            "one at a time, from the model as of the last batch. Needs a model with learn_many at every "
            "step (linear models, naive Bayes, preprocessing), declared numeric features and polars "
            "(the 'minibatch' extra). One learn_many step is one gradient step on the batch's mean "
            "gradient, not mini_batch learn_one steps. None: learn each example as its label arrives."
        ),
    )
    learn_share: float = Field(
        default=1.0, gt=0, le=1,
        description=(
            "The share of labels the model learns (docs/scaling.md, 'Faster learning than one core'): "
            "a seeded sample by event id, the same in every run, replay and recovery. Every label is "
            "still scored and watched for drift; only learning is skipped. 1: learn every label."
        ),
    )
    learn_seed: int = Field(default=0, ge=0, description="Seed of the learn_share sample.")

    @model_validator(mode="before")
    @classmethod
    def _preset_may_be_a_factory(cls, data: Any) -> Any:
        if isinstance(data, dict) and ":" in str(data.get("preset", "")):
            data = dict(data)  # the caller's dict is never changed
            path = data.pop("preset")
            if data.get("factory") not in (None, path):
                raise ValueError(f"model preset {path!r} is a module:factory path, and factory is "
                                 f"{data['factory']!r} too: give one of them")
            data["factory"] = path
        return data

    @model_validator(mode="after")
    def _mini_batch_ok(self) -> ModelConfig:
        if self.mini_batch is not None and (not self.features or "cat" in self.features.values()):
            raise ValueError(
                "model.mini_batch needs model.features declared, all 'num' (every row of a batch "
                "must have the same numeric columns)"
            )
        return self


class JoinConfig(_Frozen):
    """Bounds of the buffer that holds features until their label arrives."""

    max_age_ms: int = Field(default=24 * 3600 * 1000, gt=0)
    max_pending: int = Field(default=1_000_000, gt=0)


class DetectorSpec(_Frozen):
    """One ``river.drift`` detector fed with the per-example error."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class PerformanceRule(_Frozen):
    """A rolling metric (a name from the online scores, e.g. ``rolling_accuracy``) checked at
    the end of every ``metrics_window``: an alert when it crosses ``min``/``max``, or when it
    leaves the band ``mean ± band_k·σ`` of its first ``reference_windows`` windows."""

    metric: str = "rolling_accuracy"
    min: float | None = None
    max: float | None = None
    band_k: float | None = None
    reference_windows: int = Field(default=5, ge=2)


class DataDriftConfig(_Frozen):
    """Per-feature data drift: a reference window against a sliding current window.

    Numeric features: two-sample KS (and PSI on ``psi_bins`` reference-quantile bins, reported
    and required to reach ``psi_min``); categorical ones: chi-square. p-values are corrected
    across features (``correction``); the data set drifts when ``dataset_share`` of them do.
    Tests run every ``step`` feature events once the current window is full.
    """

    enabled: bool = False
    reference_size: int = Field(default=1000, ge=50)
    window_size: int = Field(default=500, ge=50)
    step: int = Field(default=100, gt=0)
    alpha: float = Field(default=0.001, gt=0, lt=1)
    correction: Literal["holm", "bonferroni", "bh"] = "holm"
    psi_bins: int = Field(default=10, ge=2)
    psi_min: float = Field(default=0.0, ge=0)
    dataset_share: float = Field(default=0.5, gt=0, le=1)
    rebase_on_version: bool = True
    features: list[str] = Field(default_factory=list)


class GuardConfig(_Frozen):
    """The ``guarded`` policy (``core/guarded.py``): a candidate started on drift replaces the
    serving model only once it is better on the same labels.

    ``start``: ``fresh`` (an unfitted copy) or ``warm`` (linear models: a copy of the serving
    model's weights and scaler; other models start fresh). ``replay``: the bounded ring of
    recent examples from which a new candidate first learns those since the detector's
    estimated change point (0: off). The candidate is compared on the last ``window`` paired
    labels (once it has ``min_pairs`` of them), every ``check_every`` labels, by McNemar's exact test at ``alpha``; it is given up
    after ``max_examples`` labels without a win.
    """

    start: Literal["fresh", "warm"] = "warm"
    replay: int = Field(default=2000, ge=0)
    window: int = Field(default=500, ge=10)
    min_pairs: int = Field(default=200, ge=1)
    check_every: int = Field(default=50, ge=1)
    alpha: float = Field(default=0.00001, gt=0, lt=1)
    # ... and when it is right on at least this share more of the window's labels.
    margin: float = Field(default=0.0, ge=0, le=1)
    max_examples: int = Field(default=5000, ge=1)
    # The anchor: the model the first swap replaced keeps learning beside the serving one and
    # serves again when it is right significantly more often on the last ``anchor_window``
    # paired labels (McNemar at ``alpha``, from ``anchor_min_pairs`` on, every ``check_every``):
    # a swap that turns out worse than doing nothing is undone (False: no anchor).
    anchor: bool = True
    anchor_window: int = Field(default=2000, ge=10)
    anchor_min_pairs: int = Field(default=500, ge=1)
    # Warm linear candidates learn at a multiple of the serving model's (constant) learning
    # rate, taken in turn from this list: a search for the rate the stream needs, each step
    # kept only if its candidate wins the paired test ([1.0]: the serving model's own rate).
    rates: list[float] = Field(default_factory=lambda: [0.3, 3.0])
    # Judge a candidate on at least as many paired labels as the labels are late (the measured
    # mean delay, in labels): ``window`` and ``min_pairs`` grow to it (docs/drift-benchmark.md).
    delay_scaled: bool = True
    # A warm candidate races with a fresh twin (an unfitted model learning from the detection
    # on): the twin swaps in when it is right on at least ``twin_margin`` more of the paired
    # labels (and passes the same test), from ``twin_min_pairs`` pairs on. A fresh model wins
    # fast after an abrupt change and rarely on a slow one (docs/drift-benchmark.md).
    twin: bool = True
    twin_margin: float = Field(default=0.1, ge=0, le=1)
    twin_min_pairs: int = Field(default=50, ge=1)


class DriftConfig(_Frozen):
    """Concept drift (detectors on the per-example error), performance rules, data drift,
    and what to do about it (``policy``)."""

    # None: the benchmarked default for the task (docs/drift-benchmark.md): binary.HDDMA on the
    # 0/1 error of a classifier, ADWIN on the absolute error of a regressor.
    detectors: list[DetectorSpec] | None = None
    # "guarded" (a candidate serves only once it beats the serving model on the same labels;
    # the model it replaced stays as an anchor) ties or beats "none" in all 90 cells of
    # docs/drift-benchmark.md's grid (labels 0 to 1000 late; worst -0.16) and keeps 70-294% of
    # "reset"'s gain at delay 0. "reset" (a fresh model on every detection) gains a little more
    # at delay 0 but loses about 4 points on Elec2 once labels are 100 or more late.
    # "none" keeps River's own semantics (exactly progressive_val_score) and is what a
    # deployment with challengers usually wants.
    policy: Literal["none", "reset", "background", "periodic", "guarded"] = "guarded"
    guard: GuardConfig = Field(default_factory=GuardConfig)
    # Detectors see no error for this many examples after a model (re)starts: a young model's
    # falling error is learning, not drift. 300 was chosen for "guarded" (docs/drift-benchmark.md:
    # +0.21 points for the Hoeffding tree on Elec2 at delay 100, 1000 is worse); it costs "reset"
    # 1.5-1.8 points at delay 0 on Elec2, so set 0 with "reset".
    grace_examples: int = Field(default=300, ge=0)
    metrics_window: int = Field(default=1000, gt=0)
    # reset/background/periodic: train the new model on the last ``warm_start`` examples.
    warm_start: int = Field(default=0, ge=0)
    # periodic: cut a version every ``period_examples`` learned examples, retraining a fresh
    # model on the last ``retrain_last`` ones when > 0.
    period_examples: int = Field(default=10_000, gt=0)
    retrain_last: int = Field(default=0, ge=0)
    performance: list[PerformanceRule] = Field(default_factory=list)
    data: DataDriftConfig = Field(default_factory=DataDriftConfig)
    # Linear models: an "importance" drift event when the Kendall tau between the reference
    # and current |w|·scale importances falls below this (None: off); checked per metrics window.
    importance_min_tau: float | None = Field(default=None, ge=-1, le=1)
    importance_warmup: int = Field(default=5, ge=1)


# Secrets shorter than this are refused: the log redaction (observability/logs.py) replaces a
# secret wherever it appears, and a short one appears everywhere (a key "k" redacts every k).
MIN_SECRET_BYTES = 16


def secret_from_env(env: str, what: str, required: bool = True) -> bytes | None:
    """A secret from the environment variable ``env``: missing (when ``required``) or shorter
    than :data:`MIN_SECRET_BYTES` is a one-line :class:`ConfigError`.

    >>> import os
    >>> os.environ["DOCTEST_SECRET"] = "short"
    >>> secret_from_env("DOCTEST_SECRET", "doctest key")
    Traceback (most recent call last):
    ...
    driftline.exceptions.ConfigError: doctest key in DOCTEST_SECRET is 5 bytes: use at least 16 (e.g. `openssl rand -hex 32`)
    """
    value = os.environ.get(env, "")
    if not value:
        if required:
            raise ConfigError(f"{what} missing: set the {env} environment variable")
        return None
    key = value.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(f"{what} in {env} is {len(key)} bytes: use at least {MIN_SECRET_BYTES} "
                          "(e.g. `openssl rand -hex 32`)")
    return key


class CheckpointConfig(_Frozen):
    """When to cut a version and where to keep it."""

    every_examples: int = Field(default=10_000, gt=0)
    every_seconds: float = Field(default=60.0, gt=0)
    on_drift: bool = True
    # A drift is checkpointed, but no sooner than this many examples after the last version:
    # a noisy stream must not turn into a snapshot storm on the hot path.
    drift_min_examples: int = Field(default=2_000, ge=0)
    # ... and no sooner than this many seconds: at 4k labels/s a drift-prone stream (Elec2 with
    # reset) would otherwise cut two versions a second, each a fork and a registry update.
    drift_min_seconds: float = Field(default=10.0, ge=0)
    store_url: str = ".driftline/versions"
    key_env: str = "DRIFTLINE_SNAPSHOT_KEY"
    # Write snapshots from a forked child (copy-on-write, runtime/snapshots.py) so pickling a
    # large model never stalls predictions; False writes them inline. Linux only (else inline).
    background: bool = True

    def signing_key(self) -> bytes:
        """The HMAC key from the environment; refuses to run without one, or with a short one."""
        return secret_from_env(self.key_env, "snapshot signing key")


class ChallengerSpec(_Frozen):
    """A candidate model learning side by side with the champion (see ``core/arena.py``).

    ``start``: ``cold`` (fresh estimator), ``warm`` (a copy of the champion with its learned
    state). ``share``: the fraction of event keys it serves (canary / A-B); 0 = shadow only.
    """

    name: str
    model: ModelConfig | None = None
    start: Literal["cold", "warm"] = "cold"
    share: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("model")
    @classmethod
    def _one_at_a_time(cls, value: ModelConfig | None) -> ModelConfig | None:
        if value is not None and value.mini_batch is not None:
            raise ValueError("challengers learn one example at a time: mini_batch applies to the champion only")
        return value

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not value or value == "champion" or not all(c.isalnum() or c in "._-" for c in value):
            raise ValueError(f"{value!r}: a challenger name uses letters, digits, '.', '_' or '-' and is not 'champion'")
        return value


class PromotionConfig(_Frozen):
    """Promote a challenger when it beats the champion on paired errors (McNemar exact test).

    Checked every ``window`` paired examples over the last ``window``; a challenger must win
    ``patience`` consecutive checks, each with accuracy ahead by ``margin`` and p < ``alpha``.
    """

    enabled: bool = False
    window: int = Field(default=1000, gt=0)
    margin: float = Field(default=0.01, ge=0.0, lt=1.0)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    patience: int = Field(default=2, gt=0)


class AlertRule(_Frozen):
    """What a firing Alertmanager alert named ``alertname`` makes the deployment do
    (``POST /alerts/alertmanager`` on the admin API, docs/integrations.md): ``rollback`` to
    the version or alias ``to`` (re-learning forward when ``replay``), or ``reset`` the model."""

    alertname: str
    action: Literal["rollback", "reset"]
    to: str | None = None
    replay: bool = False

    @model_validator(mode="after")
    def _rollback_has_a_target(self) -> AlertRule:
        if self.action == "rollback" and not self.to:
            raise ValueError(f"alert rule {self.alertname}: a rollback needs `to` (a version or an alias)")
        return self


class LifecycleConfig(_Frozen):
    """Registry, retention, challengers, promotion policy and the admin API."""

    registry_url: str | None = None  # SQLite file; default: <store dir>/<model>/registry.sqlite
    keep_last: int | None = Field(default=None, gt=0)  # retention: None keeps every snapshot
    challengers: list[ChallengerSpec] = Field(default_factory=list)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    admin_port: int = 0
    admin_host: str = "127.0.0.1"
    token_env: str = "DRIFTLINE_ADMIN_TOKEN"
    alert_rules: list[AlertRule] = Field(default_factory=list)


class ProcessorConfig(_Frozen):
    # exactly_once: outputs and input offsets in one Kafka transaction; consumers reading
    # read_committed see every output once, ~commit_interval_ms after its input.
    # at_least_once: outputs are sent as soon as they are made (idempotent producer, no
    # transactions) and offsets committed every commit_interval_ms after a flush; after a
    # crash the outputs since the last commit are sent again (same ce_id), and a second
    # instance is not fenced. Learning is exactly-once in both (snapshots + replay).
    guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    batch_size: int = Field(default=1000, gt=0)
    commit_interval_ms: int = Field(default=100, gt=0)
    max_idle_ms: int = Field(default=2000, ge=0)
    # Records held per partition by the event-time merger before the partition is paused.
    # Above one fetch of small messages (2 MiB of ~30-byte labels is ~70k records), so that
    # catching up does not pause (and purge) on every fetch.
    max_buffered_per_partition: int = Field(default=100_000, gt=0)
    max_message_bytes: int = Field(default=256 * 1024, gt=0)
    # Numeric features beyond +/- this go to the DLQ (out_of_range): one 1e300 turns a
    # linear model's weights into NaN for good.
    max_abs_feature: float = Field(default=1e12, gt=0)
    # A WARNING log after this many dead letters in a row (no prediction made and no example
    # learned in between), again after 10x, 100x, ...: input that does not match the schema.
    dead_letter_warn_after: int = Field(default=100, gt=0)
    metrics_port: int = 0


class ScaleConfig(_Frozen):
    """How a deployment spreads over processes and keys (docs/scaling.md).

    ``single``: one process assigns itself every partition (the default). ``keyed``: every
    ``driftline run --instance ID`` is a member of the deployment's consumer group; a task
    per partition index p runs the event-time merge, join and learning of features-p and
    labels-p, and the process owning p owns its state. In keyed mode the Kafka record key of
    every feature and label event names an entity (a customer, a sensor) and each distinct
    key gets its own model, detectors and metrics, built from ``[model]`` on first sight; at
    most ``max_keys_in_memory`` of them stay resident per task, the least recently used
    others wait in the version store until their next event. The ``top_keys`` busiest keys
    are reported by name; every other per-key figure is an aggregate.

    >>> ScaleConfig(mode="keyed", max_keys_in_memory=500).max_keys_in_memory
    500
    """

    mode: Literal["single", "keyed", "global"] = "single"
    # The stable id of this process in keyed mode (static membership, its transactional.id).
    instance: str | None = None
    # Keyed mode: a dead member's partitions move after this (the group's session timeout).
    session_timeout_ms: int = Field(default=10_000, ge=6000)
    max_keys_in_memory: int = Field(default=10_000, gt=0)
    top_keys: int = Field(default=10, ge=0)
    # Global mode: one trainer learns, any number of predictors serve (docs/scaling.md,
    # "Global mode"). The role is usually given as `driftline run --role`.
    role: Literal["trainer", "predictor"] | None = None
    # The trainer releases a version every this many labels learned, and also when this much
    # event time passed since the last release (None: by count only).
    publish_every_examples: int = Field(default=1000, gt=0)
    publish_every_ms: int | None = Field(default=None, gt=0)
    # bounded: an event of time t is served by the newest version with watermark <= t - delta
    # (repeatable); latest: by the newest version loaded (lower latency, not repeatable).
    staleness: Literal["bounded", "latest"] = "bounded"
    max_staleness_ms: int = Field(default=1000, ge=0)
    # Bounded: an event waits at most this long (wall clock) for the trainer's watermark, then
    # is served by the newest version and marked stale.
    max_wait_ms: int = Field(default=5000, gt=0)
    # The trainer's watermark heartbeats between versions, at most this often (wall clock).
    heartbeat_ms: int = Field(default=200, gt=0)
    # Versions up to this size ride inline in their .versions message; larger ones go to the
    # version store (signed either way). Below Kafka's default 1 MiB message limit.
    inline_version_bytes: int = Field(default=256 * 1024, ge=0, le=900 * 1024)
    # Global mode, predictors: also read .labels of the partitions served (co-partitioned with
    # .features) and join each label with the prediction served for it: served accuracy (MAE
    # for a regressor) and a served drift watch per partition (core/served.py).
    served_labels: bool = False
    # Served predictions held per partition for their label; the oldest is evicted (counted).
    served_buffer: int = Field(default=100_000, gt=0)

    @field_validator("instance")
    @classmethod
    def _instance_safe(cls, value: str | None) -> str | None:
        if value is not None and (not value or not all(c.isalnum() or c in "._-" for c in value)):
            raise ValueError(f"scale.instance {value!r}: use letters, digits, '.', '_' or '-'")
        return value


class ExplainConfig(_Frozen):
    """Per-prediction explanations (core/explain, docs/governance-explain.md): the ``top_k``
    largest contributions and reason codes in every prediction record and ``POST /predict``."""

    enabled: bool = False
    top_k: int = Field(default=5, ge=1)


class AuditConfig(_Frozen):
    """The hash-chained, signed audit log on ``<prefix>.<model>.audit`` (docs/governance-explain.md)."""

    enabled: bool = True
    # Art. 19 of the EU AI Act asks for at least six months; None keeps entries forever.
    retention_ms: int | None = Field(default=183 * 24 * 3600 * 1000, gt=0)


class FairnessAttribute(_Frozen):
    """A sensitive attribute, grouped by its value or by ``bins``: a feature of the model
    (``source = "feature"``), or a field of the records on the protected side topic
    ``<prefix>.<model>.protected`` (``source = "protected"``), joined by event id like a label
    and never seen by the model.

    ``bins`` are edges: ``[0, 25, 40, 60]`` makes the groups ``[0,25)``, ``[25,40)``,
    ``[40,60)`` and ``>=60`` (and ``<0`` below the first edge). ``reference``: the group every
    other group is compared with; None takes the largest group of the window.
    """

    name: str
    source: Literal["feature", "protected"] = "feature"
    bins: list[float] | None = None
    reference: str | None = None

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or any(b <= a for a, b in zip(value, value[1:]))):
            raise ValueError(f"bins {value}: give increasing edges")
        return value


class FairnessConfig(_Frozen):
    """Fairness by group on the stream (docs/governance.md).

    A group's rate is compared with the reference group's: a violation needs the ratio outside
    ``[tau, 1/tau]`` and a one-sided two-proportion z-test significant at the look's level
    (``alpha * check_every / alpha_horizon``: ``alpha`` is spent over ``alpha_horizon`` monitor
    events, predictions plus joined labels; Holm-corrected across groups and metrics). Groups below
    ``min_group`` (or ``min_denominator`` in a rate's denominator) are ``insufficient_data``.
    """

    enabled: bool = False
    attributes: list[FairnessAttribute] = Field(default_factory=list)
    intersections: list[list[str]] = Field(default_factory=list)
    # The favourable outcome (a loan granted); None: the last of model.classes, else True.
    favourable: str | int | bool | None = None
    metrics: list[Literal["selection_rate", "base_rate", "tpr", "fpr", "ppv", "fnr"]] = Field(
        default_factory=lambda: ["selection_rate", "tpr", "fpr"])
    tau: float = Field(default=0.8, gt=0, lt=1)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    min_group: int = Field(default=100, ge=1)
    min_denominator: int = Field(default=30, ge=1)
    window: int = Field(default=2000, ge=10)
    check_every: int = Field(default=200, ge=1)
    alpha_horizon: int = Field(default=100_000, ge=1)
    tumbling_ms: int | None = Field(default=None, gt=0)
    # Label-coverage guard: a warning when a group's share of labelled events falls below this.
    coverage_min: float | None = Field(default=None, gt=0, le=1)
    # Mitigation (docs/governance.md#mitigation) on the first attribute: "reweigh" (Kamiran-Calders
    # weights over mitigation_window examples) or "group_threshold" (per-group decision thresholds:
    # disparate treatment under US credit law, so it needs acknowledge_disparate_treatment = true).
    mitigation: Literal["none", "reweigh", "group_threshold"] = "none"
    mitigation_window: int = Field(default=30_000, ge=100)
    acknowledge_disparate_treatment: bool = False
    # group_threshold: how strongly each group's decisions are steered to the common selection
    # rate (rate + threshold_feedback * decisions owed); 0 uses the window's thresholds alone.
    threshold_feedback: float = Field(default=0.02, ge=0)

    @property
    def side_attributes(self) -> tuple[str, ...]:
        """The attributes read from the protected side topic (empty: the topic is not read)."""
        return tuple(a.name for a in self.attributes if a.source == "protected") if self.enabled else ()

    @model_validator(mode="after")
    def _known_attributes(self) -> FairnessConfig:
        names = [a.name for a in self.attributes]
        if self.enabled and not names:
            raise ValueError("governance.fairness is enabled: name at least one attribute")
        for combo in self.intersections:
            if len(combo) < 2 or not set(combo) <= set(names):
                raise ValueError(f"intersection {combo}: name two or more of the attributes {names}")
        if self.mitigation == "group_threshold" and not self.acknowledge_disparate_treatment:
            raise ValueError("mitigation group_threshold decides by group (disparate treatment, unlawful "
                             "in US credit decisions): set acknowledge_disparate_treatment = true to use it")
        if self.mitigation != "none" and not names:
            raise ValueError(f"mitigation {self.mitigation} needs an attribute")
        return self


class ErasureConfig(_Frozen):
    """``driftline erase`` (runtime/erasure.py, docs/governance-explain.md#erasure): whether
    the versions an erasure supersedes (they may contain the subject) are deleted from the
    version store, or only marked ``erased`` in the registry (they can never serve again)."""

    delete_superseded: bool = False


FieldAction = Literal["allow", "drop", "hmac", "protected"]
# Topic kinds whose retention [governance.privacy] retention_ms may set (docs/governance-explain.md#privacy);
# .versions and .checkpoints are compacted (the latest record per key stays), .audit has its own setting.
RETENTION_KINDS = ("features", "labels", "protected", "predictions", "drift", "dlq", "shadow", "lifecycle", "order")
# Members of an event body the processor itself reads: a body policy cannot name them.
_ENVELOPE = ("id", "model", "features", "label")


class PrivacyConfig(_Frozen):
    """The field policy applied at ingress, before anything is buffered (core/privacy.py).

    ``features`` and ``body`` map a feature name (inside ``features``) or a body member
    (beside ``id``/``features``/``label``) to ``allow`` (the default), ``drop``, ``hmac``
    (``"hmac:<key id>:<hex HMAC-SHA256>"`` under the key in ``key_env``) or ``protected``
    (kept from the model, the join buffer, snapshots and dead letters; a feature that
    ``[governance.fairness]`` names as an attribute still reaches fairness, as its group).
    Dead letters of events with such fields carry a redacted body unless ``dlq_raw``.

    >>> PrivacyConfig(features={"ssn": "hmac"}).needs_key
    True
    >>> PrivacyConfig(features={"ssn": "encrypt"})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for PrivacyConfig
    ...
    """

    features: dict[str, FieldAction] = Field(default_factory=dict)
    body: dict[str, FieldAction] = Field(default_factory=dict)
    key_env: str = "DRIFTLINE_PRIVACY_KEY"
    dlq_raw: bool = False
    # Topic kind -> retention.ms for `driftline topics create` (None: forever); unset kinds keep
    # the defaults of runtime/topics.py. The join buffer's is [join] max_age_ms.
    retention_ms: dict[str, int | None] = Field(default_factory=dict)

    @field_validator("body")
    @classmethod
    def _not_the_envelope(cls, value: dict[str, str]) -> dict[str, str]:
        named = sorted(set(value) & set(_ENVELOPE))
        if named:
            raise ValueError(f"governance.privacy.body names {named}: the processor reads these members "
                             "itself (a feature's policy goes in governance.privacy.features)")
        return value

    @field_validator("retention_ms")
    @classmethod
    def _known_topics(cls, value: dict[str, int | None]) -> dict[str, int | None]:
        unknown = sorted(set(value) - set(RETENTION_KINDS))
        if unknown:
            raise ValueError(f"governance.privacy.retention_ms: unknown topic kinds {unknown}; known: "
                             f"{list(RETENTION_KINDS)} (.audit: [governance.audit] retention_ms)")
        bad = sorted(k for k, v in value.items() if v is not None and v <= 0)
        if bad:
            raise ValueError(f"governance.privacy.retention_ms {bad}: give a positive number of ms (omit: the default)")
        return value

    @property
    def active(self) -> bool:
        """Does any field have a policy other than ``allow``?"""
        return any(a != "allow" for a in (*self.features.values(), *self.body.values()))

    @property
    def needs_key(self) -> bool:
        return "hmac" in (*self.features.values(), *self.body.values())

    def hmac_key(self) -> bytes | None:
        """The HMAC key (None when no field is ``hmac``); missing or short: a :class:`ConfigError`."""
        return secret_from_env(self.key_env, "privacy HMAC key") if self.needs_key else None


class GovernanceConfig(_Frozen):
    """What the model decides, made accountable: explanations, the audit log, fairness by group."""

    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    fairness: FairnessConfig = Field(default_factory=FairnessConfig)
    erasure: ErasureConfig = Field(default_factory=ErasureConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @model_validator(mode="after")
    def _privacy_fits_fairness(self) -> GovernanceConfig:
        fair = self.fairness
        protected = {n for n, a in self.privacy.features.items() if a == "protected"}
        hidden = sorted({a.name for a in fair.attributes} & {n for n, a in self.privacy.features.items()
                                                               if a in ("drop", "hmac")})
        if fair.enabled and hidden:
            raise ValueError(f"fairness attributes {hidden} are drop or hmac in governance.privacy: "
                             "make them protected (fairness sees them, the model does not) or allow")
        if fair.enabled and fair.mitigation == "reweigh" and fair.attributes and fair.attributes[0].name in protected:
            raise ValueError(f"mitigation reweigh on the protected attribute {fair.attributes[0].name!r} is "
                             "not built yet (the weights are learned with the model's features)")
        return self


class TracingConfig(_Frozen):
    """OpenTelemetry spans of the processing loop (runtime/tracing.py; the ``otel`` extra).

    Off by default. ``exporter = "otlp"`` sends spans over OTLP/HTTP as the standard
    ``OTEL_EXPORTER_OTLP_*`` environment variables say; ``sample_ratio`` samples the traces
    Driftline starts (a traced input keeps its producer's sampling decision).

    >>> TracingConfig(enabled=True, exporter="console").exporter
    'console'
    """

    enabled: bool = False
    exporter: Literal["otlp", "console", "none"] = "otlp"
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class DeploymentConfig(_Frozen):
    """Everything one model deployment needs."""

    name: str
    topic_prefix: str = "driftline"
    partitions: int = Field(default=1, gt=0)
    replication: int = Field(default=1, gt=0)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    join: JoinConfig = Field(default_factory=JoinConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    processor: ProcessorConfig = Field(default_factory=ProcessorConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    scale: ScaleConfig = Field(default_factory=ScaleConfig)
    governance: GovernanceConfig = Field(default_factory=GovernanceConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)

    @model_validator(mode="after")
    def _privacy_fits_model(self) -> DeploymentConfig:
        declared = self.model.features
        if not declared:
            return self
        side = sorted(set(self.governance.fairness.side_attributes) & set(declared))
        if side:
            raise ValueError(f"model.features declares {side}, which governance.fairness reads from the protected "
                             "side topic (source = \"protected\"), never the model: remove them from model.features")
        policy = self.governance.privacy.features
        hidden = sorted(n for n, a in policy.items() if a in ("drop", "protected") and n in declared)
        if hidden:
            raise ValueError(f"model.features declares {hidden}, which governance.privacy keeps from the "
                             "model (drop or protected): remove them from model.features")
        numeric = sorted(n for n, a in policy.items() if a == "hmac" and declared.get(n, "cat") != "cat")
        if numeric:
            raise ValueError(f"governance.privacy hashes {numeric} (hmac gives a string): declare them 'cat' "
                             "in model.features")
        return self

    @field_validator("name", "topic_prefix")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "._-" for c in value):
            raise ValueError(f"{value!r}: use letters, digits, '.', '_' or '-'")
        return value

    @property
    def topics(self) -> TopicNames:
        return TopicNames(prefix=self.topic_prefix, model=self.name)

    @property
    def group_id(self) -> str:
        return f"{self.topic_prefix}.{self.name}.processor"

    @property
    def transactional_id(self) -> str:
        """One per process: keyed members add their instance id, so a restarted member
        fences its predecessor at once (KIP-447 fences the other members' zombies)."""
        base = f"{self.topic_prefix}.{self.name}.processor"
        if self.scale.mode == "global":  # one trainer; predictors each by instance
            return f"{base}.trainer" if self.scale.role != "predictor" else f"{base}.predictor.{self.scale.instance}"
        return base if self.scale.mode == "single" else f"{base}.{self.scale.instance}"

    @property
    def predictor_group_id(self) -> str:
        """Global mode: the consumer group of the predictors (the trainer commits in ``group_id``)."""
        return f"{self.topic_prefix}.{self.name}.predictors"


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif value is not None:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, **overrides: Any) -> DeploymentConfig:
    """Read a TOML file (optional), apply overrides and the environment.

    Environment: ``DRIFTLINE_BOOTSTRAP_SERVERS`` and ``DRIFTLINE_SASL_PASSWORD``.

    >>> load_config(name="demo", kafka={"bootstrap_servers": "127.0.0.1:19092"}).kafka.bootstrap_servers
    '127.0.0.1:19092'
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    env: dict[str, Any] = {"kafka": {}}
    if bootstrap := os.environ.get("DRIFTLINE_BOOTSTRAP_SERVERS"):
        env["kafka"]["bootstrap_servers"] = bootstrap
    if password := os.environ.get("DRIFTLINE_SASL_PASSWORD"):
        env["kafka"]["sasl_password"] = password
    data = _deep_merge(_deep_merge(data, env), overrides)
    try:
        return DeploymentConfig(**data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
