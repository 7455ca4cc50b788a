"""Global mode's predictor: serves every event with the version the rule picks, exactly once
(docs/scaling.md, "Global mode").

Any number of predictors form a consumer group over ``.features`` (static membership,
``group.instance.id`` from ``--instance``, range assignor), each with its own transactional
producer: a batch's predictions and the input offsets they cover commit in one transaction,
so a restarted or moved partition is served again from its committed offset, and a fenced
zombie can publish nothing. Each predictor tails ``.versions`` read_committed from the
start, verifies every release (digest, then the HMAC signature, before unpickling) and every
heartbeat (its HMAC), and loads a release before an event needs it. A release that does not verify, or does not follow the
last good one, is refused (logged, counted by reason in ``driftline_global_versions_refused``,
and the record dead-lettered on ``.dlq`` with that reason, in the next transaction) and the
predictor goes on serving the versions it trusts.

Bounded staleness (core/version_choice.py): an event of time t is served by the newest
version with watermark ≤ t − Δ, and waits while none above t − Δ is known, at most
``max_wait_ms``; after that it is served by the newest version and marked ``stale``.

Served quality (``[scale] served_labels``, core/served.py): the predictor also reads
``.labels`` of the partitions it owns (co-partitioned with ``.features``), from the group's
committed labels offset, and joins a label once the prediction for its event id was served
here, or, failing that, once its partition's features are served past the label's time (or
served to the partition's end), so a label read ahead does not overtake its prediction. The
labels offsets commit in the same transaction as the predictions; served drift events go
to ``.drift`` in it.
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
from driftline.core.events import BadEventError, decode_features, decode_label
from driftline.core.outputs import Prediction
from driftline.core.served import ServedQuality, served_drift_events
from driftline.core.version_choice import VersionBook
from driftline.exceptions import ConfigError, DriftlineError, FencedError
from driftline.observability.global_metrics import GlobalMetrics, ServedMetrics
from driftline.runtime.clients import make_consumer, make_producer
from driftline.runtime.collector import ce_headers
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
        # [scale] served_labels: labels fetched per partition, waiting for their features to be served
        self.quality: ServedQuality | None = None
        self.labels: Any = None  # the labels consumer, while running
        self.label_queue: dict[int, collections.deque[Any]] = {}
        self._served_up_to: dict[int, int] = {}  # event time of the last features served per partition
        self._published: dict[int, dict[str, Any]] = {}
        self._labels_paused: set[int] = set()
        self._refused: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []  # dead letters to send
        if config.scale.served_labels:
            self.quality = ServedQuality(self.engine.task, config.drift.detectors, config.drift.grace_examples,
                                         config.scale.served_buffer)
            self.served_metrics = ServedMetrics(config.name, self.engine.task, registry)

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def summary(self) -> dict[str, Any]:
        summary = {"model": self.config.name, "role": "predictor", "instance": self.config.scale.instance,
                   "newest_version": self.book.newest, "assignments": self.assignments, **self.counts}
        if self.quality is not None:
            summary["served"] = {str(p): q for p, q in self.quality.summary().items()}
        return summary

    # -- running -------------------------------------------------------------------------

    def run(self, exit_when_idle_s: float | None = None, max_seconds: float | None = None) -> None:
        try:
            self._run(exit_when_idle_s, max_seconds)
        except KafkaException as exc:
            if not fenced(exc):
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
        if self.quality is not None:  # assigned by hand, following .features (see _on_assign)
            self.labels = make_consumer(cfg, group_id=f"{group}.labels.{scale.instance}")
        producer = make_producer(cfg, transactional=True,
                                 **{"transaction.timeout.ms": max(1000, scale.session_timeout_ms - 2000)})
        try:
            retrying(lambda: producer.init_transactions(30))
            meta = versions.list_topics(self.topics.versions, timeout=10).topics[self.topics.versions]
            versions.assign([TopicPartition(self.topics.versions, p, OFFSET_BEGINNING) for p in meta.partitions])
            consumer.subscribe([self.topics.features], on_assign=self._on_assign, on_revoke=self._on_revoke,
                               on_lost=self._on_revoke)
            started = last_progress = time.monotonic()
            batch = cfg.processor.batch_size
            while not self.stopping.is_set():
                self._poll_versions(versions)
                if self.labels is not None:
                    self._poll_labels()
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
                        and not any(self.label_queue.values()))
                if exit_when_idle_s is not None and idle and now - last_progress >= exit_when_idle_s:
                    break
                if max_seconds is not None and now - started >= max_seconds:
                    break
        finally:
            consumer.close()
            versions.close()
            if self.labels is not None:
                self.labels.close()
                self.labels = None
            producer.flush(10)

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignments += 1
        self.assigned = {tp.partition for tp in consumer.assignment()} | {tp.partition for tp in partitions}
        if self.labels is not None:
            self._assign_labels(consumer)
        log.info("partitions assigned", extra={"fields": {"instance": self.config.scale.instance,
                                                          "partitions": sorted(self.assigned)}})

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Nothing is open between batches: forget what was fetched and not served (the next
        owner starts at the committed offset)."""
        for tp in partitions:
            self.assigned.discard(tp.partition)
            self.pending.pop(tp.partition, None)
            self._at_end.discard(tp.partition)
            self.label_queue.pop(tp.partition, None)
            self._served_up_to.pop(tp.partition, None)
        if self.labels is not None:  # reassigned from the committed offsets (the range assignor revokes all)
            self.labels.unassign()
            self._labels_paused.clear()

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
        self._refused.append((record.key(), record.value() or b"", [
            ("dl_reason", reason.encode()),
            ("dl_detail", why[:1000].encode()),
            ("dl_topic", record.topic().encode()),
            ("dl_partition", str(record.partition()).encode()),
            ("dl_offset", str(record.offset()).encode()),
            ("dl_timestamp", str(record.timestamp()[1]).encode()),
            ("dl_instance", str(self.config.scale.instance).encode()),
        ]))

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
        out: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
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
                if self.quality is not None:
                    self.quality.served(partition, event.id, prediction, version)
        drift: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        label_offsets = self._join_labels(consumer, drift, now_ms) if self.quality is not None else {}
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
        producer.commit_transaction(60)
        self.counts["predictions"] += len(out)
        self.metrics.predictions.inc(len(out))
        if self.quality is not None:
            self._publish_quality({*offsets, *label_offsets})
        return len(offsets) + len(label_offsets)

    # -- served quality ------------------------------------------------------------------

    def _assign_labels(self, consumer: Any) -> None:
        """Labels of the partitions owned, from the group's committed labels offset."""
        for partition in set(self.quality.partitions) - self.assigned:
            self.quality.forget(partition)  # moved away: its labels go to its new owner
        wanted = [TopicPartition(self.topics.labels, p) for p in sorted(self.assigned)]
        committed = consumer.committed(wanted, timeout=30) if wanted else []
        self.labels.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                            for tp in committed])

    def _poll_labels(self) -> None:
        """Fetch labels; a partition with a few batches waiting is paused (the rest waits in Kafka)."""
        batch = self.config.processor.batch_size
        for partition in [p for p in self._labels_paused if len(self.label_queue.get(p, ())) < 5 * batch]:
            self.labels.resume([TopicPartition(self.topics.labels, partition)])
            self._labels_paused.discard(partition)
        for m in self.labels.consume(batch, 0):
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(m.error())
                continue
            if m.partition() in self.assigned:
                try:
                    label = decode_label(m.value(), self.engine.schema, self.config.name)
                except BadEventError:
                    label = None  # the trainer dead-letters it
                self.label_queue.setdefault(m.partition(), collections.deque()).append((m, label))
        for partition, queue in self.label_queue.items():
            if len(queue) >= 10 * batch and partition not in self._labels_paused:
                self.labels.pause([TopicPartition(self.topics.labels, partition)])
                self._labels_paused.add(partition)

    def _join_labels(self, consumer: Any, drift: list[tuple[bytes, bytes, list[tuple[str, bytes]]]],
                     now_ms: int) -> dict[int, int]:
        """Join the labels whose prediction was served here, or whose partition's features
        are served past their time or to the end (their prediction was not served here); the
        served drift events go into ``drift``. The labels offsets to commit."""
        name, instance, quality = self.config.name, self.config.scale.instance, self.quality
        offsets: dict[int, int] = {}
        for partition, queue in self.label_queue.items():
            served_up_to = self._served_up_to.get(partition, float("-inf"))
            drained: bool | None = None  # asked of the broker at most once per partition and batch
            while queue:
                m, label = queue[0]
                if not (label is None or quality.holds(partition, label.id) or m.timestamp()[1] <= served_up_to):
                    if drained is None:
                        drained = self._features_drained(consumer, partition)
                    if not drained:
                        break
                queue.popleft()
                offsets[partition] = m.offset() + 1
                if label is None:
                    self.counts["bad_labels"] += 1
                    continue
                join = quality.label(partition, label.id, label.label)
                if join is None or not join.detections:
                    continue
                for event in served_drift_events(join, name, instance, m.offset(), m.timestamp()[1], now_ms):
                    headers = ce_headers("drift", event.id, name, event.model_version, now_ms)
                    drift.append((event.id.encode(), orjson.dumps(event.body(), option=orjson.OPT_NON_STR_KEYS),
                                  headers))
                    log.warning("served drift", extra={"fields": {"model": name, "partition": partition,
                                                                  "detector": event.detector, "id": event.id}})
        return offsets

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

    def _publish_quality(self, partitions: set[int]) -> None:
        summaries = self.quality.summary()
        for partition in partitions & set(summaries):
            summary = summaries[partition]
            self.served_metrics.update(partition, summary, self._published.get(partition, {}))
            self._published[partition] = summary
