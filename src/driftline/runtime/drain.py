"""Draining a task: the records its merger (or its order log) releases go through the
engine, and their outputs to the collector.

Live, a task's merger hands out runs (consecutive records of one source in event-time
order, core/ordering.py); each run's merge decision is recorded in the task's order log.
While a restored task follows its order log, the runs are taken in the recorded order
instead. Either way a record below the committed offset is learned again but its outputs
are only counted, not published: they are already in the read-committed view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from driftline.config import DeploymentConfig
from driftline.core.events import InputRecord
from driftline.core.ordering import Source
from driftline.core.outputs import DeadLetter, Output
from driftline.observability.metrics import ProcessorMetrics
from driftline.runtime.checkpointer import source_key
from driftline.runtime.collector import OutputCollector
from driftline.runtime.task import Task
from driftline.runtime.tracing import NoTracing
from driftline.runtime.unit_of_work import UnitOfWork
from driftline.runtime.watermarks import Watermarks

__all__ = ["Drainer", "internal_error"]

log = logging.getLogger("driftline.processor")


def internal_error(record: InputRecord, exc: Exception) -> list[Output]:
    """Dead-letter a record the engine failed on unexpectedly, instead of crashing.

    Crashing would restart, replay and fail on the same record forever. The engine is
    deterministic, so a replay meets the same error at the same record and takes this
    same path: outputs stay exactly-once.
    """
    log.error("engine error: record dead-lettered", exc_info=exc,
              extra={"fields": {"kind": record.kind, "partition": record.partition, "offset": record.offset}})
    return [DeadLetter(record, "internal_error", repr(exc)[:500])]


class Drainer:
    """Processes the records tasks release, at most one batch per call."""

    def __init__(self, config: DeploymentConfig, metrics: ProcessorMetrics, collector: OutputCollector,
                 work: UnitOfWork, marks: Watermarks, tracing: NoTracing, clock: Callable[[], int]) -> None:
        self.config = config
        self.metrics = metrics
        self.collector = collector
        self.work = work
        self.marks = marks
        self.tracing = tracing
        self.clock = clock
        self.first_record: float | None = None  # perf_counter() of the first batch that processed records
        self._record_seconds = metrics.record_seconds.labels(config.name)
        self._label_wait = metrics.label_wait_seconds.labels(config.name)
        self._events_in: dict[tuple[str, str], Any] = {}

    def drain(self, task: Task) -> int:
        """Process the records a task's merger releases (at most one batch); return how many."""
        engine = task.engine
        assert engine is not None
        if task.follower is not None:
            return self.drain_recorded(task)
        merger = task.merger
        caught_up = self.marks.check(task.positions)
        now_ms = self.clock()
        collector, work = self.collector, self.work
        collector.begin_batch(now_ms)
        positions, committed, emit, count = task.positions, work.committed, collector.emit, collector.count
        process = engine.process
        traced = self.tracing.parents  # records with a producer's traceparent (empty: tracing off)
        counts: dict[tuple[str, str], int] = {}
        processed = 0
        first_ts = last_ts = None
        batch_start = time.perf_counter()
        limit = self.config.processor.batch_size
        # Runs: consecutive records of one source in event-time order (core/ordering.py).
        while processed < limit and (run := merger.pop_run(caught_up, now_ms, limit - processed)):
            head = run[0]
            source = (head.kind, head.partition)
            committed_at = committed.get(source, 0)
            live = 0
            for record in run:
                span = None
                if traced and (record.kind, record.partition, record.offset) in traced:
                    span, collector.trace_headers = self.tracing.start_record(record.kind, record.partition,
                                                                              record.offset)
                try:
                    outputs = process(record, now_ms)
                except Exception as exc:  # noqa: BLE001 - one poison pill must not crash-loop the stream
                    outputs = internal_error(record, exc)
                if record.offset >= committed_at:
                    live += 1
                    if not work.in_txn:
                        work.begin()
                    for output in outputs:
                        emit(output, now_ms)
                else:
                    for output in outputs:
                        count(output)
                if span is not None:
                    collector.trace_headers = None
                    span.end()
            positions[source] = run[-1].offset + 1
            processed += len(run)
            work.records += live
            if live:
                task.order.record(now_ms, head.kind, head.partition, head.offset, run[-1].offset)
                if head.kind == "labels":
                    self.observe_label_wait(task, source, run)
            if first_ts is None:
                first_ts = head.timestamp
            last_ts = run[-1].timestamp
            for mode, n in (("live", live), ("replay", len(run) - live)):
                if n:
                    counts[(head.kind, mode)] = counts.get((head.kind, mode), 0) + n
        if processed:
            if self.first_record is None:
                self.first_record = batch_start
            task.checkpointer.saw(first_ts, last_ts)
            for key, n in counts.items():
                child = self._events_in.get(key)
                if child is None:
                    child = self._events_in[key] = self.metrics.events_in.labels(self.config.name, *key)
                child.inc(n)
            collector.end_batch()
            elapsed = time.perf_counter() - batch_start
            self._record_seconds.observe(elapsed / processed)
        return processed

    def observe_label_wait(self, task: Task, source: Source, run: list[InputRecord]) -> None:
        """How long each label of a live run sat between its fetch and its learning."""
        arrivals = task.label_arrivals[source]
        now = time.monotonic()
        observe = self._label_wait.observe
        for record in run:
            while arrivals and arrivals[0][0] < record.offset:
                arrivals.popleft()
            if arrivals:
                observe(now - arrivals[0][1])

    def drain_recorded(self, task: Task) -> int:
        """Replay a task's records in the order its order log recorded; 0 while a run is not
        fetched."""
        follower, engine, merger = task.follower, task.engine, task.merger
        assert follower is not None and engine is not None
        positions, committed = task.positions, self.work.committed
        processed = 0
        while processed < self.config.processor.batch_size and (run := follower.next_run()) is not None:
            now_ms, source, first, last = run
            if source not in task.sources:  # single-partition logs of older versions: not ours
                follower.advance()
                continue
            position = positions.get(source, 0)
            if last < position:  # already in the restored version
                follower.advance()
                continue
            head = merger.head_offset(source)
            if head is None:
                break  # not fetched yet
            if first >= position and head != first:
                log.error("the order log does not match the input: merging by the event-time rules from here",
                          extra={"fields": {"source": source_key(source), "recorded_first": first, "found": head}})
                follower.clear()
                break
            records = merger.take_through(source, last)
            if records is None:
                break
            committed_at = committed.get(source, 0)
            for record in records:
                try:
                    outputs = engine.process(record, now_ms)
                except Exception as exc:  # noqa: BLE001 - the same path the recorded run took
                    outputs = internal_error(record, exc)
                if record.offset >= committed_at:  # at-least-once: past the commit, published again
                    self.work.ensure_open()
                    self.collector.begin_batch(now_ms)
                    for output in outputs:
                        self.collector.emit(output, now_ms)
                    self.work.records += 1
                else:
                    for output in outputs:
                        self.collector.count(output)
            positions[source] = records[-1].offset + 1
            processed += len(records)
            follower.advance()
        self.collector.end_batch()
        if not len(follower):
            task.follower = None
            log.info("recorded order replayed: merging by the event-time rules",
                     extra={"fields": {"task": task.name,
                                       "positions": {source_key(s): o for s, o in positions.items()}}})
        return processed
