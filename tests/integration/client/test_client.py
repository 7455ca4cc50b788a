"""driftline.client on the real broker: a Publisher app predicts like `driftline produce`,
keys land where Kafka's Java producer puts them, and a Reader resumes and deduplicates."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry

from driftline.client import Publisher, Reader, VersionAnnouncement, partition_for
from driftline.datasets import stream
from driftline.runtime.clients import make_consumer
from driftline.runtime.processor import Processor
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DRIFTLINE = str(Path(sys.executable).with_name("driftline"))
N_EVENTS, DELAY = 3000, 50


def _predictions(config, reader) -> dict[str, tuple]:
    """id -> what the model said, and after how many examples, for every prediction (one each).

    Not the model_version: versions are cut between batches, and batches depend on fetches.
    """
    out = {}
    for m in reader(config, config.topics.predictions):
        body = orjson.loads(m.value())
        assert body["id"] not in out, f"{body['id']} predicted twice"
        out[body["id"]] = (body["prediction"], body["proba"], body["model_examples"])
    return out


def _publisher_app(config, rows, delay: int) -> None:
    """What a producer application writes: features now, each label `delay` events later."""
    t0 = int(time.time() * 1000) - len(rows) - delay
    with Publisher(config) as publisher:
        for i, (x, _) in enumerate(rows):
            if i >= delay:
                publisher.label(f"e{i - delay}", rows[i - delay][1], time=t0 + i)
            publisher.features(f"e{i}", x, time=t0 + i)
        for i in range(max(0, len(rows) - delay), len(rows)):
            publisher.label(f"e{i}", rows[i][1], time=t0 + i + delay)


def test_a_publisher_app_on_three_partitions_predicts_like_driftline_produce(make_config, reader, signing_key):
    by_cli, by_app = make_config(partitions=3), make_config(partitions=3)
    produced = subprocess.run(
        [DRIFTLINE, "--name", by_cli.name, "--bootstrap", by_cli.kafka.bootstrap_servers, "produce",
         "synth:agrawal", "--limit", str(N_EVENTS), "--label-delay", str(DELAY)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "DRIFTLINE_SNAPSHOT_KEY": "client-test-key-0123456789"})
    assert produced.returncode == 0, produced.stderr
    _publisher_app(by_app, list(stream("synth:agrawal", limit=N_EVENTS, seed=42)), DELAY)  # produce's seed

    for config in (by_cli, by_app):
        Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)
    expected, got = _predictions(by_cli, reader), _predictions(by_app, reader)
    assert len(expected) == N_EVENTS
    assert got == expected


def _java_partitions(partitions: int, keys: list[str]) -> dict[str, tuple[int, int]]:
    """key -> (partition, murmur2) as Kafka's own Java client computes them (its jars, which
    scripts/kafka.sh fetches for the broker)."""
    fetched = subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "fetch"], capture_output=True, text=True,
                             timeout=600)
    assert fetched.returncode == 0, fetched.stderr
    libs = fetched.stderr.strip().splitlines()[-1].rsplit(" are in ", 1)[1]
    java = subprocess.run(["java", "-cp", f"{libs}/*", str(Path(__file__).with_name("JavaPartition.java")),
                           str(partitions), *keys], capture_output=True, text=True, timeout=120)
    assert java.returncode == 0, java.stderr
    rows = [line.split(" ") for line in java.stdout.splitlines()]
    return {key: (int(partition), int(hash_)) for key, partition, hash_ in rows}


def test_keys_land_on_the_partition_the_java_producer_picks(make_config):
    config = make_config(partitions=5, model={"features": {"a": "num"}, "classes": [0, 1]})
    keys = [f"e{i}" for i in range(40)] + ["21", "foobar", "order-2026-12-02-0001", "ünïcode-id"]
    with Publisher(config) as publisher:
        for key in keys:
            publisher.features(key, {"a": 1.0}, time=int(time.time() * 1000))
    consumer = make_consumer(config, group_id="client-partition-check")
    try:
        landed = {}
        consumer.assign([TopicPartition(config.topics.features, p, 0) for p in range(5)])
        deadline = time.monotonic() + 30
        while len(landed) < len(keys) and time.monotonic() < deadline:
            for m in consumer.consume(100, timeout=0.5):
                if m.error() is None:
                    landed[m.key().decode()] = m.partition()
    finally:
        consumer.close()
    java = _java_partitions(5, keys)
    assert landed == {key: java[key][0] for key in keys}
    assert {key: partition_for(key, 5) for key in keys} == landed
    assert (java["21"][1], java["foobar"][1]) == (-973932308, -790332482)  # Kafka's UtilsTest values
    assert len(set(landed.values())) == 5


def _write_toml(config, path: Path) -> None:
    path.write_text(f"""
name = "{config.name}"
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = {config.checkpoint.every_examples}
[processor]
guarantee = "at_least_once"
commit_interval_ms = {config.processor.commit_interval_ms}
batch_size = {config.processor.batch_size}
""")


def _published(config) -> int:
    consumer = make_consumer(config, group_id="client-watermarks")
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(config.topics.predictions, p), timeout=10)[1]
                   for p in range(config.partitions))
    finally:
        consumer.close()


def test_reader_yields_each_prediction_once_across_kill_minus_nine(make_config, reader, signing_key, tmp_path):
    # Offsets are committed every 2 s: a processor killed sooner after publishing predictions
    # publishes them again when it restarts (at-least-once), with the same ce_id.
    config = make_config(partitions=2, checkpoint={"every_examples": 2000},
                         processor={"guarantee": "at_least_once", "commit_interval_ms": 2000, "batch_size": 200})
    n = 8000
    rows = list(stream("synth:agrawal", limit=n, seed=5))
    _publisher_app(config, rows, DELAY)
    toml = tmp_path / "deployment.toml"
    _write_toml(config, toml)
    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode()}
    command = [sys.executable, "-m", "driftline.cli", "-c", str(toml), "run", "--exit-when-idle", "4"]
    rng = random.Random(7)

    # A consumer app reads the first records with its group, stops, and later resumes.
    group = f"{config.name}-consumer-app"
    with Reader(config, "predictions", group_id=group) as first_run:
        kills = 0
        for _ in range(2):
            before = _published(config)
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while _published(config) <= before + 100 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
        assert kills == 2, "the processor finished before it could be killed"
        seen = [r.value.id for r in first_run.records(idle_timeout=5, max_records=100)]
    assert len(seen) == 100
    final = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert final.returncode == 0, final.stderr.decode()[-2000:]

    raw = collections.Counter(orjson.loads(m.value())["id"] for m in reader(config, config.topics.predictions))
    assert set(raw) == {f"e{i}" for i in range(n)}
    assert sum(raw.values()) > n, "no prediction was published twice: the kills tested nothing"

    with Reader(config, "predictions", group_id=group) as resumed:
        rest = [r for r in resumed.records(idle_timeout=5)]
    ids = seen + [r.value.id for r in rest]
    assert sorted(ids) == sorted(raw)  # every prediction once, across the restart of the reader too
    assert all(r.ce_id == f"{config.name}/{r.value.id}" and r.key == r.value.id for r in rest)
    # Versions, typed, once each (the processor announces a version again after a crash too).
    versions = list(Reader(config, "versions").records(idle_timeout=3))
    numbers = [r.value.version for r in versions]
    assert len(numbers) == len(set(numbers)) >= 2
    assert all(isinstance(r.value, VersionAnnouncement) and r.key == str(r.value.version) for r in versions)
    assert max(numbers) == VersionStore(config.checkpoint.store_url, config.name, signing_key).latest()
