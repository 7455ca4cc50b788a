"""A predictor's served quality (``[scale] served_labels``, core/served.py): the labels of
the partitions it owns, joined with the predictions it served.

The predictor reads ``.labels`` of the partitions it owns (co-partitioned with
``.features``), from the group's committed labels offset, and joins a label once the
prediction for its event id was served here, or, failing that, once its partition's
features are served past the label's time (or served to the partition's end), so a label
read ahead does not overtake its prediction. The labels offsets commit in the same
transaction as the predictions; served drift events go to ``.drift`` in it.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import BadEventError, decode_label
from driftline.core.served import ServedQuality, served_drift_events
from driftline.observability.global_metrics import ServedMetrics
from driftline.runtime.clients import make_consumer
from driftline.runtime.collector import ce_headers

__all__ = ["ServedLabels", "Record"]

log = logging.getLogger("driftline.predictor")

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


class ServedLabels:
    """Labels of the owned partitions, their queue and the served-quality state."""

    def __init__(self, config: DeploymentConfig, engine: Engine, registry: CollectorRegistry) -> None:
        self.config = config
        self.topic = config.topics.labels
        self.engine = engine
        self.quality = ServedQuality(engine.task, config.drift.detectors, config.drift.grace_examples,
                                     config.scale.served_buffer)
        self.metrics = ServedMetrics(config.name, engine.task, registry)
        self.consumer: Any = None  # the labels consumer, while running
        self.queue: dict[int, collections.deque[Any]] = {}  # labels fetched, waiting for their features
        self._paused: set[int] = set()
        self._published: dict[int, dict[str, Any]] = {}

    def open(self) -> None:
        """The labels consumer, assigned by hand following ``.features`` (see :meth:`assign`)."""
        scale = self.config.scale
        self.consumer = make_consumer(self.config, group_id=f"{self.config.predictor_group_id}.labels.{scale.instance}")

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None

    @property
    def waiting(self) -> bool:
        """Whether a fetched label is still to be joined."""
        return any(self.queue.values())

    def assign(self, features: Any, assigned: set[int]) -> None:
        """Labels of the partitions owned, from the group's committed labels offset."""
        for partition in set(self.quality.partitions) - assigned:
            self.quality.forget(partition)  # moved away: its labels go to its new owner
        wanted = [TopicPartition(self.topic, p) for p in sorted(assigned)]
        committed = features.committed(wanted, timeout=30) if wanted else []
        self.consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                              for tp in committed])

    def revoke(self, partitions: list[int]) -> None:
        """Forget what was fetched (reassigned from the committed offsets: the range assignor revokes all)."""
        for partition in partitions:
            self.queue.pop(partition, None)
        self.consumer.unassign()
        self._paused.clear()

    def served(self, partition: int, event_id: str, prediction: Any, version: int) -> None:
        self.quality.served(partition, event_id, prediction, version)

    def poll(self, assigned: set[int]) -> None:
        """Fetch labels; a partition with a few batches waiting is paused (the rest waits in Kafka)."""
        batch = self.config.processor.batch_size
        for partition in [p for p in self._paused if len(self.queue.get(p, ())) < 5 * batch]:
            self.consumer.resume([TopicPartition(self.topic, partition)])
            self._paused.discard(partition)
        for m in self.consumer.consume(batch, 0):
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(m.error())
                continue
            if m.partition() in assigned:
                try:
                    label = decode_label(m.value(), self.engine.schema, self.config.name)
                except BadEventError:
                    label = None  # the trainer dead-letters it
                self.queue.setdefault(m.partition(), collections.deque()).append((m, label))
        for partition, queue in self.queue.items():
            if len(queue) >= 10 * batch and partition not in self._paused:
                self.consumer.pause([TopicPartition(self.topic, partition)])
                self._paused.add(partition)

    def join(self, served_up_to: dict[int, int], drained: Any, drift: list[Record], now_ms: int,
             counts: collections.Counter[str]) -> dict[int, int]:
        """Join the labels whose prediction was served here, or whose partition's features
        are served past their time (``served_up_to``: event time of the last features served
        per partition) or to the end (``drained(partition)``: their prediction was not
        served here); the served drift events go into ``drift``. The labels offsets to commit."""
        name, instance, quality = self.config.name, self.config.scale.instance, self.quality
        offsets: dict[int, int] = {}
        for partition, queue in self.queue.items():
            up_to = served_up_to.get(partition, float("-inf"))
            at_end: bool | None = None  # asked of the broker at most once per partition and batch
            while queue:
                m, label = queue[0]
                if not (label is None or quality.holds(partition, label.id) or m.timestamp()[1] <= up_to):
                    if at_end is None:
                        at_end = drained(partition)
                    if not at_end:
                        break
                queue.popleft()
                offsets[partition] = m.offset() + 1
                if label is None:
                    counts["bad_labels"] += 1
                    continue
                join = quality.label(partition, label.id, label.label)
                if join is None or not join.detections:
                    continue
                for event in served_drift_events(join, name, instance, m.offset(), m.timestamp()[1], now_ms):
                    headers = ce_headers("drift", event.id, name, event.model_version, now_ms)
                    drift.append((event.id.encode(), orjson.dumps(event.body(), option=orjson.OPT_NON_STR_KEYS),
                                  headers))
                    log.warning("served drift", extra={"fields": {"model": name, "partition": partition,
                                                                  "detector": event.detector, "id": event.id}})
        return offsets

    def publish(self, partitions: set[int]) -> None:
        """The served-quality gauges of ``partitions`` (after their transaction committed)."""
        summaries = self.quality.summary()
        for partition in partitions & set(summaries):
            summary = summaries[partition]
            self.metrics.update(partition, summary, self._published.get(partition, {}))
            self._published[partition] = summary

    def summary(self) -> dict[str, Any]:
        return {str(p): q for p, q in self.quality.summary().items()}
