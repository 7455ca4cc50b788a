"""The audit log on the real broker: every lifecycle event has exactly one audit entry, in
the same transaction; the chain verifies; a copy with one corrupted byte names that entry."""

from __future__ import annotations

import collections

import orjson
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from driftline.cli import main
from driftline.datasets import stream
from driftline.lifecycle.commands import Command
from driftline.runtime.clients import make_producer
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay

pytestmark = pytest.mark.integration


def _verify(config, key: str):
    return CliRunner().invoke(main, ["--name", config.name, "--bootstrap", config.kafka.bootstrap_servers,
                                     "audit", "verify"], env={"DRIFTLINE_SNAPSHOT_KEY": key})


def test_lifecycle_events_are_audited_once_and_the_chain_verifies(make_config, reader, signing_key):
    policy = {"enabled": True, "window": 500, "margin": 0.02, "alpha": 0.01, "patience": 2}
    config = make_config(lifecycle={"challengers": [{"name": "hat", "model": {"preset": "hoeffding_adaptive_tree"}}],
                                    "promotion": policy})
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=6000, seed=7, drift_every=2000)]
    replay(config, rows, label_delay=50, n_rows=len(rows))
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    for name in ("nb", "nb2"):  # commands between batches: events in transactions of their own
        processor.lifecycle.queue.submit(Command("add_challenger", {"name": name, "model": {"preset": "gaussian_naive_bayes"}},
                                                 actor="test", reason="audit"))
    processor.run(exit_when_idle_s=3)
    # A second run resumes the chain from the topic.
    second = Processor(config, signing_key, registry=CollectorRegistry())
    second.lifecycle.queue.submit(Command("remove_challenger", {"name": "nb2"}, actor="test", reason="audit"))
    second.run(exit_when_idle_s=3)

    events = [orjson.loads(m.value()) for m in reader(config, config.topics.lifecycle)]
    entries = reader(config, config.topics.audit)
    bodies = [orjson.loads(m.value()) for m in entries]
    assert len(events) >= 4 and {"add_challenger", "remove_challenger", "promote"} <= {e["action"] for e in events}
    # (drift-policy model changes and fairness state changes are entries of their own kinds)
    assert collections.Counter(b["subject"] for b in bodies if b["kind"] == "lifecycle") == collections.Counter(e["id"] for e in events)
    lifecycle = [b for b in bodies if b["kind"] == "lifecycle"]
    assert all(b["record"] == e for b, e in zip(lifecycle, events))  # same order, same content
    assert [b["seq"] for b in bodies] == list(range(len(bodies)))
    result = _verify(config, signing_key.decode())
    assert result.exit_code == 0 and f"{len(bodies)} entries verify" in result.output, result.output
    assert _verify(config, "another-key").exit_code == 1  # the signatures need the snapshot key

    copy = make_config()
    producer = make_producer(copy)
    bad = len(entries) // 2
    for i, message in enumerate(entries):
        value = message.value()
        if i == bad:
            value = value.replace(b'"action":"', b'"action":"x', 1)
        producer.produce(copy.topics.audit, key=message.key(), value=value)
    producer.flush(10)
    result = _verify(copy, signing_key.decode())
    assert result.exit_code == 1
    assert f"entry at offset {bad} (seq {bad}) does not verify: hash mismatch" in result.output, result.output
    assert f"{bad} entries before it verify" in result.output
