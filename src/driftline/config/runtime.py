"""How the deployment runs: the processor loop, scaling over processes and keys, tracing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from driftline.config.base import _Frozen


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
