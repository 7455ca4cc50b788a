"""Erasure on the real broker: after ``erase`` the model is the one trained on the same
stream without the subject's events (logistic regression: the same weights; Hoeffding
tree: the same predictions on held-out events), the receipt on ``.lifecycle`` lists the
superseded versions with their digests, compacted output topics get tombstones, and a
superseded version can never serve again."""

from __future__ import annotations

import time

import orjson
import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
from prometheus_client import CollectorRegistry

from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.datasets import stream
from driftline.exceptions import LifecycleError
from driftline.lifecycle.commands import Command
from driftline.lifecycle.registry import Registry, registry_path
from driftline.runtime.clients import make_admin, make_producer
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

N, DELAY = 4000, 50
SUBJECT = "alice"
THEIRS = set(range(2600, 4000, 100))  # the subject's 14 events: keyed by the subject, ids e1500, e1600, ...


def _rows(n: int, seed: int):
    return [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=n, seed=seed)]


def _produce(config, rows) -> None:
    """Features keyed by the subject for its events, by the event id for the others; each
    label ``DELAY`` events after its features (all produced before the processor starts)."""
    producer = make_producer(config)
    t0 = int(time.time() * 1000) - (len(rows) + DELAY)
    for i, (x, y) in enumerate(rows):
        key = (SUBJECT if i in THEIRS else f"e{i}").encode()
        producer.produce(config.topics.features, key=key, value=orjson.dumps({"id": f"e{i}", "features": x}),
                         timestamp=t0 + i)
    for i, (x, y) in enumerate(rows):
        key = (SUBJECT if i in THEIRS else f"e{i}").encode()
        producer.produce(config.topics.labels, key=key, value=orjson.dumps({"id": f"e{i}", "label": y}),
                         timestamp=t0 + i + DELAY)
    assert producer.flush(30) == 0


def _reference(config, reader) -> Engine:
    """An engine fed the input topics as they are, minus the subject's records, in event-time order."""
    records = []
    for kind, topic in (("features", config.topics.features), ("labels", config.topics.labels)):
        for m in reader(config, topic):
            if m.key() != SUBJECT.encode():
                records.append(InputRecord(kind, m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value()))
    engine = Engine(config)
    for record in sorted(records, key=lambda r: (r.timestamp, r.kind != "labels", r.offset)):
        engine.process(record, now_ms=0)
    return engine


def _erase(config, signing_key, params):
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    command = processor.lifecycle.queue.submit(Command("erase", params, actor="test", reason="art. 17 request"))
    processor.run(exit_when_idle_s=2)
    return command


def _compact(config, topic: str) -> None:
    resource = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact,delete", incremental_operation=AlterConfigOpType.SET)])
    admin = make_admin(config)  # held: a collected client cancels its futures
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def test_erase_by_key_gives_the_weights_of_a_model_never_shown_the_subject(make_config, reader, signing_key):
    config = make_config(checkpoint={"every_examples": 1000}, drift={"policy": "none"})
    rows = _rows(N, seed=11)
    _produce(config, rows)
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    before = {v: store.meta(v) for v in store.versions()}
    _compact(config, config.topics.predictions)  # a compacted output topic: tombstones remove there

    result = _erase(config, signing_key, {"key": SUBJECT}).wait(0)

    meta, state = store.load(result["version"])
    erased, reference = state["engine"], _reference(config, reader)
    assert meta["trigger"] == "erasure"
    lr, ref = erased.model["LogisticRegression"], reference.model["LogisticRegression"]
    assert lr.weights == ref.weights and lr.intercept == ref.intercept  # exactly, not approximately
    assert erased.model["StandardScaler"].counts == reference.model["StandardScaler"].counts
    assert erased.n_learned == reference.n_learned == N - len(THEIRS)

    # The receipt: what went (counts, digests, no raw id), what it restored, what it supersedes.
    events = [orjson.loads(m.value()) for m in reader(config, config.topics.lifecycle)]
    receipt = next(e for e in events if e["action"] == "erase")
    d = receipt["details"]
    assert d["removed"] == {"features": len(THEIRS), "labels": len(THEIRS), "join_buffer": 0}
    assert len(d["event_ids_hmac_sha256"]) == len(THEIRS) and d["subject"]["by"] == "key"
    raw = orjson.dumps(receipt).decode()
    assert SUBJECT not in raw and "e2600" not in raw
    first = min(THEIRS)  # the subject's first features and label offsets (one partition, produced in order)
    clean = [v for v, m in before.items() if all(o <= first for o in m["positions"].values())]
    assert meta["parent"] == d["restored"] == max(clean)
    assert d["replayed"] + d["skipped"] == 2 * N - sum(before[max(clean)]["positions"].values())
    superseded = {s["version"]: s["payload_sha256"] for s in d["superseded"]}
    assert superseded == {v: m["payload_sha256"] for v, m in before.items() if v not in clean}
    assert superseded and d["superseded_deleted"] is False
    assert d["tombstones"] == {"predictions": len(THEIRS), "shadow": 0, "dlq": 0}
    assert d["not_compacted"] == ["dlq", "shadow"]
    tombstones = [m for m in reader(config, config.topics.predictions) if m.value() is None]
    assert sorted(m.key().decode() for m in tombstones) == sorted(f"e{i}" for i in THEIRS)
    audit = [orjson.loads(m.value()) for m in reader(config, config.topics.audit)]
    assert [a["subject"] for a in audit if a["kind"] == "lifecycle" and a["record"]["action"] == "erase"] == [
        receipt["id"]]

    # The superseded versions are marked, still stored (delete_superseded = false), and can never serve again.
    registry = Registry(registry_path(config))
    tagged = {v["version"] for v in registry.versions(config.name) if v["tags"].get("erased") == receipt["id"]}
    assert tagged == set(superseded) and set(superseded) <= set(store.versions())
    refused = _erase_then(config, signing_key, "rollback", {"to": max(superseded)})
    assert isinstance(refused, LifecycleError) and "may contain an erased subject" in str(refused)


def _erase_then(config, signing_key, action, params):
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    command = processor.lifecycle.queue.submit(Command(action, params, actor="test", reason="after erasure"))
    processor.run(exit_when_idle_s=2)
    return command.error


def test_erase_a_tree_predicts_as_one_never_shown_the_subject_and_deletes_superseded(make_config, reader,
                                                                                      signing_key):
    config = make_config(checkpoint={"every_examples": 1000}, drift={"policy": "none"},
                         model={"preset": "hoeffding_tree"}, governance={"erasure": {"delete_superseded": True}})
    rows, held_out = _rows(N, seed=12), _rows(300, seed=98)
    _produce(config, rows)
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)

    result = _erase(config, signing_key, {"key": SUBJECT}).wait(0)

    erased, reference = store.load(result["version"])[1]["engine"], _reference(config, reader)
    assert erased.n_learned == reference.n_learned
    assert [erased.model.predict_proba_one(x) for x, _ in held_out] == [
        reference.model.predict_proba_one(x) for x, _ in held_out]
    d = result["event"]["details"]
    gone = {s["version"] for s in d["superseded"]}
    assert gone and d["superseded_deleted"] is True and not gone & set(store.versions())
    registry = Registry(registry_path(config))
    assert {v["version"] for v in registry.versions(config.name) if v["status"] == "DELETED"} == gone
