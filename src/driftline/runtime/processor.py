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
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry

from driftline import __version__
from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.order_log import OrderFollower, OrderRecorder
from driftline.core.ordering import EventTimeMerger, Source
from driftline.core.outputs import DeadLetter, DriftEvent, LifecycleEvent, Output, Prediction, ShadowPrediction
from driftline.exceptions import FencedError, SnapshotError
from driftline.observability.metrics import ProcessorMetrics
from driftline.runtime.clients import make_consumer, make_producer
from driftline.runtime.lifecycle import LifecycleRuntime, lifecycle_meta
from driftline.runtime.liveness import LivenessMember
from driftline.runtime.order_log import read_order_log
from driftline.runtime.snapshots import BackgroundSaver, SaveResult
from driftline.runtime.topics import check_copartitioned
from driftline.versions.store import VersionStore

__all__ = ["Processor"]

log = logging.getLogger("driftline.processor")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _source_key(source: Source) -> str:
    return f"{source[0]}:{source[1]}"


@functools.lru_cache(maxsize=64)
def _version_bytes(version: int) -> bytes:
    return str(version).encode()


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _ce_time(now_ms: int) -> bytes:
    """RFC 3339 UTC with milliseconds (made once per batch, from integers: no float rounding).

    >>> _ce_time(1795839025006)
    b'2026-11-28T04:10:25.006Z'
    """
    return f"{_utc_second(now_ms // 1000)}.{now_ms % 1000:03d}Z".encode()


def _ce_headers(kind: str, ce_id: str, model: str, version: int, now_ms: int) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers; ``dl_model_version`` comes last."""
    return [
        ("ce_specversion", b"1.0"),
        *([("ce_id", ce_id.encode())] if ce_id else []),
        ("ce_type", f"io.driftline.{kind}".encode()),
        ("ce_source", f"driftline/{model}".encode()),
        ("ce_time", _ce_time(now_ms)),
        ("content-type", b"application/json"),
        ("dl_model", model.encode()),
        ("dl_model_version", str(version).encode()),
    ]


def _retrying(call: Callable[[], Any], deadline_s: float = 60.0) -> Any:
    """Call, retrying retriable Kafka errors (coordinator loading, leader moves) for a while."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return call()
        except KafkaException as exc:
            err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            retriable = err is not None and (err.retriable() or err.code() in _COORDINATOR_ERRORS)
            if not retriable or time.monotonic() > deadline:
                raise
            log.warning("retrying", extra={"fields": {"error": err.str()}})
            time.sleep(0.5)


# A commit that blocks longer than its calls' own timeouts (30 s + 60 s) plus this margin is
# hung: the process exits with EXIT_HUNG (EX_TEMPFAIL) for its supervisor to restart it.
# DRIFTLINE_TXN_HANG_TIMEOUT_S overrides the limit.
HANG_TIMEOUT_S = 120.0
EXIT_HUNG = 75
# Another instance of the deployment initialised the same transactional.id: this one was
# fenced (it can publish nothing more) and stops with EXIT_FENCED; a supervisor should not
# restart it while the other instance runs (docs/reliability.md, "Fencing").
EXIT_FENCED = 3

def _fenced(exc: KafkaException) -> bool:
    """Whether a Kafka error says a newer producer with our transactional.id fenced us."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is None:
        return False
    return err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH) or (
        err.code() == KafkaError._FATAL and "fenced" in err.str().lower())


_COORDINATOR_ERRORS = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


class Processor:
    """Runs one deployment: restore, replay, then process live until stopped."""

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
        self.saver = BackgroundSaver(self.store, enabled=config.checkpoint.background)
        self.exactly_once = config.processor.guarantee == "exactly_once"
        self._delivery_error: KafkaError | None = None
        self._produced = self._delivered = 0  # outputs handed to / acknowledged by the producer
        self._tickets: collections.deque[tuple[int, list[TopicPartition]]] = collections.deque()
        self._failed_version = 0
        self.metrics = ProcessorMetrics(config.name, registry)
        self.clock = clock
        self.stopping = threading.Event()
        self.engine: Engine | None = None
        self.positions: dict[Source, int] = {}
        self.committed: dict[Source, int] = {}
        self._eof: dict[Source, bool] = {}
        self._eof_at: dict[Source, int] = {}  # the offset an end-of-partition event reported
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
        self._in_txn = False
        self._txn_records = 0
        self._txn_started = 0.0
        self._ckpt_learned = 0
        self._ckpt_time = 0.0
        self._range_start: dict[Source, int] = {}
        self._time_range: list[int] = []
        # perf_counter() of the first record processed and of the last commit (benchmarks).
        self.timings: dict[str, float] = {}
        self._batch_headers: list[tuple[str, bytes]] = []
        self._n_predictions = 0
        # Labelled metric children used once per batch, looked up once (labels() is not free).
        self._predictions_out = self.metrics.events_out.labels(config.name, "predictions")
        self._record_seconds = self.metrics.record_seconds.labels(config.name)
        self._label_wait = self.metrics.label_wait_seconds.labels(config.name)
        self._events_in: dict[tuple[str, str], Any] = {}
        # Dead letters of this run by reason, and how many in a row (see _count).
        self.dead_letters: collections.Counter[str] = collections.Counter()
        self._dl_streak = 0
        self._dl_progress = -1
        self.lifecycle = LifecycleRuntime(self)  # registry, commands, shadow and lifecycle topics
        self.admin_url: str | None = None  # advertised to `models` commands (runtime/liveness.py)
        self._live: LivenessMember | None = None

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
        topic_of = {"features": self.topics.features, "labels": self.topics.labels}
        kind_of = {v: k for k, v in topic_of.items()}

        self._start_watchdog()
        consumer = make_consumer(self.config)
        if self.exactly_once:
            producer = make_producer(self.config, transactional=True)
        else:  # deliveries are counted; a failed one stops the processor (see _commit)
            producer = make_producer(self.config, on_delivery=self._on_delivery)
        self._consumer, self._producer = consumer, producer
        try:
            if self.exactly_once:
                # Fence any previous instance first: that aborts its open transaction, whose
                # pending offsets would otherwise keep committed() waiting (KIP-447).
                _retrying(lambda: producer.init_transactions(30))
            tps = [TopicPartition(topic_of[k], p) for k, p in sources]
            for tp in _retrying(lambda: consumer.committed(tps, timeout=10)):
                if tp.offset >= 0:
                    self.committed[(kind_of[tp.topic], tp.partition)] = tp.offset
            consumer.assign(
                [TopicPartition(topic_of[k], p, self.positions.get((k, p), OFFSET_BEGINNING)) for k, p in sources]
            )
            self._eof = {src: False for src in sources}
            self._fetched: dict[Source, int] = {}
            self._tps = {src: TopicPartition(topic_of[src[0]], src[1]) for src in sources}
            for src in sources:  # KIP-695: know every partition's lag before the first fetch
                self._ask_broker(src)
            self._follow_order_log()
            merger = self.merger = EventTimeMerger(sources, self.config.processor.max_idle_ms)
            self.metrics.watch(self._state)
            if self.store.latest() is None:
                self._checkpoint("initial")
            else:
                self._announce(self.store.meta(self.store.latest()))
            self._ckpt_learned, self._ckpt_time = engine.n_learned, time.monotonic()
            self._range_start = dict(self.positions)
            log.info(
                "processing",
                extra={"fields": {"model": self.config.name, "partitions": n_partitions,
                                  "resume": {_source_key(s): o for s, o in self.positions.items()},
                                  "committed": {_source_key(s): o for s, o in self.committed.items()}}},
            )
            self._loop(consumer, merger, kind_of, exit_when_idle_s, max_seconds)
            if self._in_txn or self._tickets:
                if not self._in_txn:
                    self._begin()
                self._commit(final=True)
            self._checkpoint("shutdown")
        finally:
            self._watchdog_stop.set()
            self.saver.wait()  # a version being written is complete and consistent: let it land
            if self._in_txn and self.exactly_once:
                try:
                    producer.abort_transaction(10)
                except KafkaException:
                    pass
            consumer.close()
            producer.flush(10)
        return self.engine  # a rollback may have replaced the engine

    # -- the loop ----------------------------------------------------------------------

    def _loop(self, consumer, merger: EventTimeMerger, kind_of, exit_when_idle_s, max_seconds) -> None:
        cfg = self.config.processor
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
                if self._in_txn:  # wake up in time to commit what is pending
                    early = 4000 if self.exactly_once else 1000
                    due = self._txn_started + cfg.commit_interval_ms / early - time.monotonic()
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
            age_ms = (now - self._txn_started) * 1000
            caught_up_now = processed < cfg.batch_size
            if self._in_txn and (age_ms >= cfg.commit_interval_ms or (
                    self.exactly_once and caught_up_now and age_ms >= cfg.commit_interval_ms / 4)):
                self._commit()
            self._maybe_checkpoint(now)
            if len(self.lifecycle.queue):  # commands apply between transactions only
                if self._in_txn:
                    self._commit()
                self.lifecycle.run_commands()
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

    def _drain(self, merger: EventTimeMerger) -> int:
        """Process the records the merger releases (at most one batch); return how many."""
        engine = self.engine
        assert engine is not None
        if self._follower is not None:
            return self._drain_recorded(merger)
        caught_up = self._lag_check()
        now_ms = self.clock()
        self._batch_headers = _ce_headers("prediction", "", self.config.name, 0, now_ms)[:-1]
        positions, committed, emit, count = self.positions, self.committed, self._emit, self._count
        process = engine.process
        counts: dict[tuple[str, str], int] = {}
        processed = 0
        first_ts = None
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
                    if not self._in_txn:
                        self._begin()
                    for output in outputs:
                        emit(output, now_ms)
                else:
                    for output in outputs:
                        count(output)
            positions[source] = run[-1].offset + 1
            processed += len(run)
            self._txn_records += live
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
            self.timings.setdefault("first_record", batch_start)
            if not self._time_range:
                self._time_range = [first_ts, last_ts]
            self._time_range[1] = max(self._time_range[1], last_ts)
            for key, n in counts.items():
                child = self._events_in.get(key)
                if child is None:
                    child = self._events_in[key] = self.metrics.events_in.labels(self.config.name, *key)
                child.inc(n)
            self._predictions_out.inc(self._n_predictions)
            self._n_predictions = 0
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
            log.warning("cannot read watermarks", extra={"fields": {"source": _source_key(source),
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
                          extra={"fields": {"source": _source_key(source), "recorded_first": first, "found": head}})
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
                    if not self._in_txn:
                        self._begin()
                    for output in outputs:
                        self._emit(output, now_ms)
                    self._txn_records += 1
                else:
                    for output in outputs:
                        self._count(output)
            positions[source] = records[-1].offset + 1
            processed += len(records)
            follower.advance()
        if not len(follower):
            self._follower = None
            log.info("recorded order replayed: merging by the event-time rules",
                     extra={"fields": {"positions": {_source_key(s): o for s, o in positions.items()}}})
        return processed

    def _write_order(self) -> None:
        """Add this unit of work's merge decisions to the order log (inside its transaction)."""
        if not self._order:
            return
        while True:
            try:
                self._producer.produce(self.topics.order, value=self._order.flush(), on_delivery=self._order_delivered)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._produced += 1
        self._order_unacked += 1

    def _order_delivered(self, err: KafkaError | None, msg: Any) -> None:
        self._order_unacked -= 1
        if err is None:
            self._order_next = max(self._order_next, msg.offset() + 1)
        if not self.exactly_once:
            self._on_delivery(err, msg)

    # -- outputs -----------------------------------------------------------------------

    def _count(self, output: Output) -> None:
        if isinstance(output, DeadLetter):
            self.metrics.dead_letters.labels(self.config.name, output.reason).inc()
            self._dead_lettered(output)
        elif isinstance(output, DriftEvent):
            self.metrics.drift_events.labels(self.config.name, output.detector).inc()

    def _dead_lettered(self, output: DeadLetter) -> None:
        """Count a dead letter; warn when they come in a row (N, 10 N, 100 N, ...).

        In a row: no prediction made and no example learned since the previous one, which is
        what input that does not match the deployment's schema looks like.
        """
        self.dead_letters[output.reason] += 1
        engine = self.engine
        progress = engine.counters.predictions + engine.n_learned if engine is not None else 0
        if progress != self._dl_progress:
            self._dl_progress, self._dl_streak = progress, 0
        self._dl_streak += 1
        n = self.config.processor.dead_letter_warn_after
        streak = self._dl_streak
        if streak >= n and streak % n == 0 and str(streak // n).strip("0") == "1":
            log.warning(
                f"{streak} dead letters in a row, nothing predicted or learned in between: the input does not "
                f"match the deployment's schema? ([model] features and classes; `driftline tail dlq` shows why)",
                extra={"fields": {"model": self.config.name, "in_a_row": streak, "reason": output.reason,
                                  "detail": output.detail[:200], "topic": self.topics.dlq}},
            )

    def _produce(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers)
                self._produced += 1
                return
            except BufferError:
                self._producer.poll(0.05)

    def _emit(self, output: Output, now_ms: int) -> None:
        model = self.config.name
        if type(output) is Prediction:  # the hot path: one per feature event
            key = output.id.encode()
            ce_id = f"{model}/{output.id}".encode()  # docs/events.md: <model>/<event id>
            headers = [*self._batch_headers, ("ce_id", ce_id), ("dl_model_version", _version_bytes(output.model_version))]
            self._produce(self.topics.predictions, key, orjson.dumps(output.body()), headers)
            self._n_predictions += 1
            return
        if type(output) is ShadowPrediction or type(output) is LifecycleEvent:
            self.lifecycle.emit(output, now_ms)
            return
        self._count(output)
        if isinstance(output, DriftEvent):
            headers = _ce_headers("drift", output.id, model, output.model_version, now_ms)
            value = orjson.dumps(output.body(), option=orjson.OPT_NON_STR_KEYS)
            self._produce(self.topics.drift, output.id.encode(), value, headers)
            self.metrics.events_out.labels(model, "drift").inc()
            log.info("drift detected", extra={"fields": output.body()})
        else:
            rec = output.record
            headers = [
                ("dl_reason", output.reason.encode()),
                ("dl_detail", output.detail[:1000].encode()),
                ("dl_topic", (self.topics.features if rec.kind == "features" else self.topics.labels).encode()),
                ("dl_partition", str(rec.partition).encode()),
                ("dl_offset", str(rec.offset).encode()),
                ("dl_timestamp", str(rec.timestamp).encode()),
            ]
            self._produce(self.topics.dlq, rec.key, rec.value, headers)
            self.metrics.events_out.labels(model, "dlq").inc()

    # -- transactions and checkpoints --------------------------------------------------

    def _start_watchdog(self) -> None:
        """Exit the process if a transactional call blocks far past its own timeout.

        librdkafka can block in ``send_offsets_to_transaction`` forever when the broker or
        its group coordinator dies mid-transaction (librdkafka #5456, #5511; a kill -9 of
        the broker reproduces it). Nothing can cancel that call, so the only way on is a
        restart by the supervisor: the open transaction is aborted by the next instance's
        fencing, and restore + replay keep every output exactly-once.
        """
        self._hang_deadline: float | None = None
        self._watchdog_stop = threading.Event()
        limit = float(os.environ.get("DRIFTLINE_TXN_HANG_TIMEOUT_S", HANG_TIMEOUT_S))

        def watch() -> None:
            while not self._watchdog_stop.wait(1.0):
                deadline = self._hang_deadline
                if deadline is not None and time.monotonic() > deadline + limit - HANG_TIMEOUT_S:
                    log.critical("a Kafka transaction call hung past its timeout: exiting for a restart",
                                 extra={"fields": {"timeout_s": limit, "exit_code": EXIT_HUNG}})
                    for handler in logging.getLogger("driftline").handlers:
                        handler.flush()
                    os._exit(EXIT_HUNG)

        threading.Thread(target=watch, name="driftline-watchdog", daemon=True).start()

    def _begin(self) -> None:
        """Open a unit of work: a Kafka transaction, or (at-least-once) just a commit interval."""
        if self.exactly_once:
            self._producer.begin_transaction()
        self._in_txn = True
        self._txn_records = 0
        self._txn_started = time.monotonic()

    def _commit(self, final: bool = False) -> None:
        """Commit outputs together with the consumed positions (never moving them back)."""
        topic_of = {"features": self.topics.features, "labels": self.topics.labels}
        offsets = []
        for source, position in self.positions.items():
            offset = max(position, self.committed.get(source, 0))
            offsets.append(TopicPartition(topic_of[source[0]], source[1], offset))
        if not self.exactly_once:
            self._commit_at_least_once(offsets, final)
            return
        self._write_order()
        self._hang_deadline = time.monotonic() + HANG_TIMEOUT_S
        try:
            if offsets:
                self._producer.send_offsets_to_transaction(offsets, self._consumer.consumer_group_metadata(), 30)
            self._producer.commit_transaction(60)
        finally:
            self._hang_deadline = None
        self._committed(offsets)

    def _committed(self, offsets: list[TopicPartition]) -> None:
        self._in_txn = False
        if self._txn_records:
            self.timings["last_commit"] = time.perf_counter()
        kind_of = {self.topics.features: "features", self.topics.labels: "labels"}
        for tp in offsets:
            self.committed[(kind_of[tp.topic], tp.partition)] = tp.offset
        self.metrics.batch_seconds.labels(self.config.name).observe(time.monotonic() - self._txn_started)

    def _commit_at_least_once(self, offsets: list[TopicPartition], final: bool = False) -> None:
        """Commit input offsets once every output made before them is acknowledged.

        Never blocks the stream: each interval leaves a ticket (outputs produced so far,
        offsets), and the newest ticket whose outputs have all been delivered (counted by
        the delivery callback) is committed. A crash can repeat the outputs made after the
        last committed ticket, never lose one. ``final`` (shutdown) flushes and commits all.
        """
        producer = self._producer
        self._write_order()
        if final:
            producer.flush(30)
        else:
            producer.poll(0)  # serve delivery reports
        if self._delivery_error is not None:
            raise KafkaException(self._delivery_error)  # a restart replays and sends it again
        self._tickets.append((self._produced, offsets))
        ready: list[TopicPartition] | None = None
        while self._tickets and self._tickets[0][0] <= self._delivered:
            ready = self._tickets.popleft()[1]
        if ready:
            self._consumer.commit(offsets=ready, asynchronous=not final)
        self._committed(ready or [])

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        """At-least-once: count acknowledged outputs; remember a failed one for _commit."""
        if err is None:
            self._delivered += 1
        elif self._delivery_error is None:
            self._delivery_error = err
            log.error("an output could not be delivered", extra={"fields": {"topic": msg.topic(), "error": err.str()}})

    def _maybe_checkpoint(self, now: float) -> None:
        engine = self.engine
        assert engine is not None
        if self._in_txn or self._replaying():
            return
        if self.saver.busy:
            done = self.saver.poll()
            if done is None:
                return  # one version at a time: a cut that falls due now waits for this one
            self._saved(done, commit=False)
            return
        ckpt = self.config.checkpoint
        due = engine.checkpoint_due
        if due and (due != "drift" or (engine.n_learned - self._ckpt_learned >= ckpt.drift_min_examples
                                       and now - self._ckpt_time >= ckpt.drift_min_seconds)):
            self._checkpoint(due, wait=False)
        elif engine.n_learned - self._ckpt_learned >= ckpt.every_examples:
            self._checkpoint("periodic", wait=False)
        elif now - self._ckpt_time >= ckpt.every_seconds and engine.n_learned > self._ckpt_learned:
            self._checkpoint("periodic", wait=False)

    def _checkpoint(self, trigger: str, wait: bool = True) -> dict[str, Any] | None:
        """Cut a version of the engine at the current positions.

        With ``wait`` (start-up, shutdown, lifecycle commands) the version is stored,
        registered and announced before this returns its metadata. Without it, a forked
        child writes it (runtime/snapshots.py) and :meth:`_saved` registers it once the
        child is done. Predictions name the new version from the cut on; if its write fails,
        they go back to the last good one and the failed number is never reused.
        """
        engine = self.engine
        assert engine is not None
        if self.saver.busy:
            self._saved(self.saver.wait())
        # A version number whose write failed is not reused: predictions may carry it.
        version = max(self.store.next_version(), self._failed_version + 1)
        parent = engine.version or None
        meta = {
            "parent": parent,
            "created_at": _now_ms(),
            "trigger": trigger,
            "examples_seen": engine.n_learned,
            "positions": {_source_key(s): o for s, o in self.positions.items()},
            "offset_range": {
                _source_key(s): [self._range_start.get(s, 0), o] for s, o in self.positions.items()
            },
            "event_time_range": list(self._time_range),
            "params": engine.model._get_params(),
            "model_class": type(engine.model).__name__,
            "metrics": engine.scores.values(),
            "counters": vars(engine.counters),
            "driftline_version": __version__,
            **lifecycle_meta(engine),
        }
        if self._order_unacked:  # committed already: only the delivery reports are unserved
            self._producer.flush(30)
        state = {"engine": engine, "positions": dict(self.positions), "order_offset": self._order_next}
        # Whatever happens to this save, the next cut is due a full interval from now (a
        # failing disk must not be retried every batch).
        self._ckpt_learned, self._ckpt_time = engine.n_learned, time.monotonic()
        # From the cut on, predictions name the new version (the registry's serving intervals
        # start at the cut's stream time), also while the child is still writing it.
        engine.version, engine.checkpoint_due = version, None
        range_start, time_range = self._range_start, self._time_range
        self._range_start, self._time_range = dict(self.positions), []
        self.saver.start(version, meta, state)
        if wait or not self.saver.forking:
            stored = self._saved(self.saver.wait())
            if stored is None:  # nothing was stored: the next version still covers this range
                self._range_start, self._time_range = range_start, time_range
            return stored
        return None

    def _saved(self, done: SaveResult | None, commit: bool = True) -> dict[str, Any] | None:
        """Register and announce a finished save, or count its failure."""
        engine = self.engine
        if done is None or engine is None:
            return None
        if done.error is not None:
            self._failed_version = done.version
            if engine.version == done.version:  # serve under the last good version again
                engine.version = done.meta["parent"] or 0
            self.metrics.snapshot_failures.labels(self.config.name).inc()
            log.error("snapshot failed: keeping the last good version",
                      extra={"fields": {"version": done.version, "error": done.error}})
            return None
        stored = self.store.meta(done.version)
        self.metrics.versions.labels(self.config.name, stored["trigger"]).inc()
        self.metrics.snapshot_seconds.labels(self.config.name).observe(done.seconds)
        log.info("version cut", extra={"fields": {"version": done.version, "trigger": stored["trigger"],
                                                  "examples_seen": stored["examples_seen"],
                                                  "seconds": round(done.seconds, 3)}})
        self._announce(stored, commit)
        self.lifecycle.on_version(stored)
        return stored

    def _announce(self, meta: dict[str, Any], commit: bool = True) -> None:
        """Publish a version's metadata on the compacted ``.versions`` topic (idempotent by key).

        Without ``commit`` it rides in the transaction of the next batch (one commit less).
        """
        now_ms = _now_ms()
        headers = _ce_headers("version", f"{self.config.name}/v{meta['version']}", self.config.name, meta["version"], now_ms)
        if not self._in_txn:
            self._begin()
        self._produce(self.topics.versions, str(meta["version"]).encode(), orjson.dumps(meta), headers)
        if commit:
            self._commit()

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
        topic_of = {"features": self.topics.features, "labels": self.topics.labels}
        for source in self._eof:
            n = merger.buffered(source)
            if n < cap // 2 and source not in self._paused:
                continue  # the common case, once per source per poll: nothing to build
            tp = TopicPartition(topic_of[source[0]], source[1])
            if n >= cap and source not in self._paused:
                consumer.pause([tp])
                self._paused.add(source)
                self.metrics.backpressure_pauses.labels(self.config.name, _source_key(source)).inc()
                log.info("backpressure: partition paused",
                         extra={"fields": {"source": _source_key(source), "buffered": n, "cap": cap}})
            elif n < cap // 2 and source in self._paused:
                consumer.resume([tp])
                self._paused.discard(source)
                self.metrics.backpressure_resumes.labels(self.config.name, _source_key(source)).inc()
                log.info("backpressure: partition resumed",
                         extra={"fields": {"source": _source_key(source), "buffered": n, "cap": cap}})

    def _update_lag(self, consumer) -> None:
        topic_of = {"features": self.topics.features, "labels": self.topics.labels}
        for source in self._eof:
            tp = TopicPartition(topic_of[source[0]], source[1])
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                self._lag[_source_key(source)] = max(0, high - self.positions.get(source, 0))

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
            "fairness": engine.fairness.gauges() if engine.fairness is not None else None,
        }

