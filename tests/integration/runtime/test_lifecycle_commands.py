"""Lifecycle commands on the real broker: all or nothing, and the versions they cut show
the served model's own record.

A command whose transaction cannot commit (the processor was fenced by a newer producer
with its transactional.id, as when a second instance starts) must leave nothing behind but
its error: no stored version a restart would serve, no registry row, no alias move, no
history entry, nothing committed on ``.versions`` or ``.lifecycle``.
"""

from __future__ import annotations

import threading
import time

import orjson
import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from driftline.datasets import stream
from driftline.exceptions import FencedError, LifecycleError
from driftline.lifecycle.commands import Command
from driftline.lifecycle.registry import Registry, registry_path
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

DELAY = 20


def _rows(n: int, seed: int = 11):
    return [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=n, seed=seed)]


def _registry_state(config, store):
    registry = Registry(registry_path(config))
    registry.sync(store)
    versions = [(v["version"], v["status"], v["aliases"], v["tags"]) for v in registry.versions(config.name)]
    return versions, registry.aliases(config.name), [e["id"] for e in registry.events(config.name)]


COMMANDS = {
    "promote": ("promote", {"version": 2}),
    "alias": ("alias", {"alias": "staging", "version": 2}),
    "rollback_replay": ("rollback", {"to": 2, "replay": True}),
    "add_challenger": ("add_challenger", {"name": "nb", "model": {"preset": "gaussian_naive_bayes"}}),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_command_that_cannot_commit_leaves_no_trace_but_its_error(name, make_config, reader, signing_key):
    config = make_config(checkpoint={"every_examples": 100})
    rows = _rows(300)
    replay(config, rows, label_delay=DELAY, n_rows=len(rows))
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            processor.run(max_seconds=120)
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            outcome["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    deadline = time.monotonic() + 60
    # Readiness (not a timing assertion): every label learned and its periodic versions indexed.
    while not (processor.engine is not None and processor.engine.n_learned == len(rows)
               and not processor.work.in_txn and not processor.checkpointer.saver.busy):
        assert time.monotonic() < deadline and runner.is_alive(), outcome
        time.sleep(0.05)
    time.sleep(0.5)  # let the last batch's commit and version settle
    versions_before, state_before = store.versions(), _registry_state(config, store)
    assert len(versions_before) >= 2  # the initial version and a periodic one
    announced_before = [m.key() for m in reader(config, config.topics.versions)]

    # A newer producer with the deployment's transactional.id fences this processor.
    fencer = Producer({"bootstrap.servers": config.kafka.bootstrap_servers,
                       "transactional.id": config.transactional_id})
    fencer.init_transactions(30)

    action, params = COMMANDS[name]
    command = processor.lifecycle.queue.submit(Command(action, dict(params), actor="test", reason="fenced"))
    with pytest.raises(LifecycleError) as failed:
        command.wait(120)
    assert f"{action} failed, nothing changed: " in str(failed.value), failed.value
    assert "fenced" in str(failed.value).lower(), failed.value
    assert failed.value.status == 500
    runner.join(60)
    assert isinstance(outcome.get("error"), FencedError), outcome  # it stops at once, as fenced

    assert store.versions() == versions_before  # before: the command's version stayed, restored later
    assert _registry_state(config, store) == state_before  # no row, no alias move, no history entry
    assert [m.key() for m in reader(config, config.topics.versions)] == announced_before
    assert [orjson.loads(m.value())["action"] for m in reader(config, config.topics.lifecycle)] == []
    restarted = Processor(config, signing_key, registry=CollectorRegistry())
    assert restarted.restore().version == versions_before[-1]


def _own_record(store, version):
    meta = store.meta(version)
    return meta["examples_seen"], meta["metrics"]["accuracy"]


def test_versions_cut_by_promote_and_rollback_show_the_models_own_examples_and_accuracy(
        make_config, signing_key):
    config = make_config()
    rows = _rows(600)
    replay(config, rows[:200], label_delay=DELAY, n_rows=200)
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=1)
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    source = store.latest()  # its shutdown version: 200 examples
    assert store.meta(source)["examples_seen"] == 200
    replay(config, rows[200:], label_delay=DELAY, n_rows=400, id_prefix="f")  # stamped after the first
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=1)
    stream_examples, stream_accuracy = _own_record(store, store.latest())
    assert stream_examples == len(rows)

    def apply(action: str, params: dict) -> int:
        processor = Processor(config, signing_key, registry=CollectorRegistry())
        command = processor.lifecycle.queue.submit(Command(action, params, actor="test", reason="own record"))
        processor.run(exit_when_idle_s=1)
        return command.wait(0)["version"]

    # before: the promote's version showed the stream's 600 examples and accuracy
    promoted = apply("promote", {"version": source})
    assert _own_record(store, promoted) == _own_record(store, source) != (stream_examples, stream_accuracy)
    assert _own_record(store, store.latest()) == _own_record(store, source)  # the shutdown cut after it too
    registry = Registry(registry_path(config))
    shown = registry.get(config.name, "champion")
    assert (shown["examples_seen"], shown["metrics"]["accuracy"]) == _own_record(store, source)

    rolled = apply("rollback", {"to": source})
    assert _own_record(store, rolled) == _own_record(store, source)


def test_a_promoted_challenger_brings_its_own_examples_and_accuracy(make_config, signing_key):
    config = make_config(checkpoint={"every_examples": 10_000})
    rows = _rows(1000, seed=3)
    first, later = rows[:700], rows[700:]

    def run(*commands: Command) -> Processor:
        processor = Processor(config, signing_key, registry=CollectorRegistry())
        for command in commands:
            processor.lifecycle.queue.submit(command)
        processor.run(exit_when_idle_s=1)
        return processor

    replay(config, first, label_delay=DELAY, n_rows=len(first))
    run()
    run(Command("add_challenger", {"name": "nb", "model": {"preset": "gaussian_naive_bayes"}}, actor="test",
                reason="cold start, after 700 examples"))
    replay(config, later, label_delay=DELAY, n_rows=len(later), id_prefix="f")  # stamped after the first
    engine = run().engine
    member = engine.arena.members["nb"]
    assert (engine.n_learned, member.learned) == (len(rows), len(later))
    own = member.learned, member.scores.values()["accuracy"]
    assert own[1] != engine.scores.values()["accuracy"]

    promote = Command("promote", {"challenger": "nb"}, actor="test", reason="its own record")
    run(promote)
    version = promote.wait(0)["version"]
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    # before: the stream's 1000 examples and the outgoing champion's accuracy
    assert _own_record(store, version) == own
    assert store.meta(version)["model_class"] == "GaussianNB"
