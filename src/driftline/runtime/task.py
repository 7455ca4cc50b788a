"""A task: the unit of state and of scale.

In keyed mode a task is one partition index p, the pair (features-p, labels-p): it owns
the engine that learns from that pair, the positions it has processed, its event-time
merger, its share of the order log (partition p of ``.order``) and its versions (a version
store of its own, ``<model>.task-p``). A process runs the tasks of the partitions the
consumer group gave it; when p moves, the next owner restores p's latest version, follows
p's order log to the committed offsets with outputs suppressed, and goes live: the same
recovery a single process makes after a crash.

In single mode the one task owns every partition (index ``None``), its versions are the
deployment's versions and its order log is partition 0.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import orjson

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.fairness.switch import switch_mitigation
from driftline.core.order_log import OrderFollower, OrderRecorder
from driftline.core.ordering import EventTimeMerger, Source
from driftline.core.privacy import policy_for
from driftline.runtime.checkpointer import Checkpointer
from driftline.runtime.collector import ce_headers
from driftline.runtime.order_log import read_order_log
from driftline.versions.store import VersionStore

__all__ = ["Task", "task_store_name", "task_pointer"]

log = logging.getLogger("driftline.processor")


def task_store_name(config: DeploymentConfig, index: int | None) -> str:
    """Where a task's versions live in the version store.

    >>> from driftline.config import DeploymentConfig
    >>> task_store_name(DeploymentConfig(name="elec"), None), task_store_name(DeploymentConfig(name="elec"), 3)
    ('elec', 'elec.task-3')
    """
    return config.name if index is None else f"{config.name}.task-{index}"


def task_pointer(config: DeploymentConfig, index: int, meta: dict[str, Any],
                 now_ms: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers of a keyed task's latest version on the compacted
    ``.checkpoints`` topic (key = task)."""
    body = {"task": index, "version": meta["version"], "store": task_store_name(config, index),
            "positions": meta["positions"], "examples_seen": meta["examples_seen"],
            "created_at": meta["created_at"], "instance": config.scale.instance}
    headers = ce_headers("checkpoint", f"{config.name}/task-{index}/v{meta['version']}", config.name,
                         meta["version"], now_ms)
    return str(index).encode(), orjson.dumps(body), headers


class Task:
    """The state of one task; the processor drives it."""

    def __init__(self, config: DeploymentConfig, index: int | None, sources: list[Source], store: VersionStore,
                 checkpointer: Checkpointer, engine_factory: Any = Engine) -> None:
        self.config = config
        self.index = index
        self.sources = list(sources)
        self.store = store
        self.checkpointer = checkpointer
        self.engine_factory = engine_factory
        self.engine: Engine | None = None
        self.positions: dict[Source, int] = {}
        self.merger = EventTimeMerger(self.sources, config.processor.max_idle_ms)
        self.order = OrderRecorder()
        self.follower: OrderFollower | None = None
        self.order_partition = 0 if index is None else index
        self.order_next = 0  # the order log's offset after the last entry the engine reflects
        self.order_unacked = 0
        self.snapshot_order_offset: int | None = None
        # (before, after) when the restored engine's fairness mitigation was switched to the
        # configured one (core/fairness/switch.py); the processor publishes it, then clears it.
        self.switched: tuple[str, str] | None = None
        # Per labels source: (last offset of a poll's records, when they were fetched).
        self.label_arrivals: dict[Source, collections.deque[tuple[int, float]]] = collections.defaultdict(
            collections.deque)

    @property
    def name(self) -> str:
        return "all" if self.index is None else str(self.index)

    def restore(self) -> Engine:
        """The engine of the task's latest verified version, or a fresh one."""
        latest = self.store.latest()
        if latest is None:
            self.engine = self.engine_factory(self.config)
            self.positions = {}
            self.snapshot_order_offset = None
            fairness = self.config.governance.fairness
            self.switched = ("none", fairness.mitigation) if fairness.enabled and fairness.mitigation != "none" else None
            log.info("no version found: starting a fresh model",
                     extra={"fields": {"model": self.config.name, "task": self.name}})
            return self.engine
        policy = policy_for(self.config)  # today's privacy policy and key: what the restored engine applies
        meta, state = self.store.load(latest)  # raises SnapshotIntegrityError on bad bytes
        self.engine = state["engine"]
        if isinstance(self.engine, Engine):
            self.engine.privacy = policy
            self.switched = switch_mitigation(self.engine, self.config)  # the configured mitigation from now on
        self.positions = {tuple(s) if isinstance(s, list) else s: o for s, o in state["positions"].items()}
        self.snapshot_order_offset = state.get("order_offset")  # None: a version older than the log
        log.info("restored version", extra={"fields": {"model": self.config.name, "task": self.name,
                                                       "version": latest, "examples_seen": meta["examples_seen"]}})
        return self.engine

    def follow_order_log(self, committed: dict[Source, int]) -> None:
        """Read the merge decisions recorded since the restored version was cut."""
        start = self.snapshot_order_offset
        entries, end = read_order_log(self.config, start, partition=self.order_partition)
        self.order_next = end
        if start is None:
            if any(committed.get(s, 0) for s in self.sources):
                log.warning("the restored version predates the order log: replaying by the event-time rules",
                            extra={"fields": {"model": self.config.name, "task": self.name}})
            return
        if entries:
            self.follower = OrderFollower(entries)
            log.info("following the recorded order", extra={"fields": {"task": self.name, "entries": len(entries),
                                                                       "runs": len(self.follower)}})

    def replaying(self, committed: dict[Source, int]) -> bool:
        """Still below the committed offsets, or following the order log: no cut yet (a
        version cut here would name an order log offset its positions are not at)."""
        if self.follower is not None:
            return True
        return any(self.positions.get(s, 0) < committed.get(s, 0) for s in self.sources)

    def forget_buffered(self) -> None:
        """Drop records fetched but not processed (they are fetched again from the
        positions) together with what the merger learned from them (its watermarks)."""
        stats = self.merger.stats
        self.merger = EventTimeMerger(self.sources, self.config.processor.max_idle_ms)
        self.merger.stats = stats
        self.label_arrivals.clear()

    def cut(self, trigger: str, wait: bool = True) -> dict[str, Any] | None:
        assert self.engine is not None
        return self.checkpointer.cut(self.engine, self.positions, self.order_next, trigger, wait)

    def order_delivered(self, err: Any, msg: Any) -> None:
        """Delivery report of one of this task's order log entries."""
        self.order_unacked -= 1
        if err is None:
            self.order_next = max(self.order_next, msg.offset() + 1)
