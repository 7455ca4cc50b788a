"""The tasks a process runs, and how they are opened, handed out and taken back.

In single mode the processor opens its one task at start. In keyed mode the consumer
group hands out partition indices: :meth:`Membership.on_assign` opens a task per index
whose features and labels partitions both came (restored from its latest version, or
resumed from memory when nobody committed past it meanwhile), :meth:`Membership.on_revoke`
commits what was processed and keeps the tasks in case they come back, and
:meth:`Membership.on_lost` voids what was not committed.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.ordering import EventTimeMerger, Source
from driftline.runtime.checkpointer import source_key
from driftline.runtime.task import Task
from driftline.runtime.unit_of_work import UnitOfWork, retrying
from driftline.runtime.watermarks import Watermarks

__all__ = ["Membership"]

log = logging.getLogger("driftline.processor")


class Membership:
    """The table of running tasks (``tasks`` by index, ``task_of`` by source) and the group
    callbacks that change it.

    What it needs from the processor comes as callables: ``new_task(index, sources)``
    builds a keyed task (with the processor's checkpointer), ``commit(final)`` commits
    the open unit of work, ``switched(engine, before, after)`` publishes a mitigation
    switch, ``assigned()`` is told each time the group gave this member its tasks and
    ``forget(source)`` each time a source leaves with its task (backpressure).
    """

    def __init__(self, config: DeploymentConfig, kinds: tuple[str, ...], topic_of: dict[str, str],
                 work: UnitOfWork, marks: Watermarks, forget: Callable[[Source], None],
                 new_task: Callable[[int, list[Source]], Task], commit: Callable[[bool], None],
                 switched: Callable[[Engine, str, str], None], assigned: Callable[[], None]) -> None:
        self.config = config
        self.keyed = config.scale.mode == "keyed"
        self.kinds = kinds
        self.topic_of = topic_of
        self.kind_of = {v: k for k, v in topic_of.items()}
        self.work = work
        self.marks = marks
        self.forget = forget
        self.new_task = new_task
        self.commit = commit
        self.switched = switched
        self.assigned = assigned
        self.tasks: dict[int | None, Task] = {}
        self.task_of: dict[Source, Task] = {}
        self.suspended: dict[int, Task] = {}  # keyed: tasks revoked, kept while nobody else moved them
        self.assignments = 0  # keyed: rebalances that gave this member its partitions
        self.closing = False  # set when the processor closes its consumer: callbacks do nothing

    def committed_offsets(self, consumer: Any, sources: list[Source]) -> dict[Source, int]:
        """The group's committed offsets of ``sources``, also recorded in the unit of work."""
        tps = [TopicPartition(self.topic_of[k], p) for k, p in sources]
        out = {}
        for tp in retrying(lambda: consumer.committed(tps, timeout=10), deadline_s=120.0):
            source = (self.kind_of[tp.topic], tp.partition)
            self.work.committed.pop(source, None)
            if tp.offset >= 0:
                out[source] = self.work.committed[source] = tp.offset
        return out

    def open_single(self, consumer: Any, task: Task, n_partitions: int) -> None:
        """Single mode: the one task takes every partition of every input kind."""
        sources = [(k, p) for k in self.kinds for p in range(n_partitions)]
        task.sources = sources
        task.merger = EventTimeMerger(sources, self.config.processor.max_idle_ms)
        committed = self.committed_offsets(consumer, sources)
        consumer.assign([TopicPartition(self.topic_of[k], p, task.positions.get((k, p), OFFSET_BEGINNING))
                         for k, p in sources])
        self.open([task], committed)

    def open(self, tasks: list[Task], committed: dict[Source, int], resumed: frozenset[int] = frozenset()) -> None:
        """Make tasks ready: register their sources; those just restored (not ``resumed``
        from memory) follow their order logs and start their checkpoint cadence."""
        for task in tasks:
            self.tasks[task.index] = task
            for source in task.sources:
                self.task_of[source] = task
            self.marks.add(task.sources)
            if task.index in resumed:
                log.info("task resumed", extra={"fields": {"task": task.name}})
                continue
            task.follow_order_log(committed)
            assert task.engine is not None
            if task.index is None:  # single mode: the deployment's versions
                if task.store.latest() is None:
                    task.cut("initial")
                else:
                    task.checkpointer.announce(task.store.meta(task.store.latest()))
            if task.switched is not None and task.index is None:  # a mitigation switched on or off
                self.switched(task.engine, *task.switched)
                task.switched = None
            task.checkpointer.start(task.engine, task.positions)
            log.info("processing", extra={"fields": {
                "model": self.config.name, "task": task.name,
                "resume": {source_key(s): o for s, o in task.positions.items()},
                "committed": {source_key(s): committed[s] for s in task.sources if s in committed}}})

    # -- keyed mode: the group hands out tasks ----------------------------------------------

    def on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        kinds: dict[int, set[str]] = collections.defaultdict(set)
        for tp in partitions:
            kinds[tp.partition].add(self.kind_of[tp.topic])
        indices = sorted(i for i, k in kinds.items() if k == set(self.kinds))
        if len(indices) != len(kinds):
            log.error("partitions assigned without their pair: not processed (use the range assignor and "
                      "co-partitioned topics)", extra={"fields": {"unpaired": sorted(set(kinds) - set(indices))}})
        sources = [(k, i) for i in indices for k in self.kinds]
        committed = self.committed_offsets(consumer, sources)
        ready, resumed = [], set()
        for index in indices:
            pair = [(k, index) for k in self.kinds]
            task = self.suspended.pop(index, None)
            # Kept in memory since its revocation: still exact if nobody committed past it.
            if task is not None and all(task.positions.get(s, 0) == committed.get(s, 0) for s in pair):
                resumed.add(index)
            else:
                task = self.new_task(index, pair)
                task.restore()
            ready.append(task)
        self.open(ready, committed, frozenset(resumed))
        self.suspended.clear()  # whatever was not given back is someone else's now
        self.assignments += 1
        self.assigned()
        consumer.assign([TopicPartition(self.topic_of[k], p, self.tasks[p].positions.get((k, p), OFFSET_BEGINNING))
                         for k, p in sources])
        log.info("tasks assigned", extra={"fields": {"instance": self.config.scale.instance, "tasks": indices}})

    def on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Commit what is processed (bounded by the commit's own timeouts), keep the tasks
        in memory in case they come back unchanged; never cut a version here."""
        if self.closing:
            return
        if self.work.pending:
            try:
                self.work.ensure_open()
                self.commit(True)  # at-least-once: flush and commit every ticket
            except KafkaException as exc:
                log.warning("commit on revoke failed: the tasks' uncommitted work is dropped",
                            extra={"fields": {"error": str(exc)}})
                self.work.abort()
                self.drop_tasks(keep=False)
                return
        self.drop_tasks(keep=True)

    def on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """The group moved our partitions without us: what we did not commit is void."""
        if self.closing:
            return
        self.work.abort()
        self.drop_tasks(keep=False)
        log.warning("partitions lost: open work aborted", extra={"fields": {"instance": self.config.scale.instance}})

    def drop_tasks(self, keep: bool) -> None:
        """Forget every running task; with ``keep``, those not following an order log are
        suspended (kept in memory, their unprocessed records dropped)."""
        for index, task in list(self.tasks.items()):
            task.checkpointer.wait()
            if keep and task.follower is None:
                task.forget_buffered()
                self.suspended[index] = task
            self.marks.remove(task.sources)
            for source in task.sources:
                self.task_of.pop(source, None)
                self.forget(source)
                self.work.committed.pop(source, None)
        self.tasks.clear()

    # -- what the metrics read ---------------------------------------------------------------

    def progress(self) -> int:
        return sum(t.engine.counters.predictions + t.engine.n_learned for t in self.tasks.values() if t.engine)

    def state(self) -> dict[str, Any]:
        """The running tasks' engines summed up (one task's, beyond the sums, in single mode)."""
        engines = [t.engine for t in self.tasks.values() if t.engine is not None]
        if not engines:
            return {}
        first = engines[0]
        merge: dict[str, int] = collections.Counter()
        for task in self.tasks.values():
            merge.update(vars(task.merger.stats))
        return {
            "version": first.version if not self.keyed else max(e.version for e in engines),
            "n_learned": sum(e.n_learned for e in engines),
            "scores": first.scores.values() if len(engines) == 1 else {},
            "pending_features": sum(e.join.pending_features for e in engines),
            "pending_labels": sum(e.join.pending_labels for e in engines),
            "expired_features": sum(e.counters.expired_features for e in engines),
            "expired_labels": sum(e.counters.expired_labels for e in engines),
            "unsampled": sum(e.counters.unsampled for e in engines),
            "lag": dict(self.marks.lag),
            "merge": dict(merge),
            "tasks": len(self.tasks),
            "served": {v: s.values() for v, s in first.arena.served.items()}
            if not self.keyed and first.arena is not None else {},
            "data_drift": first.data_watch.last if not self.keyed and first.data_watch is not None else {},
            "fairness": first.fairness.gauges() if not self.keyed and first.fairness is not None else None,
            "keyed": self._keyed_state() if self.keyed else None,
        }

    def _keyed_state(self) -> dict[str, Any]:
        """Per task its keys' counts, and the busiest keys over this process's tasks."""
        engines = {i: t.engine for i, t in self.tasks.items() if t.engine is not None}
        top = sorted((kc for e in engines.values() for kc in e.top_keys()), key=lambda kc: (-kc[1], kc[0]))
        return {"tasks": {i: e.key_stats() for i, e in engines.items()}, "top": top[:self.config.scale.top_keys]}
