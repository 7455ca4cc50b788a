"""The version store on a local directory (atomic writes) and on an fsspec URL."""

from __future__ import annotations

import os
import uuid

import fsspec
import pytest

from driftline.exceptions import SnapshotError, SnapshotIntegrityError, SnapshotNotFoundError
from driftline.versions.signing import HEADER_PEEK
from driftline.versions.store import VersionStore

KEY = b"store-key"


@pytest.fixture
def store(tmp_path) -> VersionStore:
    return VersionStore(str(tmp_path), "model-a", key=KEY)


def test_empty_store(store):
    assert (store.versions(), store.latest(), store.next_version()) == ([], None, 1)
    with pytest.raises(SnapshotNotFoundError):
        store.load(1)
    with pytest.raises(SnapshotNotFoundError):
        store.meta(1)


def test_save_latest_load_meta(store, tmp_path):
    saved = {}
    for k in range(3):
        version = store.next_version()
        saved[version] = store.save(version, {"trigger": f"t{k}"}, {"w": k})
    assert store.versions() == [1, 2, 3] and store.latest() == 3 and store.next_version() == 4
    meta, state = store.load(2)
    assert state == {"w": 1}
    assert meta == saved[2] == store.meta(2)
    assert (meta["name"], meta["version"], meta["trigger"]) == ("model-a", 2, "t1")
    # atomic writes leave no temporary file behind
    assert sorted(os.listdir(tmp_path / "model-a")) == ["v00000001.snap", "v00000002.snap", "v00000003.snap"]


def test_save_never_overwrites(store):
    store.save(1, {"trigger": "first"}, "original")
    with pytest.raises(SnapshotError, match="already exists"):
        store.save(1, {"trigger": "second"}, "replacement")
    assert store.load(1)[1] == "original"


def test_gaps_and_foreign_files(store, tmp_path):
    store.save(1, {}, 1)
    store.save(5, {}, 5)
    for junk in ["notes.txt", "v1.snap", "v00000009.snap.tmp-123", "v0000000x.snap"]:
        (tmp_path / "model-a" / junk).write_bytes(b"junk")
    assert store.versions() == [1, 5] and store.next_version() == 6


def test_models_do_not_see_each_other(tmp_path):
    a, b = VersionStore(str(tmp_path), "a", KEY), VersionStore(str(tmp_path), "b", KEY)
    a.save(1, {}, "a1")
    assert b.versions() == [] and a.versions() == [1]


def test_meta_larger_than_the_header_peek(store):
    big = "x" * (HEADER_PEEK + 10)
    store.save(1, {"note": big}, "state")
    assert store.meta(1)["note"] == big


def test_wrong_key_and_tampered_files_are_refused(store, tmp_path):
    store.save(1, {}, {"w": 1})
    with pytest.raises(SnapshotIntegrityError):
        VersionStore(str(tmp_path), "model-a", key=b"other").load(1)
    path = tmp_path / "model-a" / "v00000001.snap"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotIntegrityError):
        store.load(1)


def test_memory_filesystem_url():
    root = f"memory://driftline-test-{uuid.uuid4().hex}"
    store = VersionStore(root, "m", KEY)
    try:
        store.save(store.next_version(), {"trigger": "x"}, [1, 2])
        store.save(store.next_version(), {"trigger": "y"}, [3])
        assert store.versions() == [1, 2] and store.load(1)[1] == [1, 2] and store.meta(2)["trigger"] == "y"
    finally:
        fsspec.filesystem("memory").rm(root.removeprefix("memory://"), recursive=True)


def test_a_stored_engine_resumes_exactly(store, timeline):
    from driftline.config import DeploymentConfig
    from driftline.core.engine import Engine
    from driftline.datasets import stream

    records = timeline(list(stream("river:Phishing", limit=300)), 10)
    original = Engine(DeploymentConfig(name="model-a"))
    for r in records[:300]:
        original.process(r, 0)
    store.save(1, {"trigger": "manual"}, {"engine": original})
    restored = store.load(1)[1]["engine"]
    rest = records[300:]
    assert [restored.process(r, 0) for r in rest] == [original.process(r, 0) for r in rest]
    assert restored.scores.values() == original.scores.values()
