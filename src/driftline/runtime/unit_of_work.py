"""A unit of work: the outputs of some batches and the input positions they consumed,
committed together.

Exactly-once: a Kafka transaction (KIP-98), the consumed offsets sent to it through the
consumer group's metadata (KIP-447), so a zombie of an older generation or an older
instance is fenced. At-least-once: no transaction; every commit interval leaves a *ticket*
(outputs produced so far, offsets), and the newest ticket whose outputs were all
acknowledged is committed, so a crash may repeat outputs but never lose one.

A watchdog thread exits the process when a transactional call hangs past its own
timeouts (librdkafka #5456, #5511): nothing can cancel that call, and a restart (fencing,
restore, replay) keeps every output exactly-once.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

__all__ = ["UnitOfWork", "HANG_TIMEOUT_S", "EXIT_HUNG", "retrying", "fenced"]

log = logging.getLogger("driftline.processor")

# A commit that blocks longer than its calls' own timeouts (30 s + 60 s) plus this margin is
# hung: the process exits with EXIT_HUNG (EX_TEMPFAIL) for its supervisor to restart it.
# DRIFTLINE_TXN_HANG_TIMEOUT_S overrides the limit.
HANG_TIMEOUT_S = 120.0
EXIT_HUNG = 75

_COORDINATOR_ERRORS = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def fenced(exc: BaseException) -> bool:
    """Whether a Kafka error says a newer producer with our transactional.id fenced us."""
    if not isinstance(exc, KafkaException):
        return False
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is None:
        return False
    return err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH) or (
        err.code() == KafkaError._FATAL and "fenced" in err.str().lower())


def retrying(call: Callable[[], Any], deadline_s: float = 60.0) -> Any:
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


class UnitOfWork:
    """Owns the producer's transactions (or at-least-once tickets) and the committed offsets.

    ``committed`` maps (kind, partition) to the next offset to process according to the
    group's committed offsets; ``topic_of`` maps a kind to its topic. Every message goes
    out through :meth:`produce`, which counts it (the at-least-once tickets compare that
    count with the acknowledged one).
    """

    def __init__(self, topic_of: dict[str, str], exactly_once: bool,
                 batch_seconds: Any = None) -> None:
        self.topic_of = dict(topic_of)
        self._kind_of = {v: k for k, v in topic_of.items()}
        self.exactly_once = exactly_once
        self.committed: dict[tuple[str, int], int] = {}
        self.in_txn = False
        self.records = 0  # live records processed in this unit of work
        self.started = 0.0
        self.last_commit = 0.0  # perf_counter() of the last commit that covered records
        self.before_commit: Callable[[], None] = lambda: None  # e.g. write the order log
        self.on_abort: Callable[[], None] = lambda: None  # e.g. the audit chain forgets its aborted entries
        self._batch_seconds = batch_seconds  # a labelled Histogram child, or None
        self._producer: Any = None
        self._consumer: Any = None
        self._produced = self._delivered = 0
        self._delivery_error: KafkaError | None = None
        self._tickets: collections.deque[tuple[int, list[TopicPartition]]] = collections.deque()
        self._hang_deadline: float | None = None
        self._watchdog_stop = threading.Event()

    # -- wiring --------------------------------------------------------------------------

    def attach(self, producer: Any, consumer: Any) -> None:
        self._producer, self._consumer = producer, consumer

    @property
    def pending(self) -> bool:
        """Whether something is open: a transaction, or tickets not yet committed."""
        return self.in_txn or bool(self._tickets)

    def start_watchdog(self) -> None:
        """Exit the process if a transactional call blocks far past its own timeout."""
        self._watchdog_stop.clear()
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

    def stop_watchdog(self) -> None:
        self._watchdog_stop.set()

    # -- producing -------------------------------------------------------------------------

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None,
                on_delivery: Callable[[KafkaError | None, Any], None] | None = None, partition: int = -1) -> None:
        """Hand one message to the producer (waiting while its queue is full) and count it."""
        producer = self._producer
        extra: dict[str, Any] = {}
        if on_delivery is not None:
            extra["on_delivery"] = on_delivery
        if partition >= 0:
            extra["partition"] = partition
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, **extra)
                self._produced += 1
                return
            except BufferError:
                producer.poll(0.05)

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        """At-least-once: count acknowledged outputs; remember a failed one for commit()."""
        if err is None:
            self._delivered += 1
        elif self._delivery_error is None:
            self._delivery_error = err
            log.error("an output could not be delivered", extra={"fields": {"topic": msg.topic(), "error": err.str()}})

    # -- transactions -----------------------------------------------------------------------

    def begin(self) -> None:
        """Open a unit of work: a Kafka transaction, or (at-least-once) just a commit interval."""
        if self.exactly_once:
            self._producer.begin_transaction()
        self.in_txn = True
        self.records = 0
        self.started = time.monotonic()

    def ensure_open(self) -> None:
        if not self.in_txn:
            self.begin()

    def commit(self, positions: dict[tuple[str, int], int], final: bool = False) -> None:
        """Commit the outputs together with the consumed positions (never moving them back)."""
        offsets = [TopicPartition(self.topic_of[source[0]], source[1], max(position, self.committed.get(source, 0)))
                   for source, position in positions.items()]
        self.before_commit()
        if not self.exactly_once:
            self._commit_at_least_once(offsets, final)
            return
        self._hang_deadline = time.monotonic() + HANG_TIMEOUT_S
        try:
            if offsets:
                self._producer.send_offsets_to_transaction(offsets, self._consumer.consumer_group_metadata(), 30)
            self._producer.commit_transaction(60)
        finally:
            self._hang_deadline = None
        self._committed(offsets)

    def abort(self) -> KafkaException | None:
        """Abort an open transaction (shutdown after an error, a lost partition, a failed
        lifecycle command). Returns the error the abort met: for a producer in a fatal state
        it names the cause (fenced), where a later produce() only says "Fatal error"."""
        error = None
        if self.in_txn:
            self.on_abort()
        if self.in_txn and self.exactly_once:
            try:
                self._producer.abort_transaction(10)
            except KafkaException as exc:  # fenced: the broker aborts it for us
                log.warning("abort failed", extra={"fields": {"error": str(exc)}})
                error = exc
        self.in_txn = False
        return error

    def flush(self, timeout_s: float = 30.0) -> None:
        """Serve every delivery report (at-least-once: a failed delivery shows at once)."""
        self._producer.flush(timeout_s)
        if self._delivery_error is not None:
            raise KafkaException(self._delivery_error)

    def _committed(self, offsets: list[TopicPartition]) -> None:
        self.in_txn = False
        if self.records:
            self.last_commit = time.perf_counter()
        for tp in offsets:
            self.committed[(self._kind_of[tp.topic], tp.partition)] = tp.offset
        if self._batch_seconds is not None:
            self._batch_seconds.observe(time.monotonic() - self.started)

    def _commit_at_least_once(self, offsets: list[TopicPartition], final: bool = False) -> None:
        """Commit input offsets once every output made before them is acknowledged.

        Never blocks the stream: each interval leaves a ticket (outputs produced so far,
        offsets), and the newest ticket whose outputs have all been delivered (counted by
        the delivery callback) is committed. ``final`` (shutdown) flushes and commits all.
        """
        producer = self._producer
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
