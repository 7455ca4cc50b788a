"""Writing the order log topic (``<prefix>.<model>.order``) inside the processor's
transactions.

core/order_log.py explains what the entries hold and runtime/order_log.py reads them back
on recovery. Each task's entries go to its own partition (single mode: 0, keyed task p:
p) in the unit of work whose outputs they ordered; their delivery reports move the task's
``order_next``, the offset a version cut records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from driftline.runtime.task import Task
from driftline.runtime.unit_of_work import UnitOfWork

__all__ = ["OrderWriter"]


class OrderWriter:
    """Writes the running tasks' merge decisions to their order log partitions.

    ``tasks`` is the processor's table of running tasks (read here, never changed); the
    producer is attached when the processor starts.
    """

    def __init__(self, topic: str, work: UnitOfWork, exactly_once: bool, tasks: dict[int | None, Task]) -> None:
        self.topic = topic
        self.work = work
        self.exactly_once = exactly_once
        self.tasks = tasks
        self.producer: Any = None

    def attach(self, producer: Any) -> None:
        self.producer = producer

    def write(self) -> None:
        """Add each task's merge decisions to its order log partition (inside the transaction)."""
        for task in self.tasks.values():
            if task.order:
                self.work.produce(self.topic, None, task.order.flush(), partition=task.order_partition,
                                  on_delivery=self._delivered(task))
                task.order_unacked += 1

    def _delivered(self, task: Task) -> Callable[[KafkaError | None, Any], None]:
        def delivered(err: KafkaError | None, msg: Any) -> None:
            task.order_delivered(err, msg)
            if not self.exactly_once:
                self.work.on_delivery(err, msg)
        return delivered

    def flush(self) -> None:
        """Before a cut: serve the delivery reports of committed order entries (their offsets)."""
        if any(task.order_unacked for task in self.tasks.values()):
            self.producer.flush(30)
