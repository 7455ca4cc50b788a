"""Follow one topic of a deployment and format its messages for a terminal.

Records print readable by default (coordinates, key, event time, the headers that matter
and the indented JSON body) or, with ``style="json"``, as their raw body, one per line.
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Iterator
from typing import Literal

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

from driftline.config import DeploymentConfig
from driftline.exceptions import KafkaSetupError
from driftline.runtime.clients import make_consumer
from driftline.runtime.topics import cluster_metadata

__all__ = ["follow", "format_message", "read_committed"]

_FIRST_ANSWER_S = 10.0  # read_committed: how long to wait for a consumer's first answer
# Headers worth reading: the model version and dead-letter reasons (dl_*), the event type.
# dl_model repeats the deployment; the other CloudEvents headers are the same on every record.
_SHOWN_HEADERS = ("ce_type",)
_HIDDEN_HEADERS = ("dl_model",)

Style = Literal["pretty", "json"]


def format_message(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None, timestamp: int | None = None,
                   style: Style = "pretty") -> str:
    """A record for a terminal: readable lines (``pretty``) or the raw body (``json``).

    >>> print(format_message("t", 0, 7, b"e1", b'{"id":"e1","label":1}', [("dl_reason", b"x")], 1000))
    t[0]@7  key=e1  time=1000 (1970-01-01T00:00:01.000Z)
      dl_reason: x
      {
        "id": "e1",
        "label": 1
      }
    >>> format_message("t", 0, 7, b"e1", b'{"id":"e1","label":1}', None, style="json")
    '{"id":"e1","label":1}'
    """
    if style == "json":
        return (value or b"null").decode(errors="replace")
    head = f"{topic}[{partition}]@{offset}"
    if key is not None:
        head += f"  key={key.decode(errors='replace')}"
    if timestamp is not None and timestamp >= 0:
        utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp // 1000)) + f".{timestamp % 1000:03d}Z"
        head += f"  time={timestamp} ({utc})"
    lines = [head]
    for k, v in headers or []:
        if (k.startswith("dl_") and k not in _HIDDEN_HEADERS) or k in _SHOWN_HEADERS:
            lines.append(f"  {k}: {v.decode(errors='replace')}")
    try:
        body = orjson.dumps(orjson.loads(value or b"null"), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        body = repr((value or b"")[:200])
    lines.extend(f"  {line}" for line in body.splitlines())
    return "\n".join(lines)


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
           max_messages: int | None = None, idle_timeout: float | None = None, last: int = 0,
           style: Style = "pretty") -> Iterator[str]:
    """Yield formatted messages of ``topic`` until ``max_messages`` or ``idle_timeout``.

    They start at the oldest message with ``from_beginning``, else with the ``last``
    records before the end of each partition (0: only new ones). Transaction markers take
    offsets too, so those are found among the last ``4 * last + 16`` offsets: fewer show
    only where aborted transactions fill that span.
    """
    consumer = make_consumer(config, group_id=f"driftline-tail-{uuid.uuid4().hex[:8]}",
                             **{"enable.partition.eof": True})
    try:
        partitions = _partitions(config, consumer, topic)
        starts = {p: OFFSET_BEGINNING if from_beginning else OFFSET_END for p in partitions}
        backlog: dict[int, collections.deque] = {}  # a partition's last records, shown once at its end
        if not from_beginning and last > 0:
            for p in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    starts[p] = max(low, high - 4 * last - 16)
                    backlog[p] = collections.deque(maxlen=last)
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
        seen = 0
        active = time.monotonic()

        def shown(msg) -> str:
            return format_message(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers(),
                                  msg.timestamp()[1], style)

        while max_messages is None or seen < max_messages:
            msg = consumer.poll(0.2)
            if msg is None:
                if idle_timeout is not None and time.monotonic() - active > idle_timeout:
                    return
                continue
            if msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    yield f"error: {msg.error().str()}"
                    continue
                for held in backlog.pop(msg.partition(), ()):  # at the end: the last records
                    if max_messages is not None and seen >= max_messages:
                        return
                    seen += 1
                    yield shown(held)
                continue
            active = time.monotonic()
            if msg.partition() in backlog:
                backlog[msg.partition()].append(msg)
                continue
            seen += 1
            yield shown(msg)
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
