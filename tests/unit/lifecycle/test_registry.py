"""The registry: idempotent indexing, aliases, retention candidates, serving history."""

from __future__ import annotations

import sqlite3

import pytest

from driftline.core.arena import bucket_of
from driftline.exceptions import RegistryError
from driftline.lifecycle.registry import SCHEMA, Registry
from driftline.versions.store import VersionStore


def _meta(version, trigger="periodic", stream_time=None, **extra):
    return {"name": "m", "version": version, "created_at": version, "trigger": trigger, "parent": version - 1 or None,
            "examples_seen": version * 100, "stream_time": stream_time if stream_time is not None else version * 10,
            **extra}


@pytest.fixture
def registry(tmp_path):
    return Registry(str(tmp_path / "r.sqlite"))


def test_register_is_idempotent_and_reads_back(registry):
    assert registry.register(_meta(1, "initial", metrics={"accuracy": 0.5}), source="file:///x")
    assert not registry.register(_meta(1, "initial"), source="file:///x")
    row = registry.get("m", 1)
    assert (row["trigger"], row["metrics"], row["status"], row["source"]) == ("initial", {"accuracy": 0.5}, "READY", "file:///x")


def test_aliases_resolve_and_move(registry):
    for v in (1, 2):
        registry.register(_meta(v), source="")
    registry.set_alias("m", "champion", 1)
    registry.set_alias("m", "champion", 2)
    assert registry.get("m", "champion")["version"] == 2 and registry.get("m", 1)["aliases"] == []
    with pytest.raises(RegistryError):
        registry.get("m", "nobody")


def test_retention_keeps_the_last_n_and_every_aliased_promoted_or_kept_version(registry):
    for v in range(1, 11):
        registry.register(_meta(v, "promote" if v == 3 else "periodic"), source="")
    registry.set_alias("m", "champion", 2)
    registry.set_tag("m", 5, "keep", "rollback")
    registry.set_tag("m", 6, "promoted", "{}")
    assert registry.retention_candidates("m", keep_last=3) == [1, 4, 7]
    registry.mark_deleted("m", 1)
    assert registry.retention_candidates("m", keep_last=3) == [4, 7]
    assert registry.get("m", 1)["status"] == "DELETED"  # the row (and the history) stays


def test_served_by_uses_stream_time_intervals_and_the_variant_split(registry):
    registry.register(_meta(1, "initial", stream_time=0), source="")
    registry.register(_meta(2, stream_time=100, variants=[["c", 0.5]]), source="")
    registry.register(_meta(3, stream_time=200), source="")
    assert registry.served_by("m", "k", 50)["version"] == 1
    assert registry.served_by("m", "k", 100)["version"] == 1  # the version was cut after t=100
    answer = registry.served_by("m", "k", 150)
    assert answer["version"] == 2 and answer["variant"] == ("c" if bucket_of("k") < 0.5 else "champion")
    assert registry.served_by("m", "k", 10_000)["version"] == 3


def test_serving_intervals_never_end_before_they_start_after_a_rollback(registry):
    registry.register(_meta(1, "initial", stream_time=0), source="")
    registry.register(_meta(2, stream_time=100), source="")
    registry.register(_meta(3, stream_time=300), source="")
    registry.register(_meta(4, "rollback", stream_time=100), source="")  # v2's engine, restored at t=300
    registry.register(_meta(5, stream_time=400), source="")
    intervals = [(s["version"], s["from"], s["to"]) for s in registry.serving("m")]
    # before: (3, 300, 100): "serves after 300 until 100"
    assert intervals == [(1, 0, 100), (2, 100, 300), (3, 300, 300), (4, 300, 400), (5, 400, None)]
    assert registry.served_by("m", "k", 350)["version"] == 4 and registry.served_by("m", "k", 250)["version"] == 2


def test_sync_indexes_the_store(registry, tmp_path):
    store = VersionStore(str(tmp_path / "store"), "m", key=b"k")
    for v in (1, 2):
        store.save(v, {"trigger": "periodic", "examples_seen": v}, {"v": v})
    assert registry.sync(store) == [1, 2] and registry.sync(store) == []
    assert registry.get("m", 2)["source"].endswith("v00000002.snap")
    store.delete(1)
    assert store.versions() == [2]


def test_events_are_idempotent_by_id(registry):
    body = {"id": "e1", "model": "m", "action": "promote", "actor": "test", "reason": "r", "model_version": 1,
            "details": {"p_value": 0.001}, "at": 5}
    assert registry.record_event(body) and not registry.record_event(body)
    assert registry.events("m")[0]["details"] == {"p_value": 0.001}


def test_the_schema_is_plain_sql():
    """No SQLite-only types, so the same statements create the PostgreSQL tables."""
    text = " ".join(SCHEMA).upper()
    for word in ("AUTOINCREMENT", "WITHOUT ROWID", " BLOB", "STRICT"):
        assert word not in text
    sqlite3.connect(":memory:").executescript(";".join(SCHEMA))
