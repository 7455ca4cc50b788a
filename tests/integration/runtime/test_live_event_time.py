"""Event time holds live: a processor started before its input predicts exactly what the
pre-loaded run predicts, waits for a partition whose fetch is held back, and after kill -9
recovers the order the live run used (the order log)."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time

import orjson
import pytest
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry
from river import evaluate, metrics

from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.models import build_model
from driftline.core.order_log import OrderFollower
from driftline.core.outputs import Prediction
from driftline.datasets import stream
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration


def _input_records(config, reader) -> dict[tuple[str, int], list[InputRecord]]:
    """What the topics hold, per source in offset order."""
    out: dict[tuple[str, int], list[InputRecord]] = collections.defaultdict(list)
    for kind, topic in (("features", config.topics.features), ("labels", config.topics.labels)):
        for m in reader(config, topic):
            out[(kind, m.partition())].append(
                InputRecord(kind, m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value()))
    for recs in out.values():
        recs.sort(key=lambda r: r.offset)
    return out


def _preloaded_model_examples(config, records) -> dict[str, int]:
    """Event-time order written out plainly (time, labels first, partition, offset), as a
    processor with everything already in Kafka takes it."""
    everything = sorted((r for recs in records.values() for r in recs),
                        key=lambda r: (r.timestamp, r.kind != "labels", r.partition, r.offset))
    engine = Engine(config)
    out = {}
    for record in everything:
        for output in engine.process(record, 0):
            if type(output) is Prediction:
                out[output.id] = output.model_examples
    return out


def _served(config, reader) -> dict[str, dict]:
    bodies = [orjson.loads(m.value()) for m in reader(config, config.topics.predictions)]
    served = {b["id"]: b for b in bodies}
    assert len(served) == len(bodies), "an event was predicted twice"
    return served


def _start(proc: Processor, store: VersionStore, **run_args) -> threading.Thread:
    thread = threading.Thread(target=proc.run, kwargs=run_args, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while store.latest() is None and time.monotonic() < deadline:  # the initial version is cut
        time.sleep(0.05)
    time.sleep(1.0)  # assigned, first fetches answered: the processor now waits for input
    return thread


@pytest.mark.parametrize("delay", [0, 1, 100])
def test_running_first_then_a_paced_producer_predicts_what_the_preloaded_run_does(
        make_config, reader, signing_key, delay):
    config = make_config(partitions=3, drift={"policy": "none"})
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=3000, seed=5)]
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    proc = Processor(config, signing_key, registry=CollectorRegistry())
    thread = _start(proc, store, exit_when_idle_s=4, max_seconds=120)

    replay(config, rows, label_delay=delay, rate=3000, n_rows=len(rows))
    thread.join(150)
    assert not thread.is_alive()

    served = _served(config, reader)
    expected = _preloaded_model_examples(config, _input_records(config, reader))
    assert len(expected) == len(rows)
    assert {i: b["model_examples"] for i, b in served.items()} == expected
    assert proc.engine.n_learned == len(rows)
    assert proc.merger.stats.late_labels == 0


class _HoldsBackOnePartition(Processor):
    """Keeps one labels partition paused for ``hold_s`` after assignment, as a slow first
    fetch would (a just-started broker, a far-away leader)."""

    hold_s = 2.0
    _held: TopicPartition | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        open_tasks, apply_backpressure = self.membership.open, self.backpressure.apply

        def open_and_hold(tasks, committed, resumed=frozenset()) -> None:
            open_tasks(tasks, committed, resumed)
            self._held = TopicPartition(self.topics.labels, 1)
            self._consumer.pause([self._held])
            self._release_at = time.monotonic() + self.hold_s

        def release_then_apply(consumer, task_of) -> None:
            if self._held is not None and time.monotonic() >= self._release_at:
                consumer.resume([self._held])
                self._held = None
            apply_backpressure(consumer, task_of)

        self.membership.open, self.backpressure.apply = open_and_hold, release_then_apply


def test_a_partition_whose_first_fetch_is_held_back_is_waited_for(make_config, reader, signing_key):
    delay = 25
    config = make_config(partitions=3, drift={"policy": "none"}, processor={"max_idle_ms": 300})
    rows = [(encode_features(x), y) for x, y in stream("river:Phishing")]
    replay(config, rows, label_delay=delay, n_rows=len(rows))

    proc = _HoldsBackOnePartition(config, signing_key, registry=CollectorRegistry())
    assert proc.hold_s > 5 * config.processor.max_idle_ms / 1000
    engine = proc.run(exit_when_idle_s=3)

    expected = evaluate.progressive_val_score(rows, build_model(config.model), metrics.Accuracy(), delay=delay)
    assert engine.scores.values()["accuracy"] == expected.get()
    served = _served(config, reader)
    assert {i: b["model_examples"] for i, b in served.items()} == _preloaded_model_examples(
        config, _input_records(config, reader))
    assert proc.merger.stats.waits >= 1


def _order_log(config, reader) -> list[tuple[int, tuple[str, int], int, int]]:
    follower = OrderFollower([m.value() for m in reader(config, config.topics.order)])
    runs = []
    while (run := follower.next_run()) is not None:
        runs.append(run)
        follower.advance()
    return runs


def _write_toml(config, path) -> None:
    path.write_text(
        f"""
name = "{config.name}"
partitions = 3
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[model]
preset = "{config.model.preset}"
[drift]
policy = "none"
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = {config.checkpoint.every_examples}
[processor]
commit_interval_ms = 50
batch_size = 200
"""
    )


def test_kill_minus_nine_during_live_input_recovers_the_order_the_live_run_used(
        make_config, reader, signing_key, tmp_path):
    n_events, delay = 9000, 100
    config = make_config(partitions=3, drift={"policy": "none"}, checkpoint={"every_examples": 1500})
    all_rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=n_events + 200, seed=13)]
    rows, held_out = all_rows[:n_events], all_rows[n_events:]
    toml = tmp_path / "deployment.toml"
    _write_toml(config, toml)
    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode()}
    command = [sys.executable, "-m", "driftline.cli", "-c", str(toml), "run", "--exit-when-idle", "5"]
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    rng = random.Random(4242)

    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while store.latest() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    producer = threading.Thread(target=replay, args=(config, rows),
                                kwargs={"label_delay": delay, "rate": 1200, "n_rows": len(rows)}, daemon=True)
    producer.start()
    kills = 0
    while producer.is_alive() and kills < 3:
        time.sleep(rng.uniform(1.0, 2.0))  # mid-batch, mid-transaction or mid-snapshot
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    producer.join(120)
    assert proc.wait(timeout=300) == 0
    assert kills >= 2, "the input ended before the processor could be killed"

    # One committed prediction per event, every label learned once.
    served = _served(config, reader)
    assert set(served) == {f"e{i}" for i in range(n_events)}
    _, state = store.load(store.latest())
    engine = state["engine"]
    assert engine.n_learned == engine.scores.n == n_events

    # The order log names every input record exactly once...
    records = _input_records(config, reader)
    by_offset = {(r.kind, r.partition, r.offset): r for recs in records.values() for r in recs}
    order: list[tuple[int, InputRecord]] = []
    for now_ms, (kind, partition), first, last in _order_log(config, reader):
        order += [(now_ms, by_offset[(kind, partition, o)]) for o in range(first, last + 1)]
    assert sorted((r.kind, r.partition, r.offset) for _, r in order) == sorted(by_offset)
    # ...no label was learned before a feature with an earlier time was predicted...
    earliest_later_feature = float("inf")
    for _, record in reversed(order):
        if record.kind == "labels":
            assert earliest_later_feature >= record.timestamp, "a label was learned before an earlier feature"
        else:
            earliest_later_feature = min(earliest_later_feature, record.timestamp)
    # ...and the final model is the engine fed the records in that order.
    reference = Engine(config)
    for now_ms, record in order:
        reference.process(record, now_ms)
    assert engine.scores.values() == reference.scores.values()
    for x, _ in held_out:
        assert engine.model.predict_proba_one(x) == reference.model.predict_proba_one(x)
