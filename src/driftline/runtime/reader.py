"""Read what a deployment publishes, as typed records, once each.

A :class:`Reader` consumes ``.predictions``, ``.shadow``, ``.drift`` or ``.versions`` with
``isolation.level=read_committed`` (records of aborted transactions are never seen) and
turns each body into its dataclass of :mod:`driftline.client.records`. With a ``group_id``
it resumes where that group stopped: a record's offset is stored once the loop asks for
the next record (the caller has processed it), stored offsets are committed every 5 s,
on a rebalance and on :meth:`Reader.close`: at-least-once for the caller, like the
confluent-kafka at-least-once pattern (``enable.auto.offset.store=false``).

A deployment running ``processor.guarantee = "at_least_once"`` may publish an output again
after a crash, with the same ``ce_id`` header; the reader then drops repeats of the last
``dedupe_window`` ids it saw (on by default for such deployments). When it resumes a group,
it first reads back up to ``lookback`` records before the committed offset of each
partition it is assigned, without yielding them, so a repeat published after the reader
stopped is still recognised: repeats follow their original by at most the outputs of one
processor commit interval plus the crash, far fewer than the default 10,000.

Nothing connects until the first record is asked for:

>>> from driftline.config import load_config
>>> reader = Reader(load_config(name="elec", processor={"guarantee": "at_least_once"}), "predictions")
>>> reader.topic, reader.dedupe
('driftline.elec.predictions', True)
>>> Reader(load_config(name="elec"), "features")
Traceback (most recent call last):
...
ValueError: a Reader reads one of drift, lifecycle, predictions, shadow, versions, not 'features'
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from driftline.client.records import RECORD_TYPES, Record, parse_body
from driftline.config import DeploymentConfig
from driftline.exceptions import KafkaSetupError, RecordFormatError
from driftline.runtime.clients import make_consumer
from driftline.runtime.topics import cluster_metadata

__all__ = ["Reader"]

DEDUPE_WINDOW = 100_000  # ce_ids remembered: far more than the outputs of one commit interval
LOOKBACK = 10_000  # records per partition read back on resume to refill the window
_LOOKBACK_LIMIT_S = 60.0


class Reader:
    """Iterate the typed records of one output topic of a deployment.

    ``kind``: ``predictions``, ``shadow``, ``drift`` or ``versions``. ``group_id``: resume
    from this consumer group's committed offsets (None: a fresh group, nothing kept).
    ``start``: where a group without committed offsets begins. ``dedupe``: drop records whose
    ``ce_id`` was already yielded (None: when the deployment runs at-least-once).
    """

    def __init__(self, config: DeploymentConfig, kind: str = "predictions", group_id: str | None = None,
                 start: Literal["earliest", "latest"] = "earliest", dedupe: bool | None = None,
                 dedupe_window: int = DEDUPE_WINDOW, lookback: int = LOOKBACK,
                 settings: Mapping[str, Any] | None = None) -> None:
        if kind not in RECORD_TYPES:
            raise ValueError(f"a Reader reads one of {', '.join(sorted(RECORD_TYPES))}, not {kind!r}")
        self.config = config
        self.kind = kind
        self.topic: str = getattr(config.topics, kind)
        self.group_id = group_id
        self.start = start
        self.dedupe = config.processor.guarantee == "at_least_once" if dedupe is None else dedupe
        self.dedupe_window = dedupe_window
        self.lookback = lookback
        self.settings = dict(settings or {})
        self.duplicates = 0  # records dropped as repeats of a ce_id already yielded
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._consumer: Consumer | None = None

    def open(self) -> Reader:
        """Check the cluster and the topic, and join the group; idempotent."""
        if self._consumer is None:
            cluster_metadata(self.config)  # fails fast on credentials and TLS
            group = self.group_id or f"driftline-reader-{uuid.uuid4().hex[:8]}"
            consumer = make_consumer(self.config, group_id=group, **{
                "auto.offset.reset": self.start, "enable.partition.eof": False,
                "enable.auto.commit": True, "auto.commit.interval.ms": 5000, **self.settings})
            described = consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
            if described is None or described.error is not None or not described.partitions:
                consumer.close()
                raise KafkaSetupError(f"topic {self.topic} does not exist: run `driftline topics create`")
            consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            self._consumer = consumer
        return self

    def __enter__(self) -> Reader:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __iter__(self) -> Iterator[Record[Any]]:
        return self.records()

    def records(self, idle_timeout: float | None = None, max_records: int | None = None) -> Iterator[Record[Any]]:
        """Yield records until ``max_records`` or ``idle_timeout`` seconds without a new one
        (None: forever). A record counts as processed once the next one is asked for."""
        consumer = self.open()._consumer
        assert consumer is not None
        yielded = 0
        last = time.monotonic()
        while max_records is None or yielded < max_records:
            messages = consumer.consume(500, timeout=0.2)
            if not messages:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    return
                continue
            last = time.monotonic()
            for msg in messages:
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaSetupError(f"reading {self.topic}: {msg.error().str()}")
                record = self._record(msg)
                if record is not None:
                    yield record
                    yielded += 1
                consumer.store_offsets(msg)  # processed (or a repeat): resume after it
                if max_records is not None and yielded >= max_records:
                    return

    def commit(self) -> None:
        """Commit the offsets of the records processed so far (also done every 5 s and on close)."""
        if self._consumer is not None:
            try:
                self._consumer.commit(asynchronous=False)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._NO_OFFSET:
                    raise

    def close(self) -> None:
        """Commit, leave the group and release the consumer."""
        if self._consumer is not None:
            try:
                self.commit()
            finally:
                self._consumer.close()
                self._consumer = None

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Refill the dedupe window from the records before each committed offset."""
        if not self.dedupe or self.lookback <= 0 or not partitions:
            return
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30) if tp.offset > 0}
        if not committed:
            return
        back = make_consumer(self.config, group_id=f"driftline-reader-lookback-{uuid.uuid4().hex[:8]}",
                             **{"enable.partition.eof": False})
        try:
            starts = {}
            for p, end in committed.items():
                low, _high = back.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
                starts[p] = max(low, end - self.lookback)
            pending = {p for p in committed if starts[p] < committed[p]}
            back.assign([TopicPartition(self.topic, p, starts[p]) for p in pending])
            deadline = time.monotonic() + _LOOKBACK_LIMIT_S
            while pending and time.monotonic() < deadline:
                for msg in back.consume(500, timeout=0.2):
                    if msg.error() is not None or msg.partition() not in pending:
                        continue
                    if msg.offset() < committed[msg.partition()]:
                        self._remember(dict(msg.headers() or []).get("ce_id"))
                # Transaction markers take offsets: done once the position reaches the commit.
                for tp in back.position([TopicPartition(self.topic, p) for p in pending]):
                    if tp.offset >= committed[tp.partition]:
                        pending.discard(tp.partition)
        finally:
            back.close()

    def _remember(self, ce_id: bytes | None) -> None:
        if ce_id is not None:
            self._seen[ce_id.decode(errors="replace")] = None
            if len(self._seen) > self.dedupe_window:
                self._seen.popitem(last=False)

    def _on_revoke(self, consumer: Consumer, _partitions) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException:
            pass  # nothing stored yet

    def _record(self, msg) -> Record[Any] | None:
        headers = {k: v.decode(errors="replace") for k, v in (msg.headers() or []) if v is not None}
        ce_id = headers.get("ce_id")
        if self.dedupe and ce_id is not None:
            if ce_id in self._seen:
                self.duplicates += 1
                return None
            self._remember(ce_id.encode())
        try:
            body = orjson.loads(msg.value() or b"null")
        except orjson.JSONDecodeError:
            raise RecordFormatError(f"{self.topic}[{msg.partition()}]@{msg.offset()} is not JSON") from None
        try:
            value = parse_body(self.kind, body)
        except RecordFormatError as exc:
            raise RecordFormatError(f"{self.topic}[{msg.partition()}]@{msg.offset()}: {exc}") from None
        key = msg.key()
        return Record(topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
                      key=None if key is None else key.decode(errors="replace"),
                      timestamp=msg.timestamp()[1], headers=headers, value=value)
