"""Reading the order log topic (``<prefix>.<model>.order``) on recovery.

The entries are written by the processor inside its transactions (core/order_log.py
explains what they hold); this reads the committed ones from an offset to the end.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from driftline.config import DeploymentConfig
from driftline.exceptions import KafkaSetupError
from driftline.runtime.clients import make_consumer

__all__ = ["read_order_log"]


def read_order_log(config: DeploymentConfig, start: int | None, timeout_s: float = 60.0,
                   partition: int = 0) -> tuple[list[bytes], int]:
    """The committed entries of one partition from offset ``start`` on, and the offset
    after the partition's end (single mode uses partition 0, keyed task p partition p).

    With ``start=None`` only the end is looked up (nothing to follow).
    """
    topic = config.topics.order
    consumer = make_consumer(config, group_id=f"{config.group_id}.order-{uuid.uuid4().hex[:8]}")
    tp = TopicPartition(topic, partition)
    try:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
        except KafkaException as exc:
            raise KafkaSetupError(f"cannot read {topic}: {exc.args[0].str()}; run `driftline topics create`") from exc
        if start is None or start >= high:
            return [], max(high, start or 0)
        consumer.assign([TopicPartition(topic, partition, max(start, low))])
        entries: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() > deadline:
                raise KafkaSetupError(f"reading {topic} from offset {start} did not reach its end in {timeout_s:g}s")
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    return entries, max(msg.offset(), start)
                if err.fatal():
                    raise KafkaException(err)
                continue
            entries.append(msg.value())
    finally:
        consumer.close()
