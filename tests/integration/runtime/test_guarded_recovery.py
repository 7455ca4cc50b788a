"""Kill -9 the processor while a guarded candidate learns; the restored candidate is exact."""

from __future__ import annotations


import pytest

from driftline.core.engine import Engine
from driftline.datasets import stream
from driftline.runtime.replay import encode_features, replay
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

N_EVENTS, DELAY, KILLS = 9_000, 100, 3
# A candidate that never wins (alpha far below any exact p-value) and is never given up lives
# from the first detection to the end, so every kill after it is a kill mid-candidate.
DRIFT = {"policy": "guarded", "grace_examples": 0, "guard": {"alpha": 1e-300, "max_examples": 1_000_000}}


def _write_toml(config, path) -> None:
    path.write_text(
        f"""
name = "{config.name}"
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[model]
preset = "{config.model.preset}"
[drift]
policy = "guarded"
grace_examples = 0
[drift.guard]
alpha = 1e-300
max_examples = 1000000
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = {config.checkpoint.every_examples}
[processor]
commit_interval_ms = {config.processor.commit_interval_ms}
batch_size = {config.processor.batch_size}
"""
    )


def _reference_engine(config, records) -> Engine:
    engine = Engine(config)
    for record in records:
        engine.process(record, now_ms=0)
    return engine


@pytest.mark.parametrize("preset", ["hoeffding_tree", "logistic_regression"])  # a linear candidate has a fresh twin
def test_kill_minus_nine_mid_candidate_restores_it_exactly(make_config, signing_key, tmp_path, preset, kill_runs,
                                                           reference_records):
    config = make_config(model={"preset": preset}, drift=DRIFT, checkpoint={"every_examples": 1500},
                         processor={"commit_interval_ms": 50, "batch_size": 200})
    all_rows = [(encode_features(x), y) for x, y in stream("synth:sine", limit=N_EVENTS + 300, seed=5,
                                                             drift_every=2000, noise=0.05)]
    rows, held_out = all_rows[:N_EVENTS], all_rows[N_EVENTS:]
    replay(config, rows, label_delay=DELAY, n_rows=len(rows))
    toml = tmp_path / "deployment.toml"
    _write_toml(config, toml)
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    mid_candidate = []

    def candidate_alive() -> None:
        latest = store.latest()
        if latest is not None and store.load(latest)[1]["engine"].adapt.guard.candidate is not None:
            mid_candidate.append(latest)

    kills = kill_runs(config, toml, signing_key, runs=KILLS, seed=7, on_kill=candidate_alive)
    assert kills >= 2 and len(mid_candidate) >= 1, (kills, mid_candidate)

    _, state = store.load(store.latest())
    engine = state["engine"]
    reference = _reference_engine(config, reference_records(rows, DELAY))
    assert engine.n_learned == reference.n_learned == N_EVENTS
    assert engine.scores.values() == reference.scores.values()
    guard, expected = engine.adapt.guard, reference.adapt.guard
    assert guard.candidate is not None and guard.origin == expected.origin
    assert (guard.pairs.b, guard.pairs.c, len(guard.pairs)) == (expected.pairs.b, expected.pairs.c, len(expected.pairs))
    assert list(guard.ring) == list(expected.ring)
    assert (guard.twin is None) == (expected.twin is None) == (preset == "hoeffding_tree")
    assert guard.label_delay == expected.label_delay and abs(guard.label_delay - DELAY) <= 1
    for x, _ in held_out:
        assert engine.model.predict_proba_one(x) == reference.model.predict_proba_one(x)
        assert guard.candidate.predict_proba_one(x) == expected.candidate.predict_proba_one(x)
        if guard.twin is not None:
            assert guard.twin.predict_proba_one(x) == expected.twin.predict_proba_one(x)
