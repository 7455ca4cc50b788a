"""Global mode's predictor: serves every event with the version the rule picks, exactly once
(docs/scaling.md, "Global mode").

Any number of predictors form a consumer group over ``.features`` (static membership,
``group.instance.id`` from ``--instance``, range assignor), each with its own transactional
producer: a batch's predictions and the input offsets they cover commit in one transaction,
so a restarted or moved partition is served again from its committed offset, and a fenced
zombie can publish nothing. Each predictor tails ``.versions`` read_committed from the
start, verifies every release (digest, then the HMAC signature, before unpickling) and
every heartbeat (its HMAC), and loads a release before an event needs it. A release or
heartbeat that does not verify, or a release that does not follow the last good one, is
refused (logged, counted by reason in ``driftline_global_versions_refused``,
and the record dead-lettered on ``.dlq`` with that reason, in the next transaction) and the
predictor goes on serving the versions it trusts.

Bounded staleness (core/version_choice.py): an event of time t is served by the newest
version with watermark ≤ t − Δ, and waits while none above t − Δ is known, at most
``max_wait_ms``; after that it is served by the newest version and marked ``stale``.

Served quality (``[scale] served_labels``): the predictor also joins the labels of the
partitions it owns with the predictions it served (runtime/served_labels.py); the labels
offsets and served drift events commit in the same transaction as the predictions.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import BadEventError, decode_features
from driftline.core.outputs import Prediction
from driftline.core.version_choice import VersionBook
from driftline.exceptions import ConfigError, DriftlineError, FencedError
from driftline.observability.global_metrics import GlobalMetrics
from driftline.runtime.clients import make_consumer, make_producer
from driftline.runtime.collector import ce_headers
from driftline.runtime.served_labels import Record, ServedLabels
from driftline.runtime.trainer import HEARTBEAT_KEY, release_store
from driftline.runtime.unit_of_work import fenced, retrying
from driftline.versions.signing import heartbeat_verifies, unseal

__all__ = ["Predictor"]

log = logging.getLogger("driftline.predictor")


def _now_ms() -> int:
    return int(time.time() * 1000)


class Predictor:
    """One member of a global deployment's predictor group."""

    def __init__(self, config: DeploymentConfig, signing_key: bytes, registry: CollectorRegistry = REGISTRY,
                 clock: Callable[[], int] = _now_ms) -> None:
        if config.scale.mode != "global":
            raise ConfigError("the predictor role needs [scale] mode = \"global\"")
        if not config.scale.instance:
            raise ConfigError("a predictor needs an instance id: driftline run --role predictor --instance ID")
        self.config = config
        self.topics = config.topics
        self.clock = clock
        self._key = signing_key
        self.engine = Engine(config)  # decodes and predicts; its fresh model is version 0
        self.models: dict[int, Any] = {0: self.engine.model}
        self.examples: dict[int, int] = {0: 0}
        self.book = VersionBook()
        self.releases = release_store(config, signing_key)
        self.metrics = GlobalMetrics(config.name, registry)
        self.stopping = threading.Event()
        self.pending: dict[int, collections.deque[Any]] = {}
        self.assigned: set[int] = set()
        self._at_end: set[int] = set()
        self._waiting_since: dict[tuple[int, int], float] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.assignments = 0
        self._served_up_to: dict[int, int] = {}  # event time of the last features served per partition
        self._refused: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []  # dead letters to send
        # .versions offsets (per partition) below which every refused record is on .dlq already:
        # committed with the dead letters, for the versions consumer's group, so a restart that
        # reads .versions from the start again does not dead-letter the same records twice
        self._dead_lettered: dict[int, int] = {}
        self._versions: Any = None
        self.labels = ServedLabels(config, self.engine, registry) if config.scale.served_labels else None

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def summary(self) -> dict[str, Any]:
        summary = {"model": self.config.name, "role": "predictor", "instance": self.config.scale.instance,
                   "newest_version": self.book.newest, "assignments": self.assignments, **self.counts}
        if self.labels is not None:
            summary["served"] = self.labels.summary()
        return summary

    # -- running -------------------------------------------------------------------------

    def run(self, exit_when_idle_s: float | None = None, max_seconds: float | None = None) -> None:
        self._abort_error: KafkaException | None = None
        try:
            self._run(exit_when_idle_s, max_seconds)
        except KafkaException as exc:
            # a later produce() of a fenced producer only says "Fatal error"; the abort names the cause
            if not (fenced(exc) or fenced(self._abort_error)):
                raise
            raise FencedError(f"another predictor took over instance {self.config.scale.instance} "
                              f"(transactional.id {self.config.transactional_id}): this one stops") from None

    def _run(self, exit_when_idle_s: float | None, max_seconds: float | None) -> None:
        cfg, scale = self.config, self.config.scale
        group = cfg.predictor_group_id
        consumer = make_consumer(cfg, group_id=group, **{
            "group.instance.id": f"{group}.{scale.instance}",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": scale.session_timeout_ms,
        })
        versions = make_consumer(cfg, group_id=f"{group}.versions.{scale.instance}")
        if self.labels is not None:
            self.labels.open()
        producer = make_producer(cfg, transactional=True,
                                 **{"transaction.timeout.ms": max(1000, scale.session_timeout_ms - 2000)})
        try:
            retrying(lambda: producer.init_transactions(30))
            meta = versions.list_topics(self.topics.versions, timeout=10).topics[self.topics.versions]
            partitions = [TopicPartition(self.topics.versions, p) for p in meta.partitions]
            self._dead_lettered = {tp.partition: tp.offset for tp in versions.committed(partitions, timeout=30)
                                   if tp.offset >= 0}
            versions.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions])
            self._versions = versions
            consumer.subscribe([self.topics.features], on_assign=self._on_assign, on_revoke=self._on_revoke,
                               on_lost=self._on_revoke)
            started = last_progress = time.monotonic()
            batch = cfg.processor.batch_size
            while not self.stopping.is_set():
                self._poll_versions(versions)
                if self.labels is not None:
                    self.labels.poll(self.assigned)
                waiting = any(self.pending.values())
                for m in consumer.consume(batch, 0.01 if waiting else 0.05):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            self._at_end.add(m.partition())
                            continue
                        raise KafkaException(err)
                    if m.partition() in self.assigned:
                        self._at_end.discard(m.partition())
                        self.pending.setdefault(m.partition(), collections.deque()).append(m)
                if self._serve(producer, consumer):
                    last_progress = time.monotonic()
                now = time.monotonic()
                idle = (self.assignments and not any(self.pending.values()) and self.assigned <= self._at_end
                        and not (self.labels is not None and self.labels.waiting))
                if exit_when_idle_s is not None and idle and now - last_progress >= exit_when_idle_s:
                    break
                if max_seconds is not None and now - started >= max_seconds:
                    break
        finally:
            self._abort_error = self._abort(producer)
            consumer.close()
            versions.close()
            if self.labels is not None:
                self.labels.close()
            try:
                producer.flush(10)
            except (KafkaException, SystemError):  # a fenced (fatal) producer may fail here too: keep the cause
                pass

    @staticmethod
    def _abort(producer: Any) -> KafkaException | None:
        """Abort a transaction left open by an error (none is open between batches); the
        error the abort met names the cause (fenced) of a fatal producer."""
        try:
            producer.abort_transaction(10)
        except KafkaException as exc:
            if exc.args and isinstance(exc.args[0], KafkaError) and exc.args[0].code() == KafkaError._STATE:
                return None  # no transaction open: the normal way out
            return exc
        return None

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignments += 1
        self.assigned = {tp.partition for tp in consumer.assignment()} | {tp.partition for tp in partitions}
        if self.labels is not None:
            self.labels.assign(consumer, self.assigned)
        log.info("partitions assigned", extra={"fields": {"instance": self.config.scale.instance,
                                                          "partitions": sorted(self.assigned)}})

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Nothing is open between batches: forget what was fetched and not served (the next
        owner starts at the committed offset)."""
        for tp in partitions:
            self.assigned.discard(tp.partition)
            self.pending.pop(tp.partition, None)
            self._at_end.discard(tp.partition)
            self._served_up_to.pop(tp.partition, None)
        if self.labels is not None:
            self.labels.revoke([tp.partition for tp in partitions])

    # -- versions ------------------------------------------------------------------------

    def _poll_versions(self, versions: Any) -> None:
        for m in versions.consume(500, 0):
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(m.error())
                continue
            try:
                body = orjson.loads(m.value())
            except orjson.JSONDecodeError:
                self._refuse(m, None, "version_malformed", "not JSON")
                continue
            if not isinstance(body, dict):
                self._refuse(m, None, "version_malformed", "not a JSON object")
                continue
            if m.key() == HEARTBEAT_KEY:
                watermark = body.get("watermark")
                if not isinstance(watermark, int) or isinstance(watermark, bool):
                    self._refuse(m, None, "version_malformed", "a heartbeat without an integer watermark")
                    continue
                if not heartbeat_verifies(body, self._key):
                    self._refuse(m, None, "version_bad_signature", "the heartbeat's signature does not verify")
                    continue
                self.book.heartbeat(watermark)
                self.metrics.watermark.set(watermark)
            else:
                self._load(body, m)

    def _load(self, body: dict[str, Any], record: Any) -> None:
        version = body.get("version")
        if isinstance(version, int) and version in self.book:
            return
        reason = "version_malformed"
        try:
            blob = base64.b64decode(body["inline"]) if "inline" in body else self.releases.read(version)
            reason = "version_bad_digest"
            if hashlib.sha256(blob).hexdigest() != body["sha256"]:
                raise ValueError("its bytes do not match the digest announced")
            reason = "version_bad_signature"
            meta, model = unseal(blob, self._key)  # checks the signature before unpickling
            reason = "version_mismatch"
            if meta["version"] != version or meta["watermark"] != body["watermark"]:
                raise ValueError("the announcement does not match the signed metadata")
            reason = "version_out_of_order"
            self.book.add(version, meta["watermark"])
        except (DriftlineError, ValueError, KeyError, TypeError) as exc:
            if reason == "version_malformed" and isinstance(exc, DriftlineError):
                reason = "version_unreadable"  # the store did not give the bytes
            self._refuse(record, version, reason, str(exc))
            return
        self.models[version] = model
        self.examples[version] = meta["examples"]
        self.counts["versions_loaded"] += 1
        self.metrics.loaded.inc()
        self.metrics.serving.set(version)
        self.metrics.watermark.set(self.book.watermark)

    def _refuse(self, record: Any, version: Any, reason: str, why: str) -> None:
        """Count, log and dead-letter (with the next transaction) a release not loaded."""
        self.counts["versions_refused"] += 1
        self.metrics.refused.labels(self.config.name, reason).inc()
        log.error("model version refused: serving the last good one",
                  extra={"fields": {"model": self.config.name, "version": version, "reason": reason,
                                    "detail": why, "serving": self.book.newest}})
        if record.offset() < self._dead_lettered.get(record.partition(), 0):
            return  # dead-lettered by this instance before a restart
        self._refused.append((record.key(), record.value() or b"", [
            ("dl_reason", reason.encode()),
            ("dl_detail", why[:1000].encode()),
            ("dl_topic", record.topic().encode()),
            ("dl_partition", str(record.partition()).encode()),
            ("dl_offset", str(record.offset()).encode()),
            ("dl_timestamp", str(record.timestamp()[1]).encode()),
            ("dl_instance", str(self.config.scale.instance).encode()),
        ]))
        self._dead_lettered[record.partition()] = record.offset() + 1

    # -- serving -------------------------------------------------------------------------

    def _choose(self, partition: int, offset: int, event_time: int) -> tuple[int, bool] | None:
        scale = self.config.scale
        if scale.staleness == "latest":
            return self.book.newest, False
        version = self.book.choose(event_time, scale.max_staleness_ms)
        if version is not None:
            self._waiting_since.pop((partition, offset), None)
            return version, False
        since = self._waiting_since.setdefault((partition, offset), time.monotonic())
        if time.monotonic() - since < scale.max_wait_ms / 1000:
            return None
        del self._waiting_since[(partition, offset)]
        return self.book.newest, True

    def _serve(self, producer: Any, consumer: Any) -> int:
        """Serve what can be served now, in one transaction with its offsets; how many."""
        cfg, engine = self.config, self.engine
        name, now_ms = cfg.name, self.clock()
        headers_base = ce_headers("prediction", "", name, 0, now_ms)[:-1]
        out: list[Record] = []
        offsets: dict[int, int] = {}
        for partition, queue in self.pending.items():
            while queue:
                m = queue[0]
                t = m.timestamp()[1]
                chosen = self._choose(partition, m.offset(), t)
                if chosen is None:
                    break
                queue.popleft()
                offsets[partition] = m.offset() + 1
                self._served_up_to[partition] = max(t, self._served_up_to.get(partition, t))
                version, stale = chosen
                try:
                    event = decode_features(m.value(), engine.schema, name, engine.privacy)
                    engine.model = self.models[version]
                    prediction, proba = engine.predict(event.features)
                except BadEventError:
                    self.counts["bad_events"] += 1  # the trainer dead-letters it
                    continue
                body = Prediction(event.id, name, version, self.examples[version], prediction, proba, t,
                                  now_ms).body()
                if stale:
                    body["stale"] = True
                    self.counts["stale"] += 1
                    self.metrics.stale.inc()
                if cfg.scale.staleness == "latest" and version:
                    body["staleness_ms"] = t - self.book.watermark_of(version)
                headers = [*headers_base, ("ce_id", f"{name}/{event.id}".encode()),
                           ("dl_model_version", str(version).encode())]
                out.append((event.id.encode(), orjson.dumps(body), headers))
                if self.labels is not None:
                    self.labels.served(partition, event.id, prediction, version)
        drift: list[Record] = []
        label_offsets = {} if self.labels is None else self.labels.join(
            self._served_up_to, lambda partition: self._features_drained(consumer, partition), drift, now_ms,
            self.counts)
        refused, self._refused = self._refused, []
        if not offsets and not label_offsets and not refused:
            return 0
        producer.begin_transaction()
        topics = self.topics
        for topic, records in ((topics.predictions, out), (topics.drift, drift), (topics.dlq, refused)):
            for key, value, headers in records:
                while True:
                    try:
                        producer.produce(topic, value=value, key=key, headers=headers)
                        break
                    except BufferError:
                        producer.poll(0.05)
        positions = [TopicPartition(self.topics.features, p, o) for p, o in offsets.items()]
        positions += [TopicPartition(self.topics.labels, p, o) for p, o in label_offsets.items()]
        if positions:
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        if refused:  # the dead letters' .versions position, for this instance's versions group
            dead_lettered = [TopicPartition(self.topics.versions, p, o) for p, o in self._dead_lettered.items()]
            producer.send_offsets_to_transaction(dead_lettered, self._versions.consumer_group_metadata(), 30)
        producer.commit_transaction(60)
        self.counts["predictions"] += len(out)
        self.metrics.predictions.inc(len(out))
        if self.labels is not None:
            self.labels.publish({*offsets, *label_offsets})
        return len(offsets) + len(label_offsets)

    # -- served quality ------------------------------------------------------------------

    def _features_drained(self, consumer: Any, partition: int) -> bool:
        """Every feature event of ``partition`` in Kafka now is served (a label read after its
        features were written then has nothing left to wait for)."""
        if partition not in self._at_end or self.pending.get(partition):
            return False
        tp = TopicPartition(self.topics.features, partition)
        low, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
        position = consumer.position([tp])[0].offset
        if position < 0:  # nothing consumed since the assignment: it started at the committed offset
            position = consumer.committed([tp], timeout=5)[0].offset
        return max(position, low) >= high
