"""Backpressure: a partition whose buffer is full is paused while another one catches up.

The event-time merger (core/ordering.py) can only release a record once every source
has shown it is past that time, so one partition far ahead of the others would buffer
without bound. Its fetching is paused at ``max_buffered_per_partition`` buffered
records and resumed below half of that.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import TopicPartition

from driftline.config import DeploymentConfig
from driftline.core.ordering import Source
from driftline.observability.metrics import ProcessorMetrics
from driftline.runtime.checkpointer import source_key
from driftline.runtime.task import Task

__all__ = ["Backpressure"]

log = logging.getLogger("driftline.processor")


class Backpressure:
    """Pauses and resumes the consumer's partitions by how much their task buffered."""

    def __init__(self, config: DeploymentConfig, topic_of: dict[str, str], metrics: ProcessorMetrics) -> None:
        self.config = config
        self.topic_of = topic_of
        self.metrics = metrics
        self.paused: set[Source] = set()

    def apply(self, consumer: Any, task_of: dict[Source, Task]) -> None:
        """Pause partitions whose buffer is full while another one catches up."""
        cap = self.config.processor.max_buffered_per_partition
        for source, task in task_of.items():
            n = task.merger.buffered(source)
            if n < cap // 2 and source not in self.paused:
                continue  # the common case, once per source per poll: nothing to build
            tp = TopicPartition(self.topic_of[source[0]], source[1])
            if n >= cap and source not in self.paused:
                consumer.pause([tp])
                self.paused.add(source)
                self.metrics.backpressure_pauses.labels(self.config.name, source_key(source)).inc()
                log.info("backpressure: partition paused",
                         extra={"fields": {"source": source_key(source), "buffered": n, "cap": cap}})
            elif n < cap // 2 and source in self.paused:
                consumer.resume([tp])
                self.paused.discard(source)
                self.metrics.backpressure_resumes.labels(self.config.name, source_key(source)).inc()
                log.info("backpressure: partition resumed",
                         extra={"fields": {"source": source_key(source), "buffered": n, "cap": cap}})

    def forget(self, source: Source) -> None:
        """A source whose task left this process (its partition is no longer assigned)."""
        self.paused.discard(source)
