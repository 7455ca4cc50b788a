"""A registry rebuilt on another instance from the compacted topics alone (.versions,
.checkpoints, .lifecycle) holds what the running deployment's own registry holds."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.datasets import stream
from driftline.lifecycle.commands import Command
from driftline.lifecycle.registry import Registry
from driftline.runtime.clients import make_producer
from driftline.runtime.processor import Processor
from driftline.runtime.rebuild import rebuild_registry
from driftline.runtime.replay import encode_features, replay
from driftline.runtime.task import task_store_name
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration


def _rows(n, seed=3):
    return [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=n, seed=seed)]


def _same(rebuilt: list[dict], store: VersionStore) -> None:
    assert [r["version"] for r in rebuilt] == store.versions()
    for row in rebuilt:
        meta = store.meta(row["version"])
        assert (row["examples_seen"], row["parent"], row["trigger"]) == (
            meta["examples_seen"], meta.get("parent"), meta.get("trigger"))
        assert row["source"] == store.uri(row["version"])


def test_single_mode_versions_and_lifecycle_events(make_config, signing_key, tmp_path):
    config = make_config(checkpoint={"every_examples": 500}, drift={"policy": "none"})
    replay(config, _rows(2000), label_delay=20, n_rows=2000)
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    command = processor.lifecycle.queue.submit(Command("alias", {"alias": "candidate", "version": 2},
                                                       actor="test", reason="rebuild"))
    processor.run(exit_when_idle_s=2)
    event = command.wait(0)["event"]

    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    assert len(store.versions()) >= 4
    rebuilt = Registry(str(tmp_path / "elsewhere.sqlite"))
    done = rebuild_registry(config, rebuilt)
    _same(rebuilt.versions(config.name), store)
    assert done.versions == len(store.versions())
    assert [e["id"] for e in rebuilt.events(config.name)] == [event["id"]]
    assert rebuilt.events(config.name)[0]["action"] == "alias"
    again = rebuild_registry(config, rebuilt)  # idempotent: nothing is added twice
    assert (again.versions, again.lifecycle_events) == (0, 0)


def test_keyed_mode_every_task_history(make_config, signing_key, tmp_path):
    partitions = 4
    config = make_config(partitions=partitions, scale={"mode": "keyed", "session_timeout_ms": 6000},
                         checkpoint={"every_examples": 200, "every_seconds": 3600})
    toml = tmp_path / "keyed.toml"
    toml.write_text(f"""
name = "{config.name}"
partitions = {partitions}
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[scale]
mode = "keyed"
session_timeout_ms = 6000
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = 200
every_seconds = 3600
""")
    rng = random.Random(11)
    producer = make_producer(config)
    for i, (x, y) in enumerate(_rows(2000)):
        key = f"k{rng.randrange(100)}".encode()
        producer.produce(config.topics.features, orjson.dumps({"id": f"e{i}", "features": x}), key)
        producer.produce(config.topics.labels, orjson.dumps({"id": f"e{i}", "label": y}), key)
        producer.poll(0)
    assert producer.flush(30) == 0
    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode()}
    run = subprocess.run([sys.executable, "-m", "driftline.cli", "-c", str(toml), "run", "--instance", "w0",
                          "--exit-when-idle", "5"], env=env, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()[-2000:]

    rebuilt = Registry(str(tmp_path / "elsewhere.sqlite"))
    done = rebuild_registry(config, rebuilt)
    total = 0
    for p in range(partitions):
        store = VersionStore(config.checkpoint.store_url, task_store_name(config, p), signing_key)
        assert len(store.versions()) >= 2, f"task {p}"
        _same(rebuilt.versions(task_store_name(config, p)), store)
        total += len(store.versions())
    assert done.task_versions == total
