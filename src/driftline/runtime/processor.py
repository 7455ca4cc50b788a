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

from confluent_kafka import KafkaError, KafkaException
from prometheus_client import REGISTRY, CollectorRegistry

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.keyed import KeyedEngine
from driftline.core.ordering import EventTimeMerger, Source
from driftline.exceptions import ConfigError, FencedError
from driftline.observability.metrics import ProcessorMetrics
from driftline.runtime.backpressure import Backpressure
from driftline.runtime.checkpointer import Checkpointer
from driftline.runtime.clients import make_processor_clients
from driftline.runtime.collector import OutputCollector
from driftline.runtime.drain import Drainer
from driftline.runtime.keyed_commands import run_keyed_commands
from driftline.runtime.lifecycle import LifecycleRuntime
from driftline.runtime.liveness import LivenessMember
from driftline.runtime.membership import Membership
from driftline.runtime.order_writer import OrderWriter
from driftline.runtime.task import Task, task_pointer, task_store_name
from driftline.runtime.topics import check_copartitioned
from driftline.runtime.tracing import make_tracing
from driftline.runtime.unit_of_work import EXIT_HUNG, HANG_TIMEOUT_S, UnitOfWork, fenced, retrying
from driftline.runtime.version_meta import lifecycle_meta
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
    ``work`` (runtime/unit_of_work.py), ``collector`` (runtime/collector.py), ``membership``
    (runtime/membership.py: the tasks, runtime/task.py, each with its checkpointer),
    ``drainer`` (runtime/drain.py), ``orders`` (runtime/order_writer.py), ``backpressure``
    (runtime/backpressure.py) and ``lifecycle`` (runtime/lifecycle.py).
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
        self.marks = Watermarks(self._topic_of)
        self.tracing = make_tracing(config, tracer_provider)  # runtime/tracing.py; off by default
        self.backpressure = Backpressure(config, self._topic_of, self.metrics)
        self.membership = Membership(config, self._kinds, self._topic_of, self.work, self.marks,
                                     forget=self.backpressure.forget, new_task=self._new_task, commit=self._commit,
                                     switched=self._mitigation_switched, assigned=self._assigned)
        self.collector = OutputCollector(config, self.metrics, self.work.produce, progress=self.membership.progress)
        self.orders = OrderWriter(self.topics.order, self.work, self.exactly_once, self.membership.tasks)
        self.work.before_commit = self.orders.write
        self.drainer = Drainer(config, self.metrics, self.collector, self.work, self.marks, self.tracing, clock)
        self._single = Task(config, None, [], self.store, self._checkpointer(self.store, None), self.engine_factory)
        self.lifecycle = LifecycleRuntime(config, self.store, self.collector, self.work, self._single.checkpointer)
        self._last_progress = 0.0
        self.admin_url: str | None = None  # advertised to `models` commands (runtime/liveness.py)
        self._live: LivenessMember | None = None

    def _checkpointer(self, store: VersionStore, index: int | None) -> Checkpointer:
        checkpointer = Checkpointer(self.config, store, self.metrics, self.collector, self.work,
                                    meta_extra=lifecycle_meta)
        checkpointer.flush = self.orders.flush
        checkpointer.commit = self._commit
        if index is not None:  # keyed: a pointer per task on .checkpoints instead of .versions
            checkpointer.announce_to = lambda meta, now_ms: self.work.produce(
                self.topics.checkpoints, *task_pointer(self.config, index, meta, now_ms))
        return checkpointer

    def _new_task(self, index: int, sources: list[Source]) -> Task:
        """A keyed task, with versions of its own (restored by the membership)."""
        store = VersionStore(self.config.checkpoint.store_url, task_store_name(self.config, index), self._signing_key)
        return Task(self.config, index, sources, store, self._checkpointer(store, index), self.engine_factory)

    def _mitigation_switched(self, engine: Engine, before: str, after: str) -> None:
        self.lifecycle.mitigation_switched(engine, before, after)

    def _assigned(self) -> None:
        self._last_progress = time.monotonic()  # the idle timer starts again with new tasks

    # -- what tests, the CLI and the metrics read ---------------------------------------

    @property
    def tasks(self) -> dict[int | None, Task]:
        """The running tasks by index (``None``: single mode's one task)."""
        return self.membership.tasks

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
        if self.drainer.first_record is not None:
            out["first_record"] = self.drainer.first_record
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
                "timings": wall, "assignments": self.membership.assignments}

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
        self._abort_error: KafkaException | None = None
        try:
            return self._run(exit_when_idle_s, max_seconds)
        except KafkaException as exc:
            # a later produce() of a fenced producer only says "Fatal error"; the abort names the cause
            if not (fenced(exc) or fenced(self._abort_error)):
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
        consumer, producer = make_processor_clients(self.config, work.on_delivery)
        self._consumer, self._producer = consumer, producer
        self.marks.consumer = consumer
        work.attach(producer, consumer)
        self.orders.attach(producer)
        self.metrics.watch(self.membership.state)
        try:
            if self.exactly_once:
                # Fence any previous instance first: that aborts its open transaction, whose
                # pending offsets would otherwise keep committed() waiting (KIP-447).
                retrying(lambda: producer.init_transactions(30))
            if self.keyed:
                membership = self.membership
                consumer.subscribe([self._topic_of[k] for k in self._kinds], on_assign=membership.on_assign,
                                   on_revoke=membership.on_revoke, on_lost=membership.on_lost)
                log.info("joining the group", extra={"fields": {"model": self.config.name,
                                                                "instance": self.config.scale.instance,
                                                                "partitions": n_partitions}})
            else:
                self.membership.open_single(consumer, self._single, n_partitions)
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
            self._abort_error = work.abort()
            self.membership.closing = True  # close() revokes: the tasks are done, keep them for summary()
            consumer.close()
            try:
                producer.flush(10)
            except (KafkaException, SystemError):  # a fenced (fatal) producer may fail here too: keep the cause
                pass
            self.tracing.close()
        return self.engine  # a rollback may have replaced the engine

    # -- the loop ----------------------------------------------------------------------

    def _loop(self, consumer, exit_when_idle_s, max_seconds) -> None:
        cfg = self.config.processor
        work, kind_of, marks, task_of = self.work, self._kind_of, self.marks, self.membership.task_of
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
            self.backpressure.apply(consumer, task_of)
            if remember is not None and (messages or busy):
                with tracing.batch(len(messages), consume_ns, fetched_ns):
                    processed = sum(self.drainer.drain(task) for task in list(self.tasks.values()))
            else:
                processed = sum(self.drainer.drain(task) for task in list(self.tasks.values()))
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
            if self.keyed and not self.membership.assignments:
                caught_up = False  # not a member yet: nothing was given to this process
            if exit_when_idle_s is not None and caught_up and now - self._last_progress >= exit_when_idle_s:
                log.info("idle: stopping", extra={"fields": {"idle_s": exit_when_idle_s}})
                return
            if max_seconds is not None and now - started >= max_seconds:
                return

    def _run_commands(self) -> None:
        if self.keyed:  # a command names its key: the task that holds it applies it
            run_keyed_commands(self.lifecycle, self.tasks, self.work.committed)
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
