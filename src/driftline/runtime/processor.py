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
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.order_log import OrderFollower, OrderRecorder
from driftline.core.ordering import EventTimeMerger, Source
from driftline.core.outputs import DeadLetter, Output
from driftline.exceptions import FencedError
from driftline.observability.metrics import ProcessorMetrics
from driftline.runtime.checkpointer import Checkpointer, source_key
from driftline.runtime.clients import make_consumer, make_producer
from driftline.runtime.collector import OutputCollector
from driftline.runtime.lifecycle import LifecycleRuntime, lifecycle_meta
from driftline.runtime.liveness import LivenessMember
from driftline.runtime.order_log import read_order_log
from driftline.runtime.topics import check_copartitioned
from driftline.runtime.unit_of_work import EXIT_HUNG, HANG_TIMEOUT_S, UnitOfWork, retrying
from driftline.versions.store import VersionStore

__all__ = ["Processor", "EXIT_FENCED", "EXIT_HUNG", "HANG_TIMEOUT_S"]

log = logging.getLogger("driftline.processor")

# Another instance of the deployment initialised the same transactional.id: this one was
# fenced (it can publish nothing more) and stops with EXIT_FENCED; a supervisor should not
# restart it while the other instance runs (docs/reliability.md, "Fencing").
EXIT_FENCED = 3


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fenced(exc: KafkaException) -> bool:
    """Whether a Kafka error says a newer producer with our transactional.id fenced us."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is None:
        return False
    return err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH) or (
        err.code() == KafkaError._FATAL and "fenced" in err.str().lower())


class Processor:
    """Runs one deployment: restore, replay, then process live until stopped.

    It owns the loop and the engine's inputs (the consumer, the event-time merger, the
    positions, the order log); the parts it hands work to are its attributes: ``work``
    (runtime/unit_of_work.py), ``collector`` (runtime/collector.py), ``checkpointer``
    (runtime/checkpointer.py) and ``lifecycle`` (runtime/lifecycle.py).
    """

    def __init__(
        self,
        config: DeploymentConfig,
        signing_key: bytes,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.config = config
        self.topics = config.topics
        self.store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
        self.exactly_once = config.processor.guarantee == "exactly_once"
        self.metrics = ProcessorMetrics(config.name, registry)
        self.clock = clock
        self.stopping = threading.Event()
        self.engine: Engine | None = None
        self.positions: dict[Source, int] = {}
        self._topic_of = {"features": self.topics.features, "labels": self.topics.labels}
        self._kind_of = {v: k for k, v in self._topic_of.items()}
        self.work = UnitOfWork(self._topic_of, self.exactly_once, self.metrics.batch_seconds.labels(config.name))
        self.work.before_commit = self._write_order
        self.collector = OutputCollector(config, self.metrics, self.work.produce, progress=self._progress)
        self.checkpointer = Checkpointer(config, self.store, self.metrics, self.collector, self.work,
                                         meta_extra=lifecycle_meta)
        self.checkpointer.flush = self._flush_order
        self.checkpointer.commit = self._commit
        self.lifecycle = LifecycleRuntime(config, self.store, self.collector, self.work, self.checkpointer)
        self._eof: dict[Source, bool] = {}
        self._eof_at: dict[Source, int] = {}  # the offset an end-of-partition event reported
        self._fetched: dict[Source, int] = {}
        self._broker_marks: dict[Source, tuple[int, int]] = {}  # (low, high) asked of the broker
        self._asked_at: dict[Source, float] = {}
        # The order log (core/order_log.py): what this unit of work merged, what to follow.
        self._order = OrderRecorder()
        self._follower: OrderFollower | None = None
        self._order_next = 0  # the order log's offset after the last entry the engine reflects
        self._order_unacked = 0
        self._snapshot_order_offset: int | None = None
        self.merger: EventTimeMerger | None = None
        # Per labels source: (last offset of a poll's records, when they were fetched).
        self._label_arrivals: dict[Source, collections.deque[tuple[int, float]]] = collections.defaultdict(
            collections.deque)
        self._paused: set[Source] = set()
        self._lag: dict[str, int] = {}
        # perf_counter() of the first record processed and of the last commit (benchmarks).
        self._first_record: float | None = None
        self._record_seconds = self.metrics.record_seconds.labels(config.name)
        self._label_wait = self.metrics.label_wait_seconds.labels(config.name)
        self._events_in: dict[tuple[str, str], Any] = {}
        self.admin_url: str | None = None  # advertised to `models` commands (runtime/liveness.py)
        self._live: LivenessMember | None = None

    @property
    def committed(self) -> dict[Source, int]:
        return self.work.committed

    @property
    def dead_letters(self):
        """This run's dead letters by reason (a Counter)."""
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

    def _progress(self) -> int:
        engine = self.engine
        return engine.counters.predictions + engine.n_learned if engine is not None else 0

    # -- lifecycle -------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def restore(self) -> Engine:
        """The engine of the latest verified version, or a fresh one."""
        latest = self.store.latest()
        if latest is None:
            self.engine = Engine(self.config)
            self.positions = {}
            self._snapshot_order_offset = None
            log.info("no version found: starting a fresh model", extra={"fields": {"model": self.config.name}})
            return self.engine
        meta, state = self.store.load(latest)  # raises SnapshotIntegrityError on bad bytes
        self.engine = state["engine"]
        self.positions = dict(state["positions"])
        self._snapshot_order_offset = state.get("order_offset")  # None: a version older than the log
        log.info(
            "restored version",
            extra={"fields": {"model": self.config.name, "version": latest, "examples_seen": meta["examples_seen"]}},
        )
        return self.engine

    def run(self, exit_when_idle_s: float | None = None, max_seconds: float | None = None) -> Engine:
        """Process until :meth:`stop`, or until idle/timeout limits (for demos and tests).

        Raises :class:`FencedError` when another instance took the transactional.id over."""
        self._live = LivenessMember(self.config, self.admin_url)  # "running", for `models` commands
        try:
            return self._run(exit_when_idle_s, max_seconds)
        except KafkaException as exc:
            if not _fenced(exc):
                raise
            message = (f"another instance of deployment {self.config.name} took over (same transactional.id "
                       f"{self.config.transactional_id}): this one stops")
            log.error(message, extra={"fields": {"model": self.config.name, "exit_code": EXIT_FENCED}})
            raise FencedError(message) from None
        finally:
            self._live.close()

    def _run(self, exit_when_idle_s: float | None, max_seconds: float | None) -> Engine:
        engine = self.restore()
        n_partitions = check_copartitioned(self.config)
        sources: list[Source] = [(k, p) for k in ("labels", "features") for p in range(n_partitions)]
        work = self.work
        work.start_watchdog()
        consumer = make_consumer(self.config)
        if self.exactly_once:
            producer = make_producer(self.config, transactional=True)
        else:  # deliveries are counted; a failed one stops the processor (see UnitOfWork)
            producer = make_producer(self.config, on_delivery=work.on_delivery)
        self._consumer, self._producer = consumer, producer
        work.attach(producer, consumer)
        try:
            if self.exactly_once:
                # Fence any previous instance first: that aborts its open transaction, whose
                # pending offsets would otherwise keep committed() waiting (KIP-447).
                retrying(lambda: producer.init_transactions(30))
            tps = [TopicPartition(self._topic_of[k], p) for k, p in sources]
            for tp in retrying(lambda: consumer.committed(tps, timeout=10)):
                if tp.offset >= 0:
                    self.committed[(self._kind_of[tp.topic], tp.partition)] = tp.offset
            consumer.assign([TopicPartition(self._topic_of[k], p, self.positions.get((k, p), OFFSET_BEGINNING))
                             for k, p in sources])
            self._eof = {src: False for src in sources}
            self._tps = {src: TopicPartition(self._topic_of[src[0]], src[1]) for src in sources}
            for src in sources:  # KIP-695: know every partition's lag before the first fetch
                self._ask_broker(src)
            self._follow_order_log()
            merger = self.merger = EventTimeMerger(sources, self.config.processor.max_idle_ms)
            self.metrics.watch(self._state)
            if self.store.latest() is None:
                self._checkpoint("initial")
            else:
                self.checkpointer.announce(self.store.meta(self.store.latest()))
            self.checkpointer.start(engine, self.positions)
            log.info(
                "processing",
                extra={"fields": {"model": self.config.name, "partitions": n_partitions,
                                  "resume": {source_key(s): o for s, o in self.positions.items()},
                                  "committed": {source_key(s): o for s, o in self.committed.items()}}},
            )
            self._loop(consumer, merger, exit_when_idle_s, max_seconds)
            if work.pending:
                work.ensure_open()
                self._commit(final=True)
            self._checkpoint("shutdown")
        finally:
            work.stop_watchdog()
            self.checkpointer.wait()  # a version being written is complete and consistent: let it land
            work.abort()
            consumer.close()
            producer.flush(10)
        return self.engine  # a rollback may have replaced the engine

    # -- the loop ----------------------------------------------------------------------

    def _loop(self, consumer, merger: EventTimeMerger, exit_when_idle_s, max_seconds) -> None:
        cfg = self.config.processor
        work, kind_of = self.work, self._kind_of
        started = time.monotonic()
        last_progress = started
        last_lag = last_live = 0.0
        busy = False
        while not self.stopping.is_set():
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
            label_tails: dict[Source, int] = {}
            for msg in messages:
                err = msg.error()
                source = (kind_of[msg.topic()], msg.partition())
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        self._eof[source] = True
                        self._eof_at[source] = msg.offset()  # past any transaction marker
                    elif err.fatal():
                        raise KafkaException(err)
                    else:
                        log.warning("consumer error", extra={"fields": {"error": err.str()}})
                    continue
                self._eof[source] = False
                offset = msg.offset()
                self._fetched[source] = offset + 1
                if source[0] == "labels":
                    label_tails[source] = offset
                merger.push(InputRecord(source[0], source[1], offset, msg.timestamp()[1], msg.key(), msg.value()))
            for source, offset in label_tails.items():
                self._label_arrivals[source].append((offset, fetched_at))
            self._backpressure(consumer, merger)
            processed = self._drain(merger)
            busy = processed > 0
            now = time.monotonic()
            if processed:
                last_progress = now
            # A transaction commit costs ~10 ms here: commit once the batch drained what was
            # there but not more often than every commit_interval_ms / 4 (latency at low load
            # without starving throughput at moderate load), and every commit_interval_ms when
            # saturated. At-least-once outputs are already on their way: commit on the interval.
            age_ms = (now - work.started) * 1000
            caught_up_now = processed < cfg.batch_size
            if work.in_txn and (age_ms >= cfg.commit_interval_ms or (
                    self.exactly_once and caught_up_now and age_ms >= cfg.commit_interval_ms / 4)):
                self._commit()
            if not work.in_txn and not self._replaying():
                self.checkpointer.maybe(self.engine, self.positions, self._order_next, now)
            if len(self.lifecycle.queue):  # commands apply between transactions only
                if work.in_txn:
                    self._commit()
                self.engine = self.lifecycle.run_commands(self.engine, self.positions, self._order_next)
            if now - last_live >= 1 and self._live is not None:
                self._live.poll()
                last_live = now
            if now - last_lag > 5:
                self._update_lag(consumer)
                last_lag = now
            caught_up = not len(merger) and all(self._eof.values())
            if exit_when_idle_s is not None and caught_up and now - last_progress >= exit_when_idle_s:
                log.info("idle: stopping", extra={"fields": {"idle_s": exit_when_idle_s}})
                return
            if max_seconds is not None and now - started >= max_seconds:
                return

    def _commit(self, final: bool = False) -> None:
        """Commit the open unit of work with the consumed positions."""
        self.work.commit(self.positions, final)

    def _checkpoint(self, trigger: str, wait: bool = True) -> dict[str, Any] | None:
        return self.checkpointer.cut(self.engine, self.positions, self._order_next, trigger, wait)

    def _drain(self, merger: EventTimeMerger) -> int:
        """Process the records the merger releases (at most one batch); return how many."""
        engine = self.engine
        assert engine is not None
        if self._follower is not None:
            return self._drain_recorded(merger)
        caught_up = self._lag_check()
        now_ms = self.clock()
        collector, work = self.collector, self.work
        collector.begin_batch(now_ms)
        positions, committed, emit, count = self.positions, work.committed, collector.emit, collector.count
        process = engine.process
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
            positions[source] = run[-1].offset + 1
            processed += len(run)
            work.records += live
            if live:
                self._order.record(now_ms, head.kind, head.partition, head.offset, run[-1].offset)
                if head.kind == "labels":
                    self._observe_label_wait(source, run)
            if first_ts is None:
                first_ts = head.timestamp
            last_ts = run[-1].timestamp
            for mode, n in (("live", live), ("replay", len(run) - live)):
                if n:
                    counts[(head.kind, mode)] = counts.get((head.kind, mode), 0) + n
        if processed:
            if self._first_record is None:
                self._first_record = batch_start
            self.checkpointer.saw(first_ts, last_ts)
            for key, n in counts.items():
                child = self._events_in.get(key)
                if child is None:
                    child = self._events_in[key] = self.metrics.events_in.labels(self.config.name, *key)
                child.inc(n)
            collector.end_batch()
            elapsed = time.perf_counter() - batch_start
            self._record_seconds.observe(elapsed / processed)
        return processed

    def _observe_label_wait(self, source: Source, run: list[InputRecord]) -> None:
        """How long each label of a live run sat between its fetch and its learning."""
        arrivals = self._label_arrivals[source]
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
    def _lag_check(self) -> Callable[[Source], int | None]:
        """How many records an empty source is behind its partition's end, memoized for one
        batch; None when that is not known (the merger then waits, as for a known lag).

        The high watermark librdkafka caches from every fetch response is compared with the
        next offset to fetch: the last fetched record's, the offset an end-of-partition event
        reported (past any transaction marker), or where the partition was assigned. Before
        the first fetch response the broker is asked (KIP-695), at most every 200 ms.
        """
        memo: dict[Source, int | None] = {}
        eof_at, fetched, tps, consumer = self._eof_at, self._fetched, self._tps, self._consumer
        positions, marks = self.positions, self._broker_marks

        def lag(source: Source) -> int | None:
            if source in memo:
                return memo[source]
            try:
                low, high = consumer.get_watermark_offsets(tps[source], cached=True)
            except KafkaException:
                low = high = -1
            if high < 0:
                self._ask_broker(source, min_interval_s=0.2)
                low, high = marks.get(source, (-1, -1))
            nxt = max(fetched.get(source, -1), eof_at.get(source, -1), positions.get(source, -1))
            if nxt < 0:  # assigned at the beginning, nothing fetched yet
                nxt = low
            behind = memo[source] = None if high < 0 or nxt < 0 else max(0, high - nxt)
            return behind

        return lag

    def _ask_broker(self, source: Source, min_interval_s: float = 0.0) -> None:
        """Ask the broker for a partition's watermarks (a round trip; bounded rate)."""
        now = time.monotonic()
        if now - self._asked_at.get(source, -1e9) < min_interval_s:
            return
        self._asked_at[source] = now
        try:
            self._broker_marks[source] = self._consumer.get_watermark_offsets(self._tps[source], timeout=5,
                                                                              cached=False)
        except KafkaException as exc:
            log.warning("cannot read watermarks", extra={"fields": {"source": source_key(source),
                                                                    "error": str(exc)}})

    # -- the order log -------------------------------------------------------------------

    def _follow_order_log(self) -> None:
        """Read the merge decisions recorded since the restored version was cut."""
        start = self._snapshot_order_offset
        entries, end = read_order_log(self.config, start)
        self._order_next = end
        if start is None:
            if self.committed:
                log.warning("the restored version predates the order log: replaying by the event-time rules",
                            extra={"fields": {"model": self.config.name}})
            return
        if entries:
            self._follower = OrderFollower(entries)
            log.info("following the recorded order", extra={"fields": {"entries": len(entries),
                                                                       "runs": len(self._follower)}})

    def _drain_recorded(self, merger: EventTimeMerger) -> int:
        """Replay the records in the order the order log recorded; 0 while a run is not fetched."""
        follower = self._follower
        engine = self.engine
        assert follower is not None and engine is not None
        positions, committed = self.positions, self.committed
        processed = 0
        while processed < self.config.processor.batch_size and (run := follower.next_run()) is not None:
            now_ms, source, first, last = run
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
            self._follower = None
            log.info("recorded order replayed: merging by the event-time rules",
                     extra={"fields": {"positions": {source_key(s): o for s, o in positions.items()}}})
        return processed

    def _write_order(self) -> None:
        """Add this unit of work's merge decisions to the order log (inside its transaction)."""
        if not self._order:
            return
        self.work.produce(self.topics.order, None, self._order.flush(), on_delivery=self._order_delivered)
        self._order_unacked += 1

    def _flush_order(self) -> None:
        """Before a cut: serve the delivery reports of committed order entries (their offsets)."""
        if self._order_unacked:
            self._producer.flush(30)

    def _order_delivered(self, err: KafkaError | None, msg: Any) -> None:
        self._order_unacked -= 1
        if err is None:
            self._order_next = max(self._order_next, msg.offset() + 1)
        if not self.exactly_once:
            self.work.on_delivery(err, msg)

    def _replaying(self) -> bool:
        """Still below the committed offsets, or following the order log: no cut yet (a
        version cut here would name an order log offset its positions are not at)."""
        if self._follower is not None:
            return True
        positions = self.positions
        return any(positions.get(source, 0) < offset for source, offset in self.committed.items())

    # -- observability -----------------------------------------------------------------

    def _backpressure(self, consumer, merger: EventTimeMerger) -> None:
        """Pause partitions whose buffer is full while another one catches up."""
        cap = self.config.processor.max_buffered_per_partition
        topic_of = self._topic_of
        for source in self._eof:
            n = merger.buffered(source)
            if n < cap // 2 and source not in self._paused:
                continue  # the common case, once per source per poll: nothing to build
            tp = TopicPartition(topic_of[source[0]], source[1])
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

    def _update_lag(self, consumer) -> None:
        topic_of = self._topic_of
        for source in self._eof:
            tp = TopicPartition(topic_of[source[0]], source[1])
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                self._lag[source_key(source)] = max(0, high - self.positions.get(source, 0))

    def _state(self) -> dict[str, Any]:
        engine = self.engine
        if engine is None:
            return {}
        return {
            "version": engine.version,
            "n_learned": engine.n_learned,
            "scores": engine.scores.values(),
            "pending_features": engine.join.pending_features,
            "pending_labels": engine.join.pending_labels,
            "expired_features": engine.counters.expired_features,
            "expired_labels": engine.counters.expired_labels,
            "lag": dict(self._lag),
            "merge": vars(self.merger.stats) if self.merger is not None else {},
        }

