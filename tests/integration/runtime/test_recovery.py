"""Kill -9 the processor mid-stream, restart it, and check nothing was lost or learned twice."""

from __future__ import annotations

import collections

import orjson
import pytest

from driftline.core.engine import Engine
from driftline.datasets import stream
from driftline.runtime.replay import encode_features, replay
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

N_EVENTS, DELAY, KILLS = 12_000, 200, 4


def _write_toml(config, path) -> None:
    path.write_text(
        f"""
name = "{config.name}"
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[model]
preset = "{config.model.preset}"
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = {config.checkpoint.every_examples}
[processor]
guarantee = "{config.processor.guarantee}"
commit_interval_ms = {config.processor.commit_interval_ms}
batch_size = {config.processor.batch_size}
"""
    )


def _reference_engine(config, records) -> Engine:
    """The uninterrupted run: the same records in the same event-time order, in memory."""
    engine = Engine(config)
    for record in records:
        engine.process(record, now_ms=0)
    return engine


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_kill_minus_nine_loses_nothing_and_learns_nothing_twice(make_config, reader, signing_key, tmp_path, guarantee,
                                                                kill_runs, reference_records):
    """Both guarantees learn every label once; exactly-once also publishes every output once,
    at-least-once may repeat the outputs made since its last offset commit."""
    config = make_config(checkpoint={"every_examples": 1500},
                         processor={"commit_interval_ms": 50, "batch_size": 200, "guarantee": guarantee})
    all_rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=N_EVENTS + 300, seed=11)]
    rows, held_out = all_rows[:N_EVENTS], all_rows[N_EVENTS:]
    replay(config, rows, label_delay=DELAY, n_rows=len(rows))
    toml = tmp_path / "deployment.toml"
    _write_toml(config, toml)
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    kills = kill_runs(config, toml, signing_key, runs=KILLS, seed=2024, max_pause_s=0.4)
    assert kills >= 2, "the stream finished before the processor could be killed"

    # Every feature event has a prediction: exactly one under exactly-once.
    ids = collections.Counter(orjson.loads(m.value())["id"] for m in reader(config, config.topics.predictions))
    assert set(ids) == {f"e{i}" for i in range(N_EVENTS)}
    if guarantee == "exactly_once":
        assert max(ids.values()) == 1
    assert reader(config, config.topics.dlq, idle_s=1) == []

    # Every label was learned exactly once, by the model and by the metrics.
    _, state = store.load(store.latest())
    engine = state["engine"]
    assert engine.n_learned == N_EVENTS
    assert engine.scores.n == N_EVENTS
    scaler = engine.model["StandardScaler"]
    assert set(scaler.counts.values()) == {N_EVENTS}

    # And the model is the one an uninterrupted run builds.
    reference = _reference_engine(config, reference_records(rows, DELAY))
    assert engine.scores.values() == reference.scores.values()
    for x, _ in held_out:
        assert engine.model.predict_proba_one(x) == reference.model.predict_proba_one(x)
