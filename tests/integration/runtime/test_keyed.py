"""Keyed mode on the real broker: worker processes in one consumer group, a task per
partition index, exact whatever the number of workers, rebalances and kill -9."""

from __future__ import annotations

import collections
import os
import random
import signal
import sys
import threading
import time

import orjson
import pytest

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from driftline.core.keyed import KeyedEngine
from driftline.core.events import InputRecord
from driftline.core.order_log import OrderFollower
from driftline.datasets import stream
from driftline.runtime.clients import make_producer
from driftline.runtime.replay import encode_features
from driftline.runtime.task import task_store_name
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

PARTITIONS, N_EVENTS, N_KEYS, DELAY = 8, 6_000, 1_000, 150


def _deployment(make_config, preset: str):
    return make_config(partitions=PARTITIONS, model={"preset": preset},
                       scale={"mode": "keyed", "session_timeout_ms": 6000},
                       checkpoint={"every_examples": 300, "every_seconds": 3600},
                       processor={"commit_interval_ms": 50, "batch_size": 200})


def _write_toml(config, path) -> None:
    path.write_text(f"""
name = "{config.name}"
partitions = {PARTITIONS}
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[model]
preset = "{config.model.preset}"
[scale]
mode = "keyed"
session_timeout_ms = {config.scale.session_timeout_ms}
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = {config.checkpoint.every_examples}
every_seconds = {config.checkpoint.every_seconds}
[processor]
commit_interval_ms = {config.processor.commit_interval_ms}
batch_size = {config.processor.batch_size}
max_idle_ms = {config.processor.max_idle_ms}
""")


def _rows(n=N_EVENTS):
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=n + 200, seed=5)]
    return rows[:n], rows[n:]


def _produce(config, rows) -> None:
    """Features keyed by an entity key, each label DELAY events later with the same key."""
    rng = random.Random(17)
    keys = [f"k{rng.randrange(N_KEYS)}" for _ in rows]
    producer = make_producer(config)
    base = int(time.time() * 1000) - 60_000  # recent: topics keep a week by record time
    for i in range(len(rows) + DELAY):
        if i < len(rows):
            body = {"id": f"e{i}", "features": rows[i][0]}
            producer.produce(config.topics.features, orjson.dumps(body), keys[i].encode(), timestamp=base + i)
        if i >= DELAY:
            j = i - DELAY
            body = {"id": f"e{j}", "label": rows[j][1]}
            producer.produce(config.topics.labels, orjson.dumps(body), keys[j].encode(), timestamp=base + i)
        producer.poll(0)
    assert producer.flush(30) == 0
    return {f"e{i}": key for i, key in enumerate(keys)}


def _reference(config, reader):
    """Each task's records in event-time order, fed to a keyed engine (a model per key) per
    task in memory."""
    per_task: dict[int, list[InputRecord]] = collections.defaultdict(list)
    for kind, topic in (("features", config.topics.features), ("labels", config.topics.labels)):
        for m in reader(config, topic):
            per_task[m.partition()].append(InputRecord(kind, m.partition(), m.offset(), m.timestamp()[1],
                                                       m.key(), m.value()))
    engines, predictions = {}, {}
    for p, records in per_task.items():
        records.sort(key=lambda r: (r.timestamp, r.kind != "labels", r.offset))
        engine = engines[p] = KeyedEngine(config)
        for record in records:
            for out in engine.process(record, now_ms=0):
                if out.kind == "prediction":
                    predictions[out.id] = (out.prediction, out.proba)
    return engines, predictions


def _workers(spawn, config, toml, signing_key, names, idle_s=8):
    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode()}
    command = [sys.executable, "-m", "driftline.cli", "-c", str(toml), "run", "--exit-when-idle", str(idle_s)]
    return {n: spawn([*command, "--instance", n], n, env=env) for n in names}


def _check(config, reader, signing_key, engines, predictions, held_out, keys):
    published = collections.defaultdict(list)
    for m in reader(config, config.topics.predictions):
        body = orjson.loads(m.value())
        assert body["key"] == keys[body["id"]], "a prediction that does not name its entity key"
        proba = {k: v for k, v in body["proba"].items()} if body["proba"] is not None else None
        published[body["id"]].append((body["prediction"], proba))
    assert set(published) == set(predictions), "an event without a prediction, or an unknown one"
    assert max(len(v) for v in published.values()) == 1, "an event predicted twice"
    for event_id, (prediction, proba) in predictions.items():
        want = {str(k).lower(): v for k, v in proba.items()} if proba is not None else None
        assert published[event_id][0] == (prediction, want), event_id
    assert reader(config, config.topics.dlq, idle_s=1) == []
    for p, reference in engines.items():
        store = VersionStore(config.checkpoint.store_url, task_store_name(config, p), signing_key)
        _, state = store.load(store.latest())
        engine = state["engine"]
        assert engine.n_learned == reference.n_learned, f"task {p}"
        assert engine.scores.values() == reference.scores.values(), f"task {p}"
        assert sorted(engine.keys()) == sorted(reference.keys()), f"task {p}"
        for key in sorted(reference.keys())[:25]:  # the per-key models themselves
            mine, theirs = engine.engine_for(key), reference.engine_for(key)
            assert mine.n_learned == theirs.n_learned, f"task {p} key {key}"
            for x, _ in held_out[:20]:
                assert mine.model.predict_proba_one(x) == theirs.model.predict_proba_one(x), f"task {p} key {key}"


@pytest.mark.parametrize("preset,workers", [("logistic_regression", 1), ("logistic_regression", 2),
                                            ("hoeffding_tree", 3)])
def test_any_number_of_workers_gives_the_single_process_answers(spawn, make_config, reader, signing_key, tmp_path,
                                                                preset, workers):
    config = _deployment(make_config, preset)
    rows, held_out = _rows()
    keys = _produce(config, rows)
    toml = tmp_path / "keyed.toml"
    _write_toml(config, toml)
    procs = _workers(spawn, config, toml, signing_key, [f"w{i}" for i in range(workers)])
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {err.decode()[-2000:]}"
    engines, predictions = _reference(config, reader)
    assert len(engines) == PARTITIONS
    _check(config, reader, signing_key, engines, predictions, held_out, keys)


def test_kill_minus_nine_of_a_worker_while_another_goes_on(spawn, make_config, reader, signing_key, tmp_path):
    """Two workers; one is killed at seeded moments and restarted under its instance id
    (static membership: it gets its tasks back and fences its predecessor at once)."""
    config = _deployment(make_config, "logistic_regression")
    rows, held_out = _rows()
    keys = _produce(config, rows)
    toml = tmp_path / "keyed.toml"
    _write_toml(config, toml)
    rng = random.Random(7)
    survivor = _workers(spawn, config, toml, signing_key, ["w1"], idle_s=15)["w1"]
    kills = 0
    for _ in range(3):
        victim = _workers(spawn, config, toml, signing_key, ["w0"], idle_s=15)["w0"]
        time.sleep(rng.uniform(2.0, 5.0))
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
            kills += 1
        victim.wait()
    last = _workers(spawn, config, toml, signing_key, ["w0"], idle_s=15)["w0"]
    for proc in (last, survivor):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert kills >= 2, "the stream finished before the worker could be killed"
    engines, predictions = _reference(config, reader)
    _check(config, reader, signing_key, engines, predictions, held_out, keys)


def _progress(config, n_events) -> float:
    """The share of the features the group has committed (its offsets, any owner)."""
    admin = AdminClient({"bootstrap.servers": config.kafka.bootstrap_servers})
    request = ConsumerGroupTopicPartitions(config.group_id, [TopicPartition(config.topics.features, p)
                                                             for p in range(PARTITIONS)])
    result = admin.list_consumer_group_offsets([request], require_stable=False)[config.group_id].result()
    return sum(max(tp.offset, 0) for tp in result.topic_partitions) / n_events


def _wait_progress(config, n_events, share, deadline_s=300) -> float:
    deadline = time.monotonic() + deadline_s
    while (done := _progress(config, n_events)) < share:
        assert time.monotonic() < deadline, f"the group did not reach {share:.0%} of the input"
        time.sleep(0.2)
    return done


@pytest.mark.parametrize("preset", ["logistic_regression", "hoeffding_tree"])
def test_scaling_one_two_three_two_and_kill_minus_nine_during_a_run(spawn, make_config, reader, signing_key, tmp_path,
                                                                   preset):
    """Pre-loaded input; workers join and leave at seeded points of the group's progress and
    are killed with SIGKILL while the others go on: the answers of an undisturbed run."""
    n_events = 12_000
    config = _deployment(make_config, preset)
    rows, held_out = _rows(n_events)
    keys = _produce(config, rows)
    toml = tmp_path / "keyed.toml"
    _write_toml(config, toml)
    rng = random.Random(31)
    procs = _workers(spawn, config, toml, signing_key, ["w0"], idle_s=20)
    at = {}
    at["w1 joins"] = _wait_progress(config, n_events, 0.05)
    procs.update(_workers(spawn, config, toml, signing_key, ["w1"], idle_s=20))
    at["w2 joins"] = _wait_progress(config, n_events, 0.15)
    procs.update(_workers(spawn, config, toml, signing_key, ["w2"], idle_s=20))
    at["w2 leaves"] = _wait_progress(config, n_events, 0.3)
    procs["w2"].send_signal(signal.SIGTERM)
    _, err = procs.pop("w2").communicate(timeout=120)
    for victim, share in (("w1", rng.uniform(0.4, 0.55)), ("w0", rng.uniform(0.6, 0.75))):
        at[f"{victim} killed"] = _wait_progress(config, n_events, share)
        if procs[victim].poll() is None:
            procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait()
        time.sleep(rng.uniform(0.0, 8.0))  # back before or after the session timeout
        procs.update(_workers(spawn, config, toml, signing_key, [victim], idle_s=20))
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {err.decode()[-2000:]}"
    assert at["w2 joins"] < 1.0, f"the input was processed before the group scaled: {at}"
    engines, predictions = _reference(config, reader)
    assert len(engines) == PARTITIONS
    assert sum(e.n_learned for e in engines.values()) == n_events
    _check(config, reader, signing_key, engines, predictions, held_out, keys)


def _paced_producer(config, rows, rate, deadline_s, done: dict):
    """Live input: features keyed by an entity key at ``rate`` events a second, each label
    DELAY events later with the same key, stamped with the time they are sent. Stops at
    the last label or at ``deadline_s``, whichever comes first."""
    rng = random.Random(23)
    keys = [f"k{rng.randrange(N_KEYS)}" for _ in rows]
    done["keys"] = {f"e{i}": key for i, key in enumerate(keys)}
    producer = make_producer(config)
    start = time.monotonic()
    for i in range(len(rows) + DELAY):
        if (ahead := start + i / rate - time.monotonic()) > 0:
            time.sleep(ahead)
        if time.monotonic() - start > deadline_s:
            break
        if i < len(rows):
            body = {"id": f"e{i}", "features": rows[i][0]}
            producer.produce(config.topics.features, orjson.dumps(body), keys[i].encode())
        if i >= DELAY:
            j = i - DELAY
            producer.produce(config.topics.labels, orjson.dumps({"id": f"e{j}", "label": rows[j][1]}),
                             keys[j].encode())
        producer.poll(0)
        done["sent"] = i + 1
    done["flushed"] = producer.flush(30) == 0


def _recorded_order(config, reader) -> dict[int, list[tuple[int, InputRecord]]]:
    """Each task's records in the order its owners recorded them (partition p of the order log)."""
    by_offset = {}
    for kind, topic in (("features", config.topics.features), ("labels", config.topics.labels)):
        for m in reader(config, topic):
            by_offset[(kind, m.partition(), m.offset())] = InputRecord(kind, m.partition(), m.offset(),
                                                                       m.timestamp()[1], m.key(), m.value())
    entries = collections.defaultdict(list)
    for m in reader(config, config.topics.order):
        entries[m.partition()].append(m.value())
    order = {}
    for p, raw in entries.items():
        follower, runs = OrderFollower(raw), []
        while (run := follower.next_run()) is not None:
            runs.append(run)
            follower.advance()
        order[p] = [(now_ms, by_offset[(kind, partition, o)])
                    for now_ms, (kind, partition), first, last in runs for o in range(first, last + 1)]
        assert all(r.partition == p for _, r in order[p]), f"task {p} recorded another task's record"
    named = sorted((r.kind, r.partition, r.offset) for records in order.values() for _, r in records)
    assert named == sorted(by_offset), "the order log does not name every input record exactly once"
    return order


def test_live_input_while_workers_scale_and_die(spawn, make_config, reader, signing_key, tmp_path):
    """A paced producer publishes while the group scales 1 -> 2 -> 3 -> 2 and two workers
    are killed with SIGKILL at seeded points: one committed prediction per event, every
    label learned once, no label learned before a feature of its task with an earlier
    time, and every task's final model is the engine fed that task's recorded order."""
    n_events, rate = 8_000, 400
    config = _deployment(make_config, "logistic_regression")
    rows, held_out = _rows(n_events)
    toml = tmp_path / "keyed.toml"
    _write_toml(config, toml)
    rng = random.Random(43)
    procs = _workers(spawn, config, toml, signing_key, ["w0"], idle_s=20)
    sent: dict = {}
    producer = threading.Thread(target=_paced_producer, args=(config, rows, rate, 90, sent), daemon=True)
    producer.start()
    at = {"w1 joins": _wait_progress(config, n_events, 0.05)}
    procs.update(_workers(spawn, config, toml, signing_key, ["w1"], idle_s=20))
    at["w2 joins"] = _wait_progress(config, n_events, 0.15)
    procs.update(_workers(spawn, config, toml, signing_key, ["w2"], idle_s=20))
    at["w2 leaves"] = _wait_progress(config, n_events, 0.3)
    procs["w2"].send_signal(signal.SIGTERM)
    _, err = procs.pop("w2").communicate(timeout=120)
    for victim, share in (("w1", rng.uniform(0.4, 0.55)), ("w0", rng.uniform(0.6, 0.75))):
        at[f"{victim} killed"] = _wait_progress(config, n_events, share)
        if procs[victim].poll() is None:
            procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait()
        time.sleep(rng.uniform(0.0, 8.0))  # back before or after the session timeout
        procs.update(_workers(spawn, config, toml, signing_key, [victim], idle_s=20))
    producer.join(120)
    assert sent.get("flushed") and sent["sent"] == n_events + DELAY, f"the producer did not finish: {sent}"
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {err.decode()[-2000:]}"
    assert at["w0 killed"] < 0.95, f"the input was processed before the last kill: {at}"

    order = _recorded_order(config, reader)
    assert len(order) == PARTITIONS
    engines, predictions = {}, {}
    for p, records in order.items():
        # No leakage: within a task, a label comes after every feature of an earlier time.
        earliest_later_feature = float("inf")
        for _, record in reversed(records):
            if record.kind == "labels":
                assert earliest_later_feature >= record.timestamp, f"task {p}: a label learned too early"
            else:
                earliest_later_feature = min(earliest_later_feature, record.timestamp)
        engine = engines[p] = KeyedEngine(config)
        for now_ms, record in records:
            for out in engine.process(record, now_ms):
                if out.kind == "prediction":
                    predictions[out.id] = (out.prediction, out.proba)
    assert sum(e.n_learned for e in engines.values()) == n_events, "a label not learned exactly once"
    _check(config, reader, signing_key, engines, predictions, held_out, sent["keys"])


def test_key_and_task_metrics_count_what_the_input_holds(make_config, reader, signing_key):
    """In-process worker with a memory budget of 40 keys per task: the Prometheus families
    of keyed mode (tasks, records per task, keys resident and evicted, the busiest keys)
    against counts taken from the produced input."""
    from prometheus_client import CollectorRegistry

    from driftline.runtime.processor import Processor

    config = _deployment(make_config, "logistic_regression")
    config = config.model_copy(update={"scale": config.scale.model_copy(
        update={"instance": "w0", "max_keys_in_memory": 40, "top_keys": 3})})
    rows, _ = _rows(2_000)
    keys = _produce(config, rows)
    registry = CollectorRegistry()
    processor = Processor(config, signing_key, registry=registry)
    processor.run(exit_when_idle_s=4)

    per_key = collections.Counter(keys.values())
    partition_of = {}
    for m in reader(config, config.topics.features):
        partition_of[m.key().decode()] = m.partition()
    per_task = collections.Counter()
    for key, n in per_key.items():
        per_task[partition_of[key]] += 2 * n  # its features and its labels
    value = lambda name, **labels: registry.get_sample_value(name, {"model": config.name, **labels})  # noqa: E731
    assert value("driftline_tasks") == PARTITIONS
    assert {p: value("driftline_task_records", task=str(p)) for p in range(PARTITIONS)} == per_task
    assert value("driftline_keys", state="resident") + value("driftline_keys", state="evicted") == len(per_key)
    assert value("driftline_keys", state="resident") <= 40 * PARTITIONS
    assert value("driftline_key_evictions_total") > 0
    assert value("driftline_key_records_max") == 2 * max(per_key.values())
    top = sorted(per_key.items(), key=lambda kc: (-kc[1], kc[0]))[:3]
    assert {key: value("driftline_top_key_records", key=key) for key, _ in top} == {k: 2 * n for k, n in top}
