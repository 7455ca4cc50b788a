"""Kafka clients configured for Driftline (the only module family importing confluent_kafka).

Every function copies the caller's settings into a fresh dict; nothing here connects
until the client is used. Every client sends librdkafka's own log lines through Driftline's
JSON logging, rate-limited (:class:`~driftline.observability.logs.LibrdkafkaLog`), instead of
raw to stderr; they are served by the client's ``poll`` (or ``consume``, ``flush``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from driftline.config import DeploymentConfig
from driftline.observability.logs import LibrdkafkaLog

__all__ = ["producer_config", "consumer_config", "make_producer", "make_consumer", "make_admin",
           "make_processor_clients"]

# Large enough for a dead letter carrying a maximal input message plus its headers.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024 + 64 * 1024


def producer_config(config: DeploymentConfig, transactional: bool) -> dict[str, Any]:
    conf = config.kafka.as_librdkafka_dict()
    conf.update(
        {
            # Same partitioner as Java clients, so co-partitioning by key holds across languages.
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.max.bytes": MAX_MESSAGE_BYTES,
            "compression.type": "lz4",
        }
    )
    if not transactional and config.processor.guarantee == "at_least_once":
        # Outputs are visible as soon as the broker has them, so the batching wait is most of
        # the latency Driftline adds: p50 at 10k ev/s 10.5 -> 7.5 ms, broker CPU unchanged.
        conf["linger.ms"] = 1
    if transactional:
        conf.update(
            {
                "transactional.id": config.transactional_id,
                "transaction.timeout.ms": 60_000,
                "retry.backoff.ms": 20,
            }
        )
    conf.update(config.kafka.producer)
    return conf


def consumer_config(config: DeploymentConfig, group_id: str | None = None) -> dict[str, Any]:
    conf = config.kafka.as_librdkafka_dict()
    conf.update(
        {
            "group.id": group_id or config.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
            # Backpressure pauses a partition, which purges its prefetched messages; with the
            # default 1000 ms librdkafka then waits a second before refetching (measured in
            # docs/reliability.md, scenario 5: throughput fell to a seventh while catching up).
            "fetch.queue.backoff.ms": 50,
            "fetch.message.max.bytes": MAX_MESSAGE_BYTES,
        }
    )
    conf.update(config.kafka.consumer)
    return conf


def make_producer(config: DeploymentConfig, transactional: bool = False, **overrides: Any) -> Producer:
    return Producer({"logger": LibrdkafkaLog(), **producer_config(config, transactional), **overrides})


def make_consumer(config: DeploymentConfig, group_id: str | None = None, **overrides: Any) -> Consumer:
    return Consumer({"logger": LibrdkafkaLog(), **consumer_config(config, group_id), **overrides})


def make_admin(config: DeploymentConfig, **overrides: Any) -> AdminClient:
    return AdminClient({"logger": LibrdkafkaLog(), **config.kafka.as_librdkafka_dict(), **overrides})


def make_processor_clients(config: DeploymentConfig,
                           on_delivery: Callable[[Any, Any], None]) -> tuple[Consumer, Producer]:
    """A processor's consumer and producer.

    Keyed mode: the consumer is a static member of the deployment's group (range assignor:
    the same partition indices of features and labels go to the same member) and a
    transaction times out before the member's session does. Exactly-once: the producer is
    transactional; at-least-once: its deliveries go to ``on_delivery`` (a failed one stops
    the processor, see runtime/unit_of_work.py).
    """
    scale = config.scale
    keyed = scale.mode == "keyed"
    if keyed:
        consumer = make_consumer(config, **{
            "group.instance.id": f"{config.group_id}.{scale.instance}",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": scale.session_timeout_ms,
        })
    else:
        consumer = make_consumer(config)
    producer_extra = {"transaction.timeout.ms": max(1000, scale.session_timeout_ms - 2000)} if keyed else {}
    if config.processor.guarantee == "exactly_once":
        producer = make_producer(config, transactional=True, **producer_extra)
    else:
        producer = make_producer(config, on_delivery=on_delivery)
    return consumer, producer
