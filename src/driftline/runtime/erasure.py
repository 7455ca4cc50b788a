"""The ``erase`` command: exact unlearning of one data subject by replay, and its receipt.

Applied like every lifecycle command (runtime/lifecycle.py): between two transactions, to
a copy, all or nothing. Steps:

1. find the subject's records (core/erasure.py: by record key or event id) in the input
   topics, from their beginning to the current position; none: a one-line error;
2. restore the newest stored version that cannot contain them (its positions are not past
   the subject's first record on any source); none: a one-line error;
3. replay the inputs since, in the order the ``.order`` log recorded (with the wall times
   recorded), leaving out the subject's records and those of earlier erasures; records the
   log does not cover go by the event-time rules. The join buffer so never holds them;
   any left in it are purged all the same;
4. cut a version (trigger ``erasure``), announced together with the receipt on
   ``.lifecycle`` (action ``erase``) and its audit entry, and with tombstones (the subject's
   keys, null values) on the subject-keyed output topics that are compacted
   (``.predictions`` and ``.shadow`` by event id, the dead letters by record key);
5. after the commit only: tag the superseded versions (those that may contain the subject)
   ``erased`` and, with ``[governance.erasure] delete_superseded = true``, delete them from
   the version store (the registry marks them ``DELETED``).

The receipt names no subject: event ids and keys appear as HMAC-SHA256 digests under the
snapshot key; records as offsets.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.erasure import ErasedRecords, Subject, event_id, restore_point, subject_digest, may_contain
from driftline.core.events import InputRecord
from driftline.core.order_log import OrderFollower
from driftline.core.ordering import EventTimeMerger, Source
from driftline.exceptions import DriftlineError, LifecycleError
from driftline.lifecycle.commands import Command
from driftline.runtime.clients import make_admin, make_consumer
from driftline.runtime.order_log import read_order_log

if TYPE_CHECKING:
    from driftline.runtime.lifecycle import LifecycleRuntime

__all__ = ["erase", "erasable", "erased_before", "read_range", "replay_without", "ERASED_TAG"]

log = logging.getLogger("driftline.erasure")

ERASED_TAG = "erased"  # registry tag on a version that may contain an erased subject: the receipt's id
# Commands whose effect a replay cannot repeat (a policy's promotions happen inside the replay).
_UNREPEATABLE = ("promote", "rollback", "add_challenger", "remove_challenger", "reset")


def read_range(config: DeploymentConfig, start: dict[Source, int], end: dict[Source, int],
               on_record: Callable[[InputRecord], None], timeout_s: float = 120.0) -> None:
    """Hand every input record in ``[start, end)`` per source to ``on_record`` (per source
    in offset order; sources interleave as fetched)."""
    topic_of = {"features": config.topics.features, "labels": config.topics.labels,
                "protected": config.topics.protected}  # the fairness side topic, when a version reads it
    kind_of = {v: k for k, v in topic_of.items()}
    sources = [s for s in end if end[s] > start.get(s, 0)]
    if not sources:
        return
    consumer = make_consumer(config, group_id=f"{config.group_id}.replay-{uuid.uuid4().hex[:8]}")
    try:
        consumer.assign([TopicPartition(topic_of[k], p, start.get((k, p), 0)) for k, p in sources])
        remaining = set(sources)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise LifecycleError(f"replay timed out; still missing {sorted(remaining)}", status=504)
            for msg in consumer.consume(1000, timeout=0.2):
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise LifecycleError(f"replay: {msg.error().str()}", status=502)
                    continue
                source = (kind_of[msg.topic()], msg.partition())
                if source not in remaining or msg.offset() >= end[source]:
                    continue
                on_record(InputRecord(source[0], source[1], msg.offset(), msg.timestamp()[1], msg.key(), msg.value()))
                if msg.offset() + 1 >= end[source]:
                    remaining.discard(source)
                    consumer.pause([TopicPartition(msg.topic(), msg.partition())])
    finally:
        consumer.close()


def erasable(registry: Any, name: str, version: int | str) -> int:
    """``version`` resolved, unless an erasure superseded it (restoring it would bring the
    subject back): then a one-line error."""
    number = registry.resolve(name, version)
    tags = next((v["tags"] for v in registry.versions(name) if v["version"] == number), {})
    if ERASED_TAG in tags:
        raise LifecycleError(f"version {number} may contain an erased subject (erasure {tags[ERASED_TAG]}): "
                             "it cannot serve again; nothing changed", status=409)
    return number


def erased_before(events: list[dict[str, Any]]) -> ErasedRecords:
    """Every record that earlier erasures removed (their receipts in the registry)."""
    erased = ErasedRecords()
    for event in events:
        if event["action"] == "erase":
            erased.update(ErasedRecords.from_ranges(event["details"].get("records") or {}))
    return erased


def replay_without(config: DeploymentConfig, engine: Engine, state: dict[str, Any], end: dict[Source, int],
                   skip: ErasedRecords) -> tuple[Engine, dict[str, int]]:
    """Feed ``engine`` (restored from ``state``) the inputs from its positions to ``end``
    minus ``skip``: in the recorded order where the ``.order`` log covers them, else by the
    event-time rules. Returns the engine and counts."""
    start = {tuple(k) if not isinstance(k, str) else k: v for k, v in state["positions"].items()}
    held: dict[Source, dict[int, InputRecord]] = {}
    read_range(config, start, end, lambda r: held.setdefault((r.kind, r.partition), {}).__setitem__(r.offset, r))
    counts = {"replayed": 0, "skipped": 0, "recorded_order": 0}

    def feed(record: InputRecord, now_ms: int) -> None:
        if skip.skips(record):
            counts["skipped"] += 1
            return
        engine.process(record, now_ms)
        counts["replayed"] += 1

    if state.get("order_offset") is not None:  # None: a version older than the order log
        entries, _ = read_order_log(config, state["order_offset"])
        follower = OrderFollower(entries)
        while (run := follower.next_run()) is not None:
            now_ms, source, first, last = run
            follower.advance()
            records = held.get(source, {})
            for offset in range(first, last + 1):
                record = records.pop(offset, None)
                if record is not None:
                    feed(record, now_ms)
                    counts["recorded_order"] += 1
    rest = {s: r for s, r in held.items() if r}
    if rest:  # not in the log: merged by the event-time rules, as a rollback's replay is
        merger = EventTimeMerger(list(end), max_idle_ms=0)
        for records in rest.values():
            for offset in sorted(records):
                merger.push(records[offset])
        while (record := merger.pop(lambda _s: 0, 0)) is not None:
            feed(record, 0)
    return engine, counts


def compacted_topics(config: DeploymentConfig, topics: list[str]) -> dict[str, bool]:
    """Whether each topic's cleanup.policy includes compact (a tombstone removes records there)."""
    admin = make_admin(config)
    out = {}
    try:
        futures = admin.describe_configs([ConfigResource("topic", t) for t in topics], request_timeout=10)
        for resource, future in futures.items():
            entries = future.result(timeout=15)
            policy = entries.get("cleanup.policy")
            out[resource.name] = policy is not None and "compact" in str(policy.value)
    except KafkaException as exc:
        raise LifecycleError(f"erase: cannot read the topics' cleanup policies: {exc.args[0]}", status=502) from exc
    return out


class Tombstones:
    """What an erasure removes from the subject-keyed output topics that are compacted:
    ``.predictions`` and ``.shadow`` by event id, the dead letters by record key (a topic
    with delete retention is listed in ``not_compacted`` instead)."""

    def __init__(self, config: DeploymentConfig, ids: set[str], keys: set[str]) -> None:
        self.topics = {"predictions": (config.topics.predictions, ids), "shadow": (config.topics.shadow, ids),
                       "dlq": (config.topics.dlq, keys)}
        compacted = compacted_topics(config, [topic for topic, _ in self.topics.values()])
        self.values = {kind: sorted(values) if compacted.get(topic) else []
                       for kind, (topic, values) in self.topics.items()}
        self.not_compacted = sorted(kind for kind, (topic, _) in self.topics.items() if not compacted.get(topic))

    def counts(self) -> dict[str, int]:
        return {kind: len(values) for kind, values in self.values.items()}

    def send(self, produce: Callable[[str, bytes, None], None]) -> None:
        for kind, values in self.values.items():
            for value in values:
                produce(self.topics[kind][0], value.encode(), None)


def superseded_versions(metas: list[dict[str, Any]], first: dict[str, int]) -> list[dict[str, Any]]:
    """The stored versions that may contain a subject first seen at ``first``, as a receipt lists them."""
    return [{"version": m["version"], "payload_sha256": m.get("payload_sha256"), "trigger": m.get("trigger")}
            for m in metas if may_contain(m.get("positions") or {}, first)]


def erase(runtime: LifecycleRuntime, cmd: Command, engine: Engine) -> tuple[Engine, Any]:
    """Apply an ``erase`` command (``params``: ``key`` or ``id``); see the module docstring."""
    config, store, registry, name = runtime.config, runtime.store, runtime.registry, runtime.config.name
    params = cmd.params
    if bool(params.get("key")) == bool(params.get("id")):
        raise LifecycleError("erase: give exactly one of key or id")
    subject = Subject("key" if params.get("key") else "id", str(params.get("key") or params.get("id")))
    end = dict(runtime._positions)
    events = registry.events(name)
    prior = erased_before(events)
    found = ErasedRecords()
    ids: set[str] = set()
    keys: set[bytes] = set()

    def match(record: InputRecord) -> None:
        if subject.matches(record) and not prior.skips(record):
            found.add(record)
            if (ident := event_id(record)) is not None:
                ids.add(ident)
            if record.key is not None:
                keys.add(record.key)

    read_range(config, {}, end, match)
    if not found:
        raise LifecycleError(f"erase: no events of {subject.describe()} in {config.topics.features} or "
                             f"{config.topics.labels} up to the current position; nothing changed", status=404)
    first = found.first()
    registry.sync(store)
    rows = {v["version"]: v for v in registry.versions(name) if v["status"] == "READY"}
    excluded = {v for v, row in rows.items() if ERASED_TAG in row["tags"]}
    metas = [store.meta(v) for v in store.versions() if v in rows]
    point = restore_point(metas, first, excluded)
    where = ", ".join(f"{s} offset {o}" for s, o in first.items())
    if point is None:
        raise LifecycleError(f"erase: no stored version before the subject's first event ({where}): exact "
                             "unlearning restores one; nothing changed", status=409)
    since = [e for e in events if e["action"] in _UNREPEATABLE and not str(e["actor"]).startswith("policy:")
             and (e["details"].get("version") or 0) > point["version"]]
    if since:
        raise LifecycleError(f"erase: the {since[0]['action']} command of version {since[0]['details']['version']} "
                             f"came after v{point['version']}, the last version before the subject's first event "
                             f"({where}); a replay cannot repeat it; nothing changed", status=409)
    _, state = store.load(point["version"])
    skip = ErasedRecords()
    skip.update(found)
    skip.update(prior)
    restored, counts = replay_without(config, state["engine"], state, end, skip)
    purged = engine.join.holds(ids)  # what the serving engine held (it is replaced, not changed)
    restored.join.purge(ids)  # the replayed engine never saw them: nothing to remove, by construction
    superseded = superseded_versions(metas, first)
    delete = config.governance.erasure.delete_superseded
    tombstones = Tombstones(config, ids, {k.decode(errors="replace") for k in keys})
    digest = store.signing_key
    details = {
        "subject": {"by": subject.by, "hmac_sha256": subject_digest(digest, subject.value)},
        "event_ids_hmac_sha256": sorted(subject_digest(digest, i) for i in ids),
        "removed": {**found.counts(), "join_buffer": purged},
        "records": found.ranges(),
        "restored": point["version"], "replaced": engine.version,
        "replayed": counts["replayed"], "skipped": counts["skipped"], "recorded_order": counts["recorded_order"],
        "tombstones": tombstones.counts(), "not_compacted": tombstones.not_compacted,
        "superseded": superseded, "superseded_deleted": delete,
        "examples_seen": restored.model_examples,
    }
    event = runtime._event("erase", cmd.actor, cmd.reason, details, restored.version)

    serving, result = runtime._cut("erasure", engine, restored, event,
                                   extra=lambda: tombstones.send(runtime.work.produce),
                                   tags=((None, "erasure", event.id),
                                         *((s["version"], ERASED_TAG, event.id) for s in superseded)))
    if delete:
        for s in superseded:
            try:
                store.delete(s["version"])
                registry.mark_deleted(name, s["version"])
            except DriftlineError as exc:  # the receipt is committed: say what is left
                log.error("erase: could not delete a superseded version",
                          extra={"fields": {"version": s["version"], "error": str(exc)}})
    return serving, result
