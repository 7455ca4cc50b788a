"""The processor: Kafka in, engine, Kafka out, exactly once.

How exactly-once works here:

* Outputs of a batch and the input positions it consumed are committed in one Kafka
  transaction, so the committed consumer offsets say precisely which inputs have had
  their outputs published.
* Every so often (``checkpoint.every_examples`` / ``every_seconds``, on drift, at
  shutdown) the whole engine is pickled, signed and stored as a version together with the
  input positions it reflects.
* Every unit of work also writes the merge decisions it made (which source, which
  offsets, in which order: core/order_log.py) to the ``.order`` topic, in the same
  transaction. Live, those decisions depend on when records arrived.
* On start, the latest version is restored and the records from its positions are
  replayed in the order the order log recorded since that version was cut (the order the
  killed run used), then by the event-time rules. Inputs below the committed offsets are
  re-learned but their outputs are not published again; from the committed offsets on,
  processing is live.

So a crash at any moment loses nothing and learns nothing twice: the model is rebuilt to
the exact state it had, and every output appears once in the read-committed view.

The state is held by tasks (runtime/task.py). In single mode one task owns every
partition. In keyed mode (``[scale] mode = "keyed"``) the process is a static member of
the deployment's consumer group (range assignor: the same partition indices of features
and labels go to the same member), runs a task per partition index it owns, and a task
that moves is recovered by its next owner exactly as a crashed process recovers.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.keyed import KeyedEngine
from driftline.core.ordering import EventTimeMerger, Source
from driftline.core.outputs import DeadLetter, Output
from driftline.exceptions import ConfigError, FencedError, LifecycleError
from driftline.observability.metrics import ProcessorMetrics
from driftline.runtime.checkpointer import Checkpointer, source_key
from driftline.runtime.clients import make_consumer, make_producer
from driftline.runtime.collector import OutputCollector, ce_headers
from driftline.runtime.lifecycle import LifecycleRuntime, lifecycle_meta
from driftline.runtime.liveness import LivenessMember
from driftline.runtime.task import Task, task_store_name
from driftline.runtime.topics import check_copartitioned
from driftline.runtime.tracing import make_tracing
from driftline.runtime.unit_of_work import EXIT_HUNG, HANG_TIMEOUT_S, UnitOfWork, fenced, retrying
from driftline.runtime.watermarks import Watermarks
from driftline.versions.store import VersionStore

__all__ = ["Processor", "EXIT_FENCED", "EXIT_HUNG", "HANG_TIMEOUT_S"]

log = logging.getLogger("driftline.processor")

# Another instance of the deployment initialised the same transactional.id: this one was
# fenced (it can publish nothing more) and stops with EXIT_FENCED; a supervisor should not
# restart it while the other instance runs (docs/reliability.md, "Fencing").
EXIT_FENCED = 3


def _now_ms() -> int:
    return int(time.time() * 1000)


class Processor:
    """Runs one deployment (or, in keyed mode, one member of it): restore, replay, then
    process live until stopped.

    It owns the loop and the consumer; the parts it hands work to are its attributes:
    ``work`` (runtime/unit_of_work.py), ``collector`` (runtime/collector.py), the tasks
    (runtime/task.py, each with its checkpointer) and ``lifecycle`` (runtime/lifecycle.py).
    """

    def __init__(
        self,
        config: DeploymentConfig,
        signing_key: bytes,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], int] = _now_ms,
        engine_factory: Callable[[DeploymentConfig], Any] | None = None,
        tracer_provider: Any = None,
    ) -> None:
        self.config = config
        self.topics = config.topics
        self.keyed = config.scale.mode == "keyed"
        if self.keyed and not config.scale.instance:
            raise ConfigError("keyed mode needs an instance id: driftline run --instance ID (or [scale] instance)")
        self._signing_key = signing_key
        # Keyed mode: a model per entity key inside each task (core/keyed.py).
        self.engine_factory = engine_factory or (KeyedEngine if self.keyed else Engine)
        self.store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
        self.exactly_once = config.processor.guarantee == "exactly_once"
        self.metrics = ProcessorMetrics(config.name, registry)
        self.clock = clock
        self.stopping = threading.Event()
        self._topic_of = {"features": self.topics.features, "labels": self.topics.labels}
        # The input kinds a task reads; the fairness side topic only when an attribute comes from it.
        self._kinds: tuple[str, ...] = ("labels", "features")
        if config.governance.fairness.side_attributes:
            self._topic_of["protected"] = self.topics.protected
            self._kinds = ("protected", "labels", "features")
        self._kind_of = {v: k for k, v in self._topic_of.items()}
        self.work = UnitOfWork(self._topic_of, self.exactly_once, self.metrics.batch_seconds.labels(config.name))
        self.work.before_commit = self._write_order
        self.collector = OutputCollector(config, self.metrics, self.work.produce, progress=self._progress)
        self.marks = Watermarks(self._topic_of)
        self.tracing = make_tracing(config, tracer_provider)  # runtime/tracing.py; off by default
        self.tasks: dict[int | None, Task] = {}
        self._task_of: dict[Source, Task] = {}
        self._suspended: dict[int, Task] = {}  # keyed: tasks revoked, kept while nobody else moved them
        self._single = Task(config, None, [], self.store, self._checkpointer(self.store, None), self.engine_factory)
        self.lifecycle = LifecycleRuntime(config, self.store, self.collector, self.work, self._single.checkpointer)
        self._paused: set[Source] = set()
        self._first_record: float | None = None
        self._record_seconds = self.metrics.record_seconds.labels(config.name)
        self._label_wait = self.metrics.label_wait_seconds.labels(config.name)
        self._events_in: dict[tuple[str, str], Any] = {}
        self._assignments = 0  # keyed: rebalances that gave this member its partitions
        self._closing = False
        self._last_progress = 0.0
        self.admin_url: str | None = None  # advertised to `models` commands (runtime/liveness.py)
        self._live: LivenessMember | None = None

    def _checkpointer(self, store: VersionStore, index: int | None) -> Checkpointer:
        checkpointer = Checkpointer(self.config, store, self.metrics, self.collector, self.work,
                                    meta_extra=lifecycle_meta)
        checkpointer.flush = self._flush_order
        checkpointer.commit = self._commit
        if index is not None:  # keyed: a pointer per task on .checkpoints instead of .versions
            checkpointer.announce_to = lambda meta, now_ms: self._pointer(index, meta, now_ms)
        return checkpointer

    # -- what tests, the CLI and the metrics read ---------------------------------------

    @property
    def engine(self) -> Engine | None:
        """The serving engine (single mode)."""
        return self._single.engine

    @property
    def checkpointer(self) -> Checkpointer:
        """The serving task's checkpointer (single mode)."""
        return self._single.checkpointer

    @property
    def positions(self) -> dict[Source, int]:
        return self._single.positions

    @property
    def merger(self) -> EventTimeMerger | None:
        return self._single.merger if self.tasks.get(None) is not None else None

    @property
    def committed(self) -> dict[Source, int]:
        return self.work.committed

    @property
    def dead_letters(self) -> collections.Counter[str]:
        """This run's dead letters by reason."""
        return self.collector.dead_letters

    @property
    def timings(self) -> dict[str, float]:
        """perf_counter() of the first record processed and of the last commit (benchmarks)."""
        out = {}
        if self._first_record is not None:
            out["first_record"] = self._first_record
        if self.work.last_commit:
            out["last_commit"] = self.work.last_commit
        return out

    def summary(self) -> dict[str, Any]:
        """What this process's tasks learned (keyed mode's end-of-run summary)."""
        tasks = {t.name: {"version": t.engine.version, "examples_learned": t.engine.n_learned,
                          "predictions": t.engine.counters.predictions}
                 for t in sorted(self.tasks.values(), key=lambda t: t.index or 0) if t.engine is not None}
        now_wall, now_perf = time.time(), time.perf_counter()
        wall = {k: round(now_wall - (now_perf - v), 3) for k, v in self.timings.items()}  # epoch s (benchmarks)
        return {"tasks": tasks, "examples_learned": sum(t["examples_learned"] for t in tasks.values()),
                "timings": wall, "assignments": self._assignments}

    def _progress(self) -> int:
        return sum(t.engine.counters.predictions + t.engine.n_learned for t in self.tasks.values() if t.engine)

    # -- running -----------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def restore(self) -> Engine:
        """The engine of the latest verified version, or a fresh one (single mode)."""
        engine = self._single.restore()
        if (latest := self.store.latest()) is not None:
            self.metrics.last_version.labels(self.config.name).set(self.store.meta(latest).get("created_at", 0) / 1000)
        return engine

    def run(self, exit_when_idle_s: float | None = None, max_seconds: float | None = None) -> Engine | None:
        """Process until :meth:`stop`, or until idle/timeout limits (for demos and tests).

        Raises :class:`FencedError` when another instance took the transactional.id over."""
        self._live = LivenessMember(self.config, self.admin_url)  # "running", for `models` commands
        try:
            return self._run(exit_when_idle_s, max_seconds)
        except KafkaException as exc:
            if not fenced(exc):
                raise
            message = (f"another instance of deployment {self.config.name} took over (same transactional.id "
                       f"{self.config.transactional_id}): this one stops")
            log.error(message, extra={"fields": {"model": self.config.name, "exit_code": EXIT_FENCED}})
            raise FencedError(message) from None
        finally:
            self._live.close()

    def _run(self, exit_when_idle_s: float | None, max_seconds: float | None) -> Engine | None:
        if not self.keyed:
            self.restore()
        n_partitions = check_copartitioned(self.config, keyed=self.keyed)
        work = self.work
        work.start_watchdog()
        scale = self.config.scale
        if self.keyed:
            consumer = make_consumer(self.config, **{
                "group.instance.id": f"{self.config.group_id}.{scale.instance}",
                "partition.assignment.strategy": "range",
                "session.timeout.ms": scale.session_timeout_ms,
            })
        else:
            consumer = make_consumer(self.config)
        producer_extra = {"transaction.timeout.ms": max(1000, scale.session_timeout_ms - 2000)} if self.keyed else {}
        if self.exactly_once:
            producer = make_producer(self.config, transactional=True, **producer_extra)
        else:  # deliveries are counted; a failed one stops the processor (see UnitOfWork)
            producer = make_producer(self.config, on_delivery=work.on_delivery)
        self._consumer, self._producer = consumer, producer
        self.marks.consumer = consumer
        work.attach(producer, consumer)
        self.metrics.watch(self._state)
        try:
            if self.exactly_once:
                # Fence any previous instance first: that aborts its open transaction, whose
                # pending offsets would otherwise keep committed() waiting (KIP-447).
                retrying(lambda: producer.init_transactions(30))
            if self.keyed:
                consumer.subscribe([self._topic_of[k] for k in self._kinds], on_assign=self._on_assign,
                                   on_revoke=self._on_revoke, on_lost=self._on_lost)
                log.info("joining the group", extra={"fields": {"model": self.config.name,
                                                                "instance": scale.instance,
                                                                "partitions": n_partitions}})
            else:
                sources = [(k, p) for k in self._kinds for p in range(n_partitions)]
                self._single.sources = sources
                self._single.merger = EventTimeMerger(sources, self.config.processor.max_idle_ms)
                committed = self._committed_offsets(sources)
                consumer.assign([TopicPartition(self._topic_of[k], p, self.positions.get((k, p), OFFSET_BEGINNING))
                                 for k, p in sources])
                self._open([self._single], committed)
                self.lifecycle.audit_policy(self._single.engine)  # a changed policy: one audit entry
            self._loop(consumer, exit_when_idle_s, max_seconds)
            if work.pending:
                work.ensure_open()
                self._commit(final=True)
            for task in list(self.tasks.values()):
                task.cut("shutdown")
        finally:
            work.stop_watchdog()
            for task in self.tasks.values():
                task.checkpointer.wait()  # a version being written is complete and consistent: let it land
            work.abort()
            self._closing = True  # close() revokes: the tasks are done, keep them for summary()
            consumer.close()
            producer.flush(10)
            self.tracing.close()
        return self.engine  # a rollback may have replaced the engine

    def _committed_offsets(self, sources: list[Source]) -> dict[Source, int]:
        tps = [TopicPartition(self._topic_of[k], p) for k, p in sources]
        out = {}
        for tp in retrying(lambda: self._consumer.committed(tps, timeout=10), deadline_s=120.0):
            source = (self._kind_of[tp.topic], tp.partition)
            self.work.committed.pop(source, None)
            if tp.offset >= 0:
                out[source] = self.work.committed[source] = tp.offset
        return out

    def _open(self, tasks: list[Task], committed: dict[Source, int], resumed: frozenset[int] = frozenset()) -> None:
        """Make tasks ready: register their sources; those just restored (not ``resumed``
        from memory) follow their order logs and start their checkpoint cadence."""
        for task in tasks:
            self.tasks[task.index] = task
            for source in task.sources:
                self._task_of[source] = task
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
                self.lifecycle.mitigation_switched(task.engine, *task.switched)
                task.switched = None
            task.checkpointer.start(task.engine, task.positions)
            log.info("processing", extra={"fields": {
                "model": self.config.name, "task": task.name,
                "resume": {source_key(s): o for s, o in task.positions.items()},
                "committed": {source_key(s): committed[s] for s in task.sources if s in committed}}})

    # -- keyed mode: the group hands out tasks ----------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        kinds: dict[int, set[str]] = collections.defaultdict(set)
        for tp in partitions:
            kinds[tp.partition].add(self._kind_of[tp.topic])
        indices = sorted(i for i, k in kinds.items() if k == set(self._kinds))
        if len(indices) != len(kinds):
            log.error("partitions assigned without their pair: not processed (use the range assignor and "
                      "co-partitioned topics)", extra={"fields": {"unpaired": sorted(set(kinds) - set(indices))}})
        sources = [(k, i) for i in indices for k in self._kinds]
        committed = self._committed_offsets(sources)
        ready, resumed = [], set()
        for index in indices:
            pair = [(k, index) for k in self._kinds]
            task = self._suspended.pop(index, None)
            # Kept in memory since its revocation: still exact if nobody committed past it.
            if task is not None and all(task.positions.get(s, 0) == committed.get(s, 0) for s in pair):
                resumed.add(index)
            else:
                store = VersionStore(self.config.checkpoint.store_url, task_store_name(self.config, index),
                                     self._signing_key)
                task = Task(self.config, index, pair, store, self._checkpointer(store, index), self.engine_factory)
                task.restore()
            ready.append(task)
        self._open(ready, committed, frozenset(resumed))
        self._suspended.clear()  # whatever was not given back is someone else's now
        self._assignments += 1
        self._last_progress = time.monotonic()
        consumer.assign([TopicPartition(self._topic_of[k], p, self.tasks[p].positions.get((k, p), OFFSET_BEGINNING))
                         for k, p in sources])
        log.info("tasks assigned", extra={"fields": {"instance": self.config.scale.instance, "tasks": indices}})

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Commit what is processed (bounded by the commit's own timeouts), keep the tasks
        in memory in case they come back unchanged; never cut a version here."""
        if self._closing:
            return
        if self.work.pending:
            try:
                self.work.ensure_open()
                self._commit(final=True)  # at-least-once: flush and commit every ticket
            except KafkaException as exc:
                log.warning("commit on revoke failed: the tasks' uncommitted work is dropped",
                            extra={"fields": {"error": str(exc)}})
                self.work.abort()
                self._drop_tasks(keep=False)
                return
        self._drop_tasks(keep=True)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """The group moved our partitions without us: what we did not commit is void."""
        if self._closing:
            return
        self.work.abort()
        self._drop_tasks(keep=False)
        log.warning("partitions lost: open work aborted", extra={"fields": {"instance": self.config.scale.instance}})

    def _drop_tasks(self, keep: bool) -> None:
        for index, task in list(self.tasks.items()):
            task.checkpointer.wait()
            if keep and task.follower is None:
                task.forget_buffered()
                self._suspended[index] = task
            self.marks.remove(task.sources)
            for source in task.sources:
                self._task_of.pop(source, None)
                self._paused.discard(source)
                self.work.committed.pop(source, None)
        self.tasks.clear()

    # -- the loop ----------------------------------------------------------------------

    def _loop(self, consumer, exit_when_idle_s, max_seconds) -> None:
        cfg = self.config.processor
        work, kind_of, marks, task_of = self.work, self._kind_of, self.marks, self._task_of
        started = time.monotonic()
        self._last_progress = started
        last_lag = last_live = 0.0
        busy = False
        tracing = self.tracing
        remember = tracing.remember if tracing.enabled else None
        while not self.stopping.is_set():
            consume_ns = time.time_ns() if remember else 0
            # Never block while there is work. When idle, wait for the *first* message only:
            # consume(n, timeout) waits for all n or the whole timeout, poll() returns at once.
            messages = consumer.consume(num_messages=cfg.batch_size, timeout=0)
            if not messages and not busy:
                wait_s = 0.05
                if work.in_txn:  # wake up in time to commit what is pending
                    early = 4000 if self.exactly_once else 1000
                    due = work.started + cfg.commit_interval_ms / early - time.monotonic()
                    wait_s = min(wait_s, max(due, 0.0))
                first = consumer.poll(wait_s)
                if first is not None:
                    messages = [first, *consumer.consume(num_messages=cfg.batch_size - 1, timeout=0)]
            fetched_at = time.monotonic()
            fetched_ns = time.time_ns() if remember else 0
            label_tails: dict[Source, int] = {}
            for msg in messages:
                err = msg.error()
                source = (kind_of[msg.topic()], msg.partition())
                task = task_of.get(source)
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if task is not None:
                            marks.eof[source] = True
                            marks.eof_at[source] = msg.offset()  # past any transaction marker
                    elif err.fatal():
                        raise KafkaException(err)
                    else:
                        log.warning("consumer error", extra={"fields": {"error": err.str()}})
                    continue
                if task is None:
                    continue  # fetched before its partition was revoked
                marks.eof[source] = False
                offset = msg.offset()
                marks.fetched[source] = offset + 1
                if source[0] == "labels":
                    label_tails[source] = offset
                task.merger.push(InputRecord(source[0], source[1], offset, msg.timestamp()[1], msg.key(), msg.value()))
                if remember is not None:
                    remember(source[0], source[1], offset, msg.headers())
            for source, offset in label_tails.items():
                if (task := task_of.get(source)) is not None:
                    task.label_arrivals[source].append((offset, fetched_at))
            self._backpressure(consumer)
            if remember is not None and (messages or busy):
                with tracing.batch(len(messages), consume_ns, fetched_ns):
                    processed = sum(self._drain(task) for task in list(self.tasks.values()))
            else:
                processed = sum(self._drain(task) for task in list(self.tasks.values()))
            busy = processed > 0
            now = time.monotonic()
            if processed:
                self._last_progress = now
            # A transaction commit costs ~10 ms here: commit once the batch drained what was
            # there but not more often than every commit_interval_ms / 4 (latency at low load
            # without starving throughput at moderate load), and every commit_interval_ms when
            # saturated. At-least-once outputs are already on their way: commit on the interval.
            age_ms = (now - work.started) * 1000
            caught_up_now = processed < cfg.batch_size
            if work.in_txn and (age_ms >= cfg.commit_interval_ms or (
                    self.exactly_once and caught_up_now and age_ms >= cfg.commit_interval_ms / 4)):
                self._commit()
            for task in list(self.tasks.values()):
                if not work.in_txn and not task.replaying(work.committed):
                    task.checkpointer.maybe(task.engine, task.positions, task.order_next, now)
            if len(self.lifecycle.queue):  # commands apply between transactions only
                if work.in_txn:
                    self._commit()
                self._run_commands()
            if now - last_live >= 1 and self._live is not None:
                self._live.poll()
                last_live = now
            if now - last_lag > 5:
                marks.update_lag({s: t.positions.get(s, 0) for s, t in task_of.items()})
                last_lag = now
            caught_up = marks.all_at_end and not any(len(t.merger) for t in self.tasks.values())
            if self.keyed and not self._assignments:
                caught_up = False  # not a member yet: nothing was given to this process
            if exit_when_idle_s is not None and caught_up and now - self._last_progress >= exit_when_idle_s:
                log.info("idle: stopping", extra={"fields": {"idle_s": exit_when_idle_s}})
                return
            if max_seconds is not None and now - started >= max_seconds:
                return

    def _run_commands(self) -> None:
        if self.keyed:  # a task's engine is one shard: commands for a keyed deployment come later
            while (command := self.lifecycle.queue.pop()) is not None:
                command.error = LifecycleError("lifecycle commands are not available in keyed mode", status=409)
                command.done.set()
            return
        task = self._single
        task.engine = self.lifecycle.run_commands(task.engine, task.positions, task.order_next)

    def _commit(self, final: bool = False) -> None:
        """Commit the open unit of work with every task's positions."""
        positions: dict[Source, int] = {}
        for task in self.tasks.values():
            positions.update(task.positions)
        if self.tracing.enabled:
            start = time.time_ns()
            self.work.commit(positions, final)
            self.tracing.commit(start, time.time_ns())
            return
        self.work.commit(positions, final)

    def _checkpoint(self, trigger: str, wait: bool = True) -> dict[str, Any] | None:
        return self._single.cut(trigger, wait)

    def _drain(self, task: Task) -> int:
        """Process the records a task's merger releases (at most one batch); return how many."""
        engine = task.engine
        assert engine is not None
        if task.follower is not None:
            return self._drain_recorded(task)
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
                    outputs = self._internal_error(record, exc)
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
                    self._observe_label_wait(task, source, run)
            if first_ts is None:
                first_ts = head.timestamp
            last_ts = run[-1].timestamp
            for mode, n in (("live", live), ("replay", len(run) - live)):
                if n:
                    counts[(head.kind, mode)] = counts.get((head.kind, mode), 0) + n
        if processed:
            if self._first_record is None:
                self._first_record = batch_start
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

    def _observe_label_wait(self, task: Task, source: Source, run: list[InputRecord]) -> None:
        """How long each label of a live run sat between its fetch and its learning."""
        arrivals = task.label_arrivals[source]
        now = time.monotonic()
        observe = self._label_wait.observe
        for record in run:
            while arrivals and arrivals[0][0] < record.offset:
                arrivals.popleft()
            if arrivals:
                observe(now - arrivals[0][1])

    def _internal_error(self, record: InputRecord, exc: Exception) -> list[Output]:
        """Dead-letter a record the engine failed on unexpectedly, instead of crashing.

        Crashing would restart, replay and fail on the same record forever. The engine is
        deterministic, so a replay meets the same error at the same record and takes this
        same path: outputs stay exactly-once.
        """
        log.error("engine error: record dead-lettered", exc_info=exc,
                  extra={"fields": {"kind": record.kind, "partition": record.partition, "offset": record.offset}})
        return [DeadLetter(record, "internal_error", repr(exc)[:500])]

    # -- the order log -------------------------------------------------------------------

    def _drain_recorded(self, task: Task) -> int:
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
                    outputs = self._internal_error(record, exc)
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

    def _write_order(self) -> None:
        """Add each task's merge decisions to its order log partition (inside the transaction)."""
        for task in self.tasks.values():
            if task.order:
                self.work.produce(self.topics.order, None, task.order.flush(), partition=task.order_partition,
                                  on_delivery=self._order_delivered(task))
                task.order_unacked += 1

    def _order_delivered(self, task: Task) -> Callable[[KafkaError | None, Any], None]:
        def delivered(err: KafkaError | None, msg: Any) -> None:
            task.order_delivered(err, msg)
            if not self.exactly_once:
                self.work.on_delivery(err, msg)
        return delivered

    def _flush_order(self) -> None:
        """Before a cut: serve the delivery reports of committed order entries (their offsets)."""
        if any(task.order_unacked for task in self.tasks.values()):
            self._producer.flush(30)

    # -- keyed mode: pointers to each task's latest version --------------------------------

    def _pointer(self, index: int, meta: dict[str, Any], now_ms: int) -> None:
        """A task's latest version on the compacted ``.checkpoints`` topic (key = task)."""
        body = {"task": index, "version": meta["version"], "store": task_store_name(self.config, index),
                "positions": meta["positions"], "examples_seen": meta["examples_seen"],
                "created_at": meta["created_at"], "instance": self.config.scale.instance}
        headers = ce_headers("checkpoint", f"{self.config.name}/task-{index}/v{meta['version']}", self.config.name,
                             meta["version"], now_ms)
        self.work.produce(self.topics.checkpoints, str(index).encode(), orjson.dumps(body), headers)

    # -- observability -----------------------------------------------------------------

    def _backpressure(self, consumer) -> None:
        """Pause partitions whose buffer is full while another one catches up."""
        cap = self.config.processor.max_buffered_per_partition
        for source, task in self._task_of.items():
            n = task.merger.buffered(source)
            if n < cap // 2 and source not in self._paused:
                continue  # the common case, once per source per poll: nothing to build
            tp = TopicPartition(self._topic_of[source[0]], source[1])
            if n >= cap and source not in self._paused:
                consumer.pause([tp])
                self._paused.add(source)
                self.metrics.backpressure_pauses.labels(self.config.name, source_key(source)).inc()
                log.info("backpressure: partition paused",
                         extra={"fields": {"source": source_key(source), "buffered": n, "cap": cap}})
            elif n < cap // 2 and source in self._paused:
                consumer.resume([tp])
                self._paused.discard(source)
                self.metrics.backpressure_resumes.labels(self.config.name, source_key(source)).inc()
                log.info("backpressure: partition resumed",
                         extra={"fields": {"source": source_key(source), "buffered": n, "cap": cap}})

    def _state(self) -> dict[str, Any]:
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
