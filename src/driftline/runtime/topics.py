"""Provision and check the topics of a deployment with the AdminClient."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from driftline.config import DeploymentConfig
from driftline.exceptions import KafkaSetupError
from driftline.runtime.clients import MAX_MESSAGE_BYTES, make_admin

__all__ = ["topic_specs", "create_topics", "partition_counts", "check_copartitioned"]

WEEK_MS = 7 * 24 * 3600 * 1000


def topic_specs(config: DeploymentConfig) -> list[NewTopic]:
    """What each topic should look like: partitions, replication and configs."""
    names = config.topics
    common = {"min.insync.replicas": str(min(2, config.replication))}
    specific = {
        names.features: {"retention.ms": str(WEEK_MS)},
        names.labels: {"retention.ms": str(WEEK_MS)},
        names.predictions: {"retention.ms": str(WEEK_MS)},
        names.drift: {"retention.ms": str(-1)},
        names.versions: {"cleanup.policy": "compact"},
        names.dlq: {"retention.ms": str(4 * WEEK_MS), "max.message.bytes": str(MAX_MESSAGE_BYTES)},
        names.shadow: {"retention.ms": str(WEEK_MS)},
        names.lifecycle: {"retention.ms": str(-1)},
    }
    return [
        NewTopic(
            name,
            num_partitions=config.partitions if name in (names.features, names.labels, names.predictions, names.shadow) else 1,
            replication_factor=config.replication,
            config={**common, **conf},
        )
        for name, conf in specific.items()
    ]


def create_topics(config: DeploymentConfig, timeout: float = 30.0) -> dict[str, str]:
    """Create missing topics; return topic -> ``created`` or ``exists``, then verify."""
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
    check_copartitioned(config, timeout)
    return result


def partition_counts(config: DeploymentConfig, timeout: float = 10.0) -> dict[str, int]:
    """Partitions per topic of the deployment (missing topics are left out)."""
    metadata = make_admin(config).list_topics(timeout=timeout)
    wanted = set(config.topics.all().values())
    return {
        name: len(meta.partitions)
        for name, meta in metadata.topics.items()
        if name in wanted and meta.error is None
    }


def check_copartitioned(config: DeploymentConfig, timeout: float = 10.0) -> int:
    """Features and labels must exist with the same partition count; return it."""
    counts = partition_counts(config, timeout)
    features, labels = config.topics.features, config.topics.labels
    missing = [t for t in (features, labels) if t not in counts]
    if missing:
        raise KafkaSetupError(f"missing topics {missing}: run `driftline topics create`")
    if counts[features] != counts[labels]:
        raise KafkaSetupError(
            f"{features} has {counts[features]} partitions but {labels} has {counts[labels]}: "
            "features and labels must be co-partitioned"
        )
    return counts[features]
