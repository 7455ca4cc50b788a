"""The version store on a real S3-compatible server (SeaweedFS) through s3fs."""

from __future__ import annotations

import time
import uuid

import fsspec
import pytest

from driftline.exceptions import SnapshotError, SnapshotIntegrityError
from driftline.lifecycle.registry import Registry
from driftline.runtime.snapshots import BackgroundSaver
from driftline.versions.store import VersionStore

KEY = b"s3-store-key"


@pytest.fixture(scope="module")
def bucket(s3_endpoint) -> str:
    name = f"driftline-{uuid.uuid4().hex[:12]}"
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    deadline = time.monotonic() + 60
    while True:  # the gateway answers before the filer behind it is ready
        try:
            fs.mkdir(name)
            return name
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture
def url(bucket) -> str:
    return f"s3://{bucket}/{uuid.uuid4().hex[:8]}"


def test_save_list_load_and_delete(url):
    store = VersionStore(url, "m", KEY)
    assert store.versions() == []
    for k in range(3):
        store.save(store.next_version(), {"trigger": f"t{k}"}, {"w": k})
    assert store.versions() == [1, 2, 3] and store.load(2)[1] == {"w": 1} and store.meta(3)["trigger"] == "t2"
    assert store.uri(1) == f"{url}/m/v00000001.snap"
    store.delete(1)
    store.delete(1)  # a missing one is not an error
    assert store.versions() == [2, 3]


def test_a_second_machine_sees_new_versions_and_cannot_overwrite_one(url):
    a, b = VersionStore(url, "m", KEY), VersionStore(url, "m", KEY)
    assert b.versions() == []
    a.save(1, {"trigger": "a"}, "from a")
    assert b.versions() == [1]  # no stale listing
    with pytest.raises(SnapshotError, match="already exists"):
        b.save(1, {"trigger": "b"}, "from b")
    # the exclusive PUT itself refuses, even past the existence check (two workers racing)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    with pytest.raises(OSError):
        fs.pipe_file(f"{url.removeprefix('s3://')}/m/v00000001.snap", b"other", mode="create")
    assert a.load(1)[1] == "from a"


def test_tampered_and_foreign_key_versions_are_refused_before_unpickling(url):
    store = VersionStore(url, "m", KEY)
    store.save(1, {}, {"w": 1})
    with pytest.raises(SnapshotIntegrityError):
        VersionStore(url, "m", b"other key").load(1)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    path = f"{url.removeprefix('s3://')}/m/v00000001.snap"
    blob = bytearray(fs.cat_file(path))
    blob[-1] ^= 0xFF
    fs.pipe_file(path, bytes(blob))
    with pytest.raises(SnapshotIntegrityError):
        store.load(1)


def test_the_forked_snapshot_writer_saves_to_s3(url):
    store = VersionStore(url, "m", KEY)
    store.versions()  # the parent's client exists before the fork
    saver = BackgroundSaver(store)
    saver.start(1, {"trigger": "manual"}, {"w": [1, 2]})
    done = saver.wait()
    assert done.error is None and store.load(1)[1] == {"w": [1, 2]}


def test_the_registry_indexes_an_s3_store(url, tmp_path):
    store = VersionStore(url, "m", KEY)
    for v in (1, 2):
        store.save(v, {"trigger": "periodic", "examples_seen": v}, {"v": v})
    registry = Registry(str(tmp_path / "r.sqlite"))
    assert registry.sync(store) == [1, 2]
    assert registry.get("m", 2)["source"] == f"{url}/m/v00000002.snap"

