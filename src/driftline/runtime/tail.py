"""Follow one topic of a deployment and format its messages for a terminal."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

from driftline.config import DeploymentConfig
from driftline.exceptions import KafkaSetupError
from driftline.runtime.clients import make_consumer
from driftline.runtime.topics import cluster_metadata

__all__ = ["follow", "format_message", "read_committed"]

_FIRST_ANSWER_S = 10.0  # read_committed: how long to wait for a consumer's first answer


def format_message(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None) -> str:
    """One line per message: coordinates, key, interesting headers and the JSON body."""
    head = f"{topic}[{partition}]@{offset}"
    if key is not None:
        head += f" key={key.decode(errors='replace')}"
    shown = {k: v.decode(errors="replace") for k, v in headers or [] if k.startswith("dl_")}
    if shown:
        head += " " + " ".join(f"{k}={v}" for k, v in shown.items())
    try:
        body = orjson.dumps(orjson.loads(value or b"null")).decode()
    except orjson.JSONDecodeError:
        body = repr((value or b"")[:200])
    return f"{head} {body}"


def _partitions(config: DeploymentConfig, consumer: Consumer, topic: str) -> list[int]:
    """The topic's partitions; a clear error for bad credentials or a missing topic.

    A consumer alone would retry a failed login until its timeout and then assign nothing
    to a topic that does not exist, waiting forever without a word. Asking the consumer
    itself for the topic also connects it, so an idle timeout that starts next does not
    count the connection.
    """
    cluster_metadata(config)  # fails fast on credentials and TLS
    for attempt in range(4):  # a topic created a moment ago may not be in every broker's metadata yet
        if attempt:
            time.sleep(0.5)
        described = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if described is not None and described.error is None and described.partitions:
            return sorted(described.partitions)
    raise KafkaSetupError(f"topic {topic} does not exist: run `driftline topics create`")


def follow(config: DeploymentConfig, topic: str, from_beginning: bool = False,
           max_messages: int | None = None, idle_timeout: float | None = None) -> Iterator[str]:
    """Yield formatted messages of ``topic`` until ``max_messages`` or ``idle_timeout``."""
    consumer = make_consumer(config, group_id=f"driftline-tail-{uuid.uuid4().hex[:8]}",
                             **{"enable.partition.eof": False})
    try:
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in _partitions(config, consumer, topic)])
        seen = 0
        last = time.monotonic()
        while max_messages is None or seen < max_messages:
            msg = consumer.poll(0.2)
            if msg is None:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                continue
            if msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    yield f"error: {msg.error().str()}"
                continue
            last = time.monotonic()
            seen += 1
            yield format_message(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers())
    finally:
        consumer.close()


def read_committed(config: DeploymentConfig, topic: str, idle_s: float = 3.0, limit_s: float = 600.0) -> list:
    """Every committed message of ``topic`` from the beginning, until all partitions are at
    their end (or ``idle_s`` passes without a message, or ``limit_s`` in all).

    For checks and scripts that need a topic's whole read_committed view, e.g. "every feature
    event has exactly one prediction".
    """
    consumer = make_consumer(config, group_id=f"driftline-read-{uuid.uuid4().hex[:8]}")
    try:
        partitions = _partitions(config, consumer, topic)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages, at_end = [], set()
        stop = time.monotonic() + limit_s
        # Idle means no message after the first answer: a consumer's first fetch (offsets
        # lookup, connection) can take longer than a short idle_s on a busy machine.
        deadline = time.monotonic() + max(idle_s, _FIRST_ANSWER_S)
        while time.monotonic() < min(deadline, stop) and len(at_end) < len(partitions):
            for msg in consumer.consume(5000, timeout=0.2):
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        deadline = min(deadline, time.monotonic() + idle_s)
                    continue
                at_end.discard(msg.partition())
                messages.append(msg)
                deadline = time.monotonic() + idle_s
        return messages
    finally:
        consumer.close()
