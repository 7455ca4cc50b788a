"""Lifecycle commands in keyed mode on the real broker: one key's model is reset or rolled
back as a version of its task, the other keys are untouched, and a restart goes on from
the command's version exactly."""

from __future__ import annotations

import collections
import json
import random
import threading
import time

from pathlib import Path

import jsonschema
import orjson
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from driftline.cli import main
from driftline.core.engine import Engine
from driftline.core.events import InputRecord, decode_features
from driftline.datasets import stream
from driftline.exceptions import LifecycleError
from driftline.lifecycle.admin import AdminServer
from driftline.lifecycle.commands import Command
from driftline.runtime.clients import make_producer
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features

pytestmark = pytest.mark.integration

N_KEYS, DELAY = 12, 30
LIFECYCLE = jsonschema.Draft202012Validator(json.loads(
    (Path(__file__).parents[3] / "docs" / "schemas" / "lifecycle.schema.json").read_text()))
TOKEN = "keyed-commands-admin-token-0123456789"


def _produce(config, rows, first: int, base_ms: int) -> None:
    """Features keyed by one of N_KEYS entity keys, each label DELAY events later (same key)."""
    rng = random.Random(first)
    keys = [f"k{rng.randrange(N_KEYS)}" for _ in rows]
    producer = make_producer(config)
    for i in range(len(rows) + DELAY):
        if i < len(rows):
            body = {"id": f"e{first + i}", "features": rows[i][0]}
            producer.produce(config.topics.features, orjson.dumps(body), keys[i].encode(), timestamp=base_ms + i)
        if i >= DELAY:
            j = i - DELAY
            body = {"id": f"e{first + j}", "label": rows[j][1]}
            producer.produce(config.topics.labels, orjson.dumps(body), keys[j].encode(), timestamp=base_ms + i)
        producer.poll(0)
    assert producer.flush(30) == 0


def _start(config, signing_key, learned: int, versions: int = 1):
    """A keyed worker in a thread, returned once it learned ``learned`` labels, every task
    has ``versions`` versions and its transactions settled (readiness, not a timing assertion)."""
    processor, runner, outcome = _in_thread(Processor(config, signing_key, registry=CollectorRegistry()))
    _until(lambda: (len(processor.tasks) == config.partitions
                    and all(t.engine is not None for t in processor.tasks.values())
                    and sum(t.engine.n_learned for t in processor.tasks.values()) == learned
                    and not processor.work.in_txn
                    and all(len(t.store.versions()) >= versions for t in processor.tasks.values())
                    and not any(t.checkpointer.saver.busy for t in processor.tasks.values())),
           runner.is_alive, lambda: outcome)
    time.sleep(0.5)
    return processor, runner, outcome


def _in_thread(processor: Processor):
    """``processor`` running in a thread; ``outcome`` receives what it raised."""
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            processor.run(max_seconds=240)
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            outcome["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    return processor, runner, outcome


def _until(ready, alive, why, polls: int = 2400, every_s: float = 0.05) -> None:
    """Readiness, not a timing assertion: poll ``ready`` (a bounded number of times, while
    ``alive``); fail with ``why()`` when it never came."""
    for _ in range(polls):
        if ready():
            return
        if not alive():
            pytest.fail(f"stopped before it was ready: {why()}")
        time.sleep(every_s)
    pytest.fail(f"not ready after {polls} polls: {why()}")


def _through_admin(processor, config, monkeypatch, *args: str):
    """``driftline ARGS --admin-url`` against an admin API served for ``processor`` (HTTP, bearer token)."""
    admin = AdminServer(config.name, processor.lifecycle.registry, processor.lifecycle.queue.submit,
                        processor.store, token=TOKEN)
    port = admin.start()
    monkeypatch.setenv(config.lifecycle.token_env, TOKEN)
    try:
        return CliRunner().invoke(main, ["--name", config.name, "--bootstrap", config.kafka.bootstrap_servers, *args,
                                         "--admin-url", f"http://127.0.0.1:{port}"])
    finally:
        admin.stop()


def _probas(engine: Engine, xs) -> list:
    return [engine.model.predict_proba_one(x) for x in xs]


def test_a_keys_model_is_reset_and_rolled_back_alone_and_a_restart_goes_on_from_the_command(
        make_config, reader, signing_key, tmp_path, monkeypatch):
    config = make_config(partitions=2, model={"preset": "logistic_regression"},
                         scale={"mode": "keyed", "instance": "w0", "session_timeout_ms": 6000},
                         checkpoint={"every_examples": 150, "every_seconds": 3600},
                         processor={"commit_interval_ms": 50, "batch_size": 200})
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=920, seed=23)]
    first, second, held_out = rows[:600], rows[600:900], [x for x, _ in rows[900:]]
    base = int(time.time() * 1000) - 60_000
    _produce(config, first, 0, base)
    processor, runner, outcome = _start(config, signing_key, len(first), versions=1)

    # Two keys of one task that its periodic version (every 150 labels) already holds.
    task = max(processor.tasks.values(), key=lambda t: len(t.engine.keys()))
    versions_before = task.store.versions()
    _, old = task.store.load(versions_before[-1])
    key, other = [k for k in sorted(task.engine.keys()) if old["engine"].key_engine(k) is not None][:2]
    other_before = _probas(task.engine.key_engine(other), held_out)

    # reset through the CLI and the admin API (HTTP, bearer token)
    done = _through_admin(processor, config, monkeypatch, "models", "reset", "--key", key, "--reason", "bad sensor")
    assert done.exit_code == 0, done.output
    reset_version = task.store.latest()
    assert reset_version > versions_before[-1]
    said = [line for line in done.output.splitlines() if not line.startswith("{")]  # the worker's logs share stdout here
    assert said == [f"reset: key {key} of {config.name} (task {task.index}) serves a fresh model as version "
                    f"{reset_version} ({orjson.loads(reader(config, config.topics.lifecycle)[-1].value())['id']})"]
    fresh = Engine(config)
    served = task.engine.key_engine(key)
    assert served.model_examples == 0 and _probas(served, held_out) == _probas(fresh, held_out)
    assert _probas(task.engine.key_engine(other), held_out) == other_before
    _, state = task.store.load(reset_version)  # the stored version is what serves
    assert _probas(state["engine"].key_engine(key), held_out) == _probas(fresh, held_out)
    assert _probas(state["engine"].key_engine(other), held_out) == other_before

    # rollback of the key to a version cut before the reset
    target = versions_before[-1]
    old_key = old["engine"].key_engine(key)
    result = processor.lifecycle.queue.submit(
        Command("rollback", {"key": key, "to": target}, actor="test", reason="back")).wait(60)
    assert result["task"] == task.index and result["version"] == task.store.latest() > reset_version
    served = task.engine.key_engine(key)
    assert served.model_examples == old_key.model_examples > 0
    assert _probas(served, held_out) == _probas(old_key, held_out)
    assert served.scores.values() == old_key.scores.values()
    assert _probas(task.engine.key_engine(other), held_out) == other_before

    # a prediction by the key's model, through the admin API's command
    answer = processor.lifecycle.queue.submit(
        Command("predict", {"key": key, "features": second[0][0]}, actor="test")).wait(60)
    assert (answer["key"], answer["task"], answer["model_version"]) == (key, task.index, result["version"])
    decoded = decode_features(orjson.dumps({"id": "x", "features": second[0][0]}), served.schema, config.name)
    assert (answer["prediction"], answer["proba"]) == served.predict(decoded.features)
    assert answer["proba"] != task.engine.key_engine(other).predict(decoded.features)[1]  # not another key's model

    # what is refused, and says why
    for action, params, status in (("reset", {"key": "never-seen"}, 404), ("promote", {"version": 1}, 409),
                                   ("rollback", {"key": key, "to": target, "replay": True}, 409),
                                   ("rollback", {"key": key, "to": 999}, 404)):
        command = processor.lifecycle.queue.submit(Command(action, params, actor="test"))
        with pytest.raises(LifecycleError) as refused:
            command.wait(60)
        assert refused.value.status == status, (action, params, refused.value)
    assert task.store.latest() == result["version"]  # refusals cut nothing

    events = [orjson.loads(m.value()) for m in reader(config, config.topics.lifecycle)]
    for e in events:
        LIFECYCLE.validate(e)  # the documented contract
    assert [(e["action"], e["details"]["key"], e["details"]["task"]) for e in events] == [
        ("reset", key, task.index), ("rollback", key, task.index)]
    assert events[1]["details"]["to"] == target
    pointer = orjson.loads([m for m in reader(config, config.topics.checkpoints)
                            if m.key() == str(task.index).encode()][-1].value())
    assert pointer["version"] == result["version"]

    # `models list` of a keyed deployment: a line per task, and a hint that works as printed
    toml = tmp_path / "keyed.toml"
    toml.write_text(f'name = "{config.name}"\npartitions = {config.partitions}\n[kafka]\n'
                    f'bootstrap_servers = "{config.kafka.bootstrap_servers}"\n[scale]\nmode = "keyed"\n'
                    f'[checkpoint]\nstore_url = "{config.checkpoint.store_url}"\n')
    listed = CliRunner().invoke(main, ["-c", str(toml), "models", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    line = next(ln.split() for ln in lines if ln.split()[:2] == [str(task.index), f"{config.name}.task-{task.index}"])
    assert int(line[3]) == result["version"] and line[4] == "rollback", line
    hint = lines[-1].split("driftline ", 1)[1].split()
    assert hint == ["-c", str(toml), "models", "list", f"{config.name}.task-0"], lines[-1]
    one = CliRunner().invoke(main, hint)
    assert one.exit_code == 0 and f"{config.name}.task-0" not in one.output.splitlines()[0], one.output
    assert len(one.output.splitlines()[2:]) == len(processor.tasks[0].store.versions())  # header, rule, rows

    processor.stop()
    runner.join(60)
    assert not runner.is_alive() and "error" not in outcome, outcome

    # A restart restores the rollback's version (nothing applied twice) and learns on from it:
    # its predictions and final models are those of that version fed the new records in event-time order.
    _, cut = task.store.load(result["version"])
    reference = cut["engine"]
    _produce(config, second, len(first), base + len(first) + DELAY)
    records = []
    for kind, topic in (("features", config.topics.features), ("labels", config.topics.labels)):
        for m in reader(config, topic):
            if m.partition() == task.index and int(orjson.loads(m.value())["id"][1:]) >= len(first):
                records.append(InputRecord(kind, m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value()))
    records.sort(key=lambda r: (r.timestamp, r.kind != "labels", r.offset))
    want = {}
    for record in records:
        for out in reference.process(record, now_ms=0):
            if out.kind == "prediction":
                want[out.id] = (out.prediction, {str(k).lower(): v for k, v in out.proba.items()})
    assert want
    processor, runner, outcome = _start(config, signing_key, len(first) + len(second))
    processor.stop()
    runner.join(60)
    assert "error" not in outcome, outcome
    published = collections.defaultdict(list)
    for m in reader(config, config.topics.predictions):
        body = orjson.loads(m.value())
        if body["id"] in want:
            published[body["id"]].append((body["prediction"], body["proba"]))
    assert {i: p[0] for i, p in published.items()} == want
    assert max(len(p) for p in published.values()) == 1
    restarted = processor.tasks[task.index].engine
    assert _probas(restarted.key_engine(key), held_out) == _probas(reference.key_engine(key), held_out)
    assert restarted.key_engine(key).n_learned == reference.key_engine(key).n_learned


def test_a_single_model_deployment_refuses_a_command_for_one_key(make_config, signing_key):
    """A reset or rollback naming a key must not reset the one model of a single-mode deployment."""
    config = make_config(checkpoint={"every_examples": 100})
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=200, seed=29)]
    base = int(time.time() * 1000) - 60_000
    _produce(config, rows, 0, base)
    processor, runner, outcome = _in_thread(Processor(config, signing_key, registry=CollectorRegistry()))
    _until(lambda: (processor.engine is not None and processor.engine.n_learned == len(rows)
                    and not processor.work.in_txn and not processor.checkpointer.saver.busy),
           runner.is_alive, lambda: outcome)
    versions = processor.store.versions()
    learned = processor.engine.model_examples
    for action, params in (("reset", {"key": "k1"}), ("rollback", {"key": "k1", "to": versions[0]})):
        command = processor.lifecycle.queue.submit(Command(action, params, actor="test"))
        with pytest.raises(LifecycleError) as refused:
            command.wait(60)
        assert refused.value.status == 409 and "keyed mode" in str(refused.value), refused.value
    assert processor.store.versions() == versions and processor.engine.model_examples == learned == len(rows)
    processor.stop()
    runner.join(60)
    assert not runner.is_alive()


def test_erasing_a_key_leaves_its_task_as_if_the_key_had_never_been_seen(make_config, reader, signing_key,
                                                                          monkeypatch):
    """Keyed erasure: the task's engine equals one fed the task's records without the key's,
    the receipt names no subject, compacted predictions get tombstones, old versions are refused."""
    import hashlib
    import hmac

    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    from driftline.core.keyed import KeyedEngine
    from driftline.runtime.clients import make_admin

    config = make_config(partitions=2, model={"preset": "logistic_regression"},
                         scale={"mode": "keyed", "instance": "w0", "session_timeout_ms": 6000},
                         checkpoint={"every_examples": 150, "every_seconds": 3600},
                         processor={"commit_interval_ms": 50, "batch_size": 200})
    admin_client = make_admin(config)
    for future in admin_client.incremental_alter_configs([ConfigResource("topic", config.topics.predictions,
            incremental_configs=[ConfigEntry("cleanup.policy", "compact,delete",
                                             incremental_operation=AlterConfigOpType.SET)])]).values():
        future.result(timeout=30)
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=620, seed=31)]
    first, held_out = rows[:600], [x for x, _ in rows[600:]]
    _produce(config, first, 0, int(time.time() * 1000) - 60_000)
    processor, runner, outcome = _start(config, signing_key, len(first), versions=1)
    task = max(processor.tasks.values(), key=lambda t: len(t.engine.keys()))
    versions_before = task.store.versions()
    _, old = task.store.load(versions_before[-1])
    key = next(k for k in sorted(task.engine.keys()) if old["engine"].key_engine(k) is not None)

    done = _through_admin(processor, config, monkeypatch, "erase", "--key", key, "--reason", "subject request")
    assert done.exit_code == 0, done.output
    said = [line for line in done.output.splitlines() if line.startswith("erase: ")]
    assert said and f"task {task.index} dropped the key's model" in said[0], done.output

    # The oracle: a keyed engine fed the task's records, the key's left out, in event-time order.
    theirs, records = set(), []
    for kind, topic in (("features", config.topics.features), ("labels", config.topics.labels)):
        for m in reader(config, topic):
            if m.partition() != task.index:
                continue
            if m.key() == key.encode():
                theirs.add(orjson.loads(m.value())["id"])
                continue
            records.append(InputRecord(kind, m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value()))
    records.sort(key=lambda r: (r.timestamp, r.kind != "labels", r.offset))
    oracle = KeyedEngine(config)
    for record in records:
        oracle.process(record, now_ms=0)
    served = task.engine
    latest = task.store.latest()
    _, stored = task.store.load(latest)
    for engine in (served, stored["engine"]):
        assert engine.key_engine(key) is None and key not in engine.keys()
        assert sorted(engine.keys()) == sorted(oracle.keys())
        assert (engine.n_learned, vars(engine.counters)) == (oracle.n_learned, vars(oracle.counters))
        for k in sorted(oracle.keys()):
            assert _probas(engine.key_engine(k), held_out) == _probas(oracle.key_engine(k), held_out), k

    receipt = [m for m in reader(config, config.topics.lifecycle)][-1]
    body = orjson.loads(receipt.value())
    d = body["details"]
    assert body["action"] == "erase" and d["task"] == task.index
    LIFECYCLE.validate(body)
    assert f'"{key}"'.encode() not in receipt.value()  # the subject only as a digest
    assert d["subject"] == {"by": "key", "hmac_sha256": hmac.new(signing_key, key.encode(), hashlib.sha256).hexdigest()}
    assert d["removed"]["features"] == len(theirs) and d["tombstones"]["predictions"] == len(theirs)
    tombstones = {m.key().decode() for m in reader(config, config.topics.predictions) if m.value() is None}
    assert tombstones == theirs
    assert versions_before[-1] in {s["version"] for s in d["superseded"]}

    # A version that held the key never serves it again, even when the key comes back.
    command = processor.lifecycle.queue.submit(Command("rollback", {"key": key, "to": versions_before[-1]},
                                                       actor="test"))
    with pytest.raises(LifecycleError) as refused:
        command.wait(60)
    assert refused.value.status == 404  # the key is gone from this instance
    producer = make_producer(config)
    producer.produce(config.topics.features, orjson.dumps({"id": "back", "features": first[0][0]}), key.encode(),
                     partition=task.index, timestamp=int(time.time() * 1000))
    assert producer.flush(30) == 0
    _until(lambda: task.engine.key_engine(key) is not None, runner.is_alive, lambda: outcome)  # the key is back
    command = processor.lifecycle.queue.submit(Command("rollback", {"key": key, "to": versions_before[-1]},
                                                       actor="test"))
    with pytest.raises(LifecycleError) as refused:
        command.wait(60)
    assert refused.value.status == 409 and "before its erasure" in str(refused.value), refused.value
    processor.stop()
    runner.join(60)
    assert "error" not in outcome, outcome


def test_a_command_without_admin_url_reaches_the_worker_that_holds_its_key(make_config, reader, signing_key, spawn,
                                                                            tmp_path, monkeypatch):
    """Two worker processes, a task each: `models reset --key K` finds K's worker through the
    deployment's liveness group and its admin API; a key no worker holds is one line."""
    import signal
    import socket
    import sys

    config = make_config(partitions=2, model={"preset": "logistic_regression"},
                         scale={"mode": "keyed", "session_timeout_ms": 6000})
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=300, seed=37)]
    _produce(config, rows, 0, int(time.time() * 1000) - 60_000)
    toml = tmp_path / "keyed.toml"
    toml.write_text(f'name = "{config.name}"\npartitions = 2\n[kafka]\n'
                    f'bootstrap_servers = "{config.kafka.bootstrap_servers}"\n[scale]\nmode = "keyed"\n'
                    f'session_timeout_ms = 6000\n[checkpoint]\nstore_url = "{config.checkpoint.store_url}"\n')
    env = {"DRIFTLINE_SNAPSHOT_KEY": signing_key.decode(), config.lifecycle.token_env: TOKEN}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    workers = []
    for instance in ("w0", "w1"):
        with socket.socket() as s:  # a free loopback port for the worker's admin API
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        workers.append(spawn([sys.executable, "-m", "driftline.cli", "-c", str(toml), "run", "--instance", instance,
                              "--admin-port", str(port)], instance))
    _until(lambda: len(reader(config, config.topics.predictions, idle_s=1)) >= len(rows),  # both tasks live
           lambda: all(w.poll() is None for w in workers), lambda: [w.stderr_tail() for w in workers], polls=120)
    key_of = {}  # a key of each partition, from the input itself
    for m in reader(config, config.topics.features):
        key_of.setdefault(m.partition(), m.key().decode())
    assert sorted(key_of) == [0, 1]
    try:
        for partition, key in sorted(key_of.items()):
            for _ in range(90):  # readiness: a task that moved when the second worker joined is restored first
                done = CliRunner().invoke(main, ["-c", str(toml), "models", "reset", "--key", key])
                if done.exit_code == 0 or not ("is held by none" in done.output or "503:" in done.output):
                    break
                time.sleep(1)
            assert done.exit_code == 0, done.output
            assert f"reset: key {key} of {config.name} (task {partition}) serves a fresh model" in done.output
        missing = CliRunner().invoke(main, ["-c", str(toml), "models", "reset", "--key", "nobody"])
        assert missing.exit_code == 1
        assert "Error: key 'nobody' is held by none of the 2 running workers" in missing.output, missing.output
        events = [orjson.loads(m.value()) for m in reader(config, config.topics.lifecycle)]
        assert sorted((e["details"]["task"], e["details"]["key"]) for e in events) == sorted(key_of.items())
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(60)
