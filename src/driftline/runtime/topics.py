"""Provision and check the topics of a deployment with the AdminClient.

Every entry point first fetches cluster metadata with :func:`cluster_metadata`, which fails
fast with a :class:`KafkaSetupError` naming the user and bootstrap servers (never the
password) when authentication or the TLS handshake fails, instead of librdkafka's endless
reconnect loop and a generic "transport failure" after the timeout.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ClusterMetadata, NewTopic

from driftline.config import DeploymentConfig
from driftline.exceptions import KafkaSetupError
from driftline.runtime.clients import MAX_MESSAGE_BYTES, make_admin

__all__ = ["topic_specs", "create_topics", "partition_counts", "check_copartitioned", "cluster_metadata"]

WEEK_MS = 7 * 24 * 3600 * 1000

_AUTH_ERRORS = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}
_TLS_ERRORS = {KafkaError._SSL}


def _redact(text: str, config: DeploymentConfig) -> str:
    """``text`` without the SASL password (librdkafka does not echo it; this makes sure)."""
    password = config.kafka.sasl_password.get_secret_value() if config.kafka.sasl_password else ""
    return text.replace(password, "***") if password else text


def cluster_metadata(config: DeploymentConfig, timeout: float = 10.0) -> ClusterMetadata:
    """The cluster's metadata; a clear :class:`KafkaSetupError` when it cannot be had.

    Authentication and TLS failures are reported within about a second (librdkafka reports
    them through ``error_cb`` and would otherwise retry until the timeout); an unreachable
    cluster after ``timeout`` seconds. librdkafka's own log lines of this client go to the
    ``driftline.kafka`` logger (JSON, secrets redacted, rate-limited: runtime/clients.py).
    """
    kafka = config.kafka
    errors: list[KafkaError] = []
    admin = make_admin(config, error_cb=errors.append)
    deadline = time.monotonic() + timeout
    last: KafkaError | None = None
    while True:
        try:
            return admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except KafkaException as exc:
            last = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        admin.poll(0)  # serves error_cb and the log callback
        if last is not None:
            errors.append(last)
        where = f"at bootstrap {kafka.bootstrap_servers} (security.protocol={kafka.security_protocol or 'PLAINTEXT'}"
        where += f", sasl.mechanism={kafka.sasl_mechanism})" if kafka.sasl_mechanism else ")"
        for err in errors:
            if err.code() in _AUTH_ERRORS:
                raise KafkaSetupError(
                    f"Kafka authentication failed for user {kafka.sasl_username!r} {where}: "
                    f"{_redact(err.str(), config)}; check [kafka] sasl_username and DRIFTLINE_SASL_PASSWORD"
                )
            if err.code() in _TLS_ERRORS:
                raise KafkaSetupError(
                    f"TLS handshake with Kafka failed {where}: {_redact(err.str(), config)}; "
                    "check [kafka] ssl_ca_location"
                )
        if time.monotonic() >= deadline:
            detail = _redact(last.str(), config) if last is not None else "no answer"
            raise KafkaSetupError(f"cannot reach Kafka {where} within {timeout:g}s: {detail}")
        errors.clear()


def topic_specs(config: DeploymentConfig) -> list[NewTopic]:
    """What each topic should look like: partitions, replication and configs."""
    names = config.topics
    common = {"min.insync.replicas": str(min(2, config.replication))}
    specific = {
        names.features: {"retention.ms": str(WEEK_MS)},
        names.labels: {"retention.ms": str(WEEK_MS)},
        names.protected: {"retention.ms": str(WEEK_MS)},
        names.predictions: {"retention.ms": str(WEEK_MS)},
        names.drift: {"retention.ms": str(-1)},
        names.versions: {"cleanup.policy": "compact"},
        names.dlq: {"retention.ms": str(4 * WEEK_MS), "max.message.bytes": str(MAX_MESSAGE_BYTES)},
        names.shadow: {"retention.ms": str(WEEK_MS)},
        names.lifecycle: {"retention.ms": str(-1)},
        # Recovery reads it from the last version's cut on; a week covers any sane cadence.
        names.order: {"retention.ms": str(WEEK_MS)},
        names.checkpoints: {"cleanup.policy": "compact"},
        # Art. 19 of the EU AI Act: at least six months by default ([governance.audit] retention_ms).
        names.audit: {"retention.ms": str(config.governance.audit.retention_ms or -1)},
    }
    # [governance.privacy] retention_ms overrides per topic kind (None: forever).
    for kind, ms in config.governance.privacy.retention_ms.items():
        specific[getattr(names, kind)]["retention.ms"] = str(-1 if ms is None else ms)
    # The order log has a partition per task (keyed mode: task p writes partition p).
    partitioned = (names.features, names.labels, names.protected, names.predictions, names.shadow, names.order)
    return [
        NewTopic(
            name,
            num_partitions=config.partitions if name in partitioned else 1,
            replication_factor=config.replication,
            config={**common, **conf},
        )
        for name, conf in specific.items()
    ]


def create_topics(config: DeploymentConfig, timeout: float = 30.0) -> dict[str, str]:
    """Create missing topics; return topic -> ``created`` or ``exists``, then verify."""
    cluster_metadata(config, min(timeout, 10.0))  # fail fast on credentials and TLS
    admin = make_admin(config)
    result: dict[str, str] = {}
    futures = admin.create_topics(topic_specs(config), operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result()
            result[name] = "created"
        except KafkaException as exc:
            if exc.args[0].name() == "TOPIC_ALREADY_EXISTS":
                result[name] = "exists"
            else:
                raise KafkaSetupError(f"cannot create {name}: {exc.args[0].str()}") from exc
    # A topic just created can be missing from the metadata for a moment: wait for it.
    deadline = time.monotonic() + timeout
    while True:
        try:
            check_copartitioned(config, timeout)
            return result
        except KafkaSetupError as exc:
            if not str(exc).startswith("missing topics") or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def partition_counts(config: DeploymentConfig, timeout: float = 10.0) -> dict[str, int]:
    """Partitions per topic of the deployment (missing topics are left out)."""
    metadata = cluster_metadata(config, timeout)
    wanted = set(config.topics.all().values())
    return {
        name: len(meta.partitions)
        for name, meta in metadata.topics.items()
        if name in wanted and meta.error is None
    }


def check_copartitioned(config: DeploymentConfig, timeout: float = 10.0, keyed: bool = False) -> int:
    """Features and labels (and the protected side topic when fairness reads it) must exist
    with the same partition count; return it. Keyed mode also needs a partition of ``.order``
    per task and the ``.checkpoints`` topic."""
    counts = partition_counts(config, timeout)
    features, labels = config.topics.features, config.topics.labels
    inputs = (labels,) + ((config.topics.protected,) if config.governance.fairness.side_attributes else ())
    for other in inputs:
        if features in counts and other in counts and counts[features] != counts[other]:
            raise KafkaSetupError(
                f"{features} has {counts[features]} partitions but {other} has {counts[other]}: "
                f"features and {other.rsplit('.', 1)[-1]} must be co-partitioned"
            )
    needed = (features, *inputs, config.topics.order) + ((config.topics.checkpoints,) if keyed else ())
    missing = [t for t in needed if t not in counts]
    if missing:
        raise KafkaSetupError(f"missing topics {missing}: run `driftline topics create`")
    if keyed and counts[config.topics.order] < counts[features]:
        raise KafkaSetupError(
            f"{config.topics.order} has {counts[config.topics.order]} partitions, keyed mode needs one per task "
            f"({counts[features]}): it was created before keyed mode existed; recreate it with that many partitions")
    return counts[features]
