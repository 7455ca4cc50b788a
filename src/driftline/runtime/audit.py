"""The audit log on Kafka: where the chain resumes, and reading it back to verify.

``.audit`` has one partition, written only inside the processor's transactions (an entry
with the lifecycle event it records), so its read_committed order is the chain's order.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from driftline.config import DeploymentConfig
from driftline.core.audit import AuditChain, Verification, verify
from driftline.exceptions import KafkaSetupError
from driftline.runtime.clients import make_consumer
from driftline.runtime.tail import read_committed

__all__ = ["last_entry", "last_policy", "open_chain", "read_entries", "verify_topic"]


def _read_from(config: DeploymentConfig, start: int, timeout_s: float) -> list:
    consumer = make_consumer(config, group_id=f"driftline-audit-{uuid.uuid4().hex[:8]}")
    topic = config.topics.audit
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise KafkaSetupError(f"missing topic {topic}: run `driftline topics create`")
        consumer.assign([TopicPartition(topic, 0, start)])
        messages = []
        while True:
            batch = consumer.consume(1000, timeout=timeout_s)
            if not batch:
                return messages  # idle: nothing committed beyond
            for msg in batch:
                if msg.error() is None:
                    messages.append(msg)
                elif msg.error().code() == KafkaError._PARTITION_EOF:
                    return messages
    finally:
        consumer.close()


def last_entry(config: DeploymentConfig, timeout_s: float = 5.0) -> bytes | None:
    """The value of the newest committed audit record (None: the log is empty).

    Reads a short window before the end first (control markers of transactions take offsets
    too), then the whole log if that window held no committed record.
    """
    consumer = make_consumer(config, group_id=f"driftline-audit-{uuid.uuid4().hex[:8]}")
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(config.topics.audit, 0), timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - a missing topic or no leader: say what to do
        raise KafkaSetupError(f"cannot read {config.topics.audit}: {exc}; run `driftline topics create`") from None
    finally:
        consumer.close()
    if high <= low:
        return None
    for start in (max(low, high - 64), OFFSET_BEGINNING):
        messages = _read_from(config, start, timeout_s)
        if messages:
            return messages[-1].value()
    return None


def open_chain(config: DeploymentConfig, key: bytes) -> AuditChain:
    """A chain that continues the committed log."""
    chain = AuditChain(key)
    chain.resume(last_entry(config))
    return chain


def read_entries(config: DeploymentConfig) -> list[tuple[int, bytes]]:
    """Every committed entry as (offset, value), in order."""
    return [(m.offset(), m.value()) for m in read_committed(config, config.topics.audit)]


def verify_topic(config: DeploymentConfig, key: bytes, from_any: bool = True) -> Verification:
    """Verify the committed log; by default from its oldest retained entry (retention
    removes the chain's start after ``[governance.audit] retention_ms``)."""
    return verify(read_entries(config), key, from_any)


def last_policy(config: DeploymentConfig) -> tuple[dict[str, Any] | None, bool]:
    """The record of the newest committed ``policy`` entry (None: there is none), and whether
    the log is retained from its first entry (empty, or its oldest entry has seq 0).

    Reads the whole log (lifecycle events, drift-policy actions, fairness state changes and
    policy changes: a few records a day)."""
    record, first = None, True
    for i, (_, value) in enumerate(read_entries(config)):
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue  # `audit verify` names it; it is no policy entry
        if not isinstance(body, dict):
            continue
        if i == 0:
            first = body.get("seq") == 0
        if body.get("kind") == "policy" and isinstance(body.get("record"), dict):
            record = body["record"]
    return record, first
