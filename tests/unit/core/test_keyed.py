"""Keyed models against their oracle: a separate Engine per key, fed only that key's records."""

from __future__ import annotations

import pickle
import random
from collections import Counter

import orjson
import pytest

from driftline.config import DeploymentConfig, ModelConfig
from driftline.core.cold import ColdStore, MemoryColdStore
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.keyed import KeyedEngine
from driftline.core.outputs import DeadLetter, DriftEvent, Prediction
from driftline.exceptions import BadEventError, SnapshotNotFoundError

N_KEYS = 1_000
PRESETS = ["logistic_regression", "hoeffding_tree"]


def config(preset: str, max_keys: int = 10_000, **kwargs) -> DeploymentConfig:
    """Three declared numeric features; the default drift settings (reset on drift)."""
    return DeploymentConfig(name="keyed", model=ModelConfig(preset=preset, features={"a": "num", "b": "num", "c": "num"}),
                            scale={"mode": "keyed", "max_keys_in_memory": max_keys}, **kwargs)


def synthetic(n_keys: int = N_KEYS, n_events: int = 3_000, seed: int = 7) -> list[InputRecord]:
    """Seeded events with a key column: each key has its own concept (a weight vector) and
    a skewed share of the traffic; labels arrive 0 to 40 ms after their features."""
    rng = random.Random(seed)
    weights = {f"k{i:04d}": [rng.uniform(-1, 1) for _ in range(3)] for i in range(n_keys)}
    keys = list(weights)
    records, offsets = [], {"features": 0, "labels": 0}

    def add(kind, ts, key, body):
        records.append(InputRecord(kind, 0, offsets[kind], ts, key.encode(), orjson.dumps(body)))
        offsets[kind] += 1

    for i in range(n_events):
        # Every key at least once, then a skewed draw (low-numbered keys are busier).
        key = keys[i] if i < n_keys else keys[int(rng.random() ** 3 * n_keys)]
        x = {name: rng.gauss(0, 1) for name in "abc"}
        y = sum(w * v for w, v in zip(weights[key], x.values())) + rng.gauss(0, 0.3) > 0
        add("features", i * 10, key, {"id": f"e{i}", "features": x})
        add("labels", i * 10 + rng.randrange(0, 41), key, {"id": f"e{i}", "label": y})
    return sorted(records, key=lambda r: (r.timestamp, r.kind != "labels", r.offset))


RECORDS = synthetic()
HELD_OUT = [{name: random.Random(i).gauss(0, 1) for name in "abc"} for i in range(20)]
TIGHT = 900  # resident keys of 1,000 in the eviction tests: 342 evictions


def run(engine, records) -> list:
    out = []
    for record in records:
        out.extend(engine.process(record, 0))
    return out


def wire(outputs) -> list:
    """Comparable outputs: bodies for predictions and drift, reason and offset for dead letters."""
    return [(o.kind, o.body()) if hasattr(o, "body") else (o.kind, o.reason, o.record.kind, o.record.offset)
            for o in outputs]


def final_models(keyed: KeyedEngine) -> dict[str, list]:
    return {key: [keyed.engine_for(key).model.predict_proba_one(x) for x in HELD_OUT] for key in sorted(keyed.keys())}


_RUNS: dict = {}


def full_run(preset: str) -> tuple[KeyedEngine, list]:
    """One uninterrupted keyed run with every key resident (shared by the tests: seconds each)."""
    if preset not in _RUNS:
        keyed = KeyedEngine(config(preset))
        _RUNS[preset] = keyed, run(keyed, RECORDS)
    return _RUNS[preset]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_key_is_its_own_engine(preset):
    """Per key: a separate Engine fed only that key's records, in their order."""
    per_key: dict[str, list[InputRecord]] = {}
    for record in RECORDS:
        per_key.setdefault(record.key.decode(), []).append(record)
    engines = {key: Engine(config(preset)) for key in per_key}
    expected = {key: wire(run(engines[key], records)) for key, records in per_key.items()}
    keyed, got = full_run(preset)
    assert len(keyed.keys()) == N_KEYS and keyed.key_stats()["evictions"] == 0
    by_key: dict[str, list] = {}
    for o in got:
        key = o.record.key.decode() if isinstance(o, DeadLetter) else o.key
        by_key.setdefault(key, []).append(o)
    # Outputs name their key; apart from it, they are exactly the separate engine's outputs.
    for key, outputs in by_key.items():
        bodies = wire(outputs)
        for kind, body in bodies:
            assert body.pop("key") == key
        assert bodies == expected[key], key
    assert set(by_key) == set(expected)
    assert sum(1 for o in got if isinstance(o, Prediction)) == len(RECORDS) // 2
    # Final models, key by key, on held-out points.
    assert final_models(keyed) == {k: [e.model.predict_proba_one(x) for x in HELD_OUT] for k, e in sorted(engines.items())}
    # The aggregates the runtime reads.
    assert keyed.n_learned == sum(e.n_learned for e in engines.values()) == len(RECORDS) // 2
    for name in vars(keyed.counters):
        assert getattr(keyed.counters, name) == sum(getattr(e.counters, name) for e in engines.values()), name
    scored = [e.scores.values()["accuracy"] for e in engines.values() if e.scores.n]
    assert keyed.scores.values()["accuracy"] == pytest.approx(sum(scored) / len(scored))
    assert keyed.scores.n == sum(e.scores.n for e in engines.values())
    assert keyed.stream_time == max(e.stream_time for e in engines.values())
    assert keyed.join.pending_features == sum(e.join.pending_features for e in engines.values())


@pytest.mark.parametrize("preset", PRESETS)
def test_eviction_changes_nothing(preset):
    full, expected = full_run(preset)
    tight = KeyedEngine(config(preset, max_keys=TIGHT))
    assert wire(run(tight, RECORDS)) == wire(expected)
    stats = tight.key_stats()
    assert stats["resident"] == TIGHT and stats["keys"] == N_KEYS and stats["evicted"] == N_KEYS - TIGHT
    assert stats["evictions"] > N_KEYS - TIGHT and stats["restores"] == stats["evictions"] - stats["evicted"]
    assert len(tight.cold) == stats["evicted"]  # restored keys' blobs are released
    assert (tight.n_learned, vars(tight.counters)) == (full.n_learned, vars(full.counters))
    assert tight.scores.values() == pytest.approx(full.scores.values())
    assert tight.join.pending_features == full.join.pending_features
    assert final_models(tight) == final_models(full)  # restores the evicted keys once more


def test_pickled_mid_stream_continues_identically():
    half = len(RECORDS) // 2
    straight, expected = full_run("hoeffding_tree")
    first = KeyedEngine(config("hoeffding_tree", max_keys=TIGHT // 2))
    head = wire(run(first, RECORDS[:half]))
    assert first.key_stats()["evicted"] > 0
    restored = pickle.loads(pickle.dumps(first))  # evicted keys travel in the MemoryColdStore
    assert head + wire(run(restored, RECORDS[half:])) == wire(expected)
    assert final_models(restored) == final_models(straight)
    assert restored.n_learned == straight.n_learned and restored.top_keys() == straight.top_keys()


class DictStore:
    """A store that is not a MemoryColdStore: it stays outside the pickled engine."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, ref, blob):
        self.blobs[ref] = blob

    def get(self, ref):
        return self.blobs.get(ref)

    def release(self, ref):
        pass  # a version store keeps blobs that snapshots refer to


def test_an_outside_store_is_referenced_not_pickled():
    store = DictStore()
    assert isinstance(store, ColdStore)
    half = len(RECORDS) // 2
    _, expected = full_run("logistic_regression")
    first = KeyedEngine(config("logistic_regression"), cold=store, max_keys=TIGHT)
    head = wire(run(first, RECORDS[:half]))
    assert first.key_stats()["evicted"] > 0
    blob = pickle.dumps(first)
    restored = pickle.loads(blob)
    assert restored.cold is None
    with pytest.raises(SnapshotNotFoundError, match="attach"):
        run(restored, RECORDS[half:])
    restored = pickle.loads(blob)
    restored.attach(store)
    assert head + wire(run(restored, RECORDS[half:])) == wire(expected)


def test_a_lost_blob_is_a_clear_error():
    keyed = KeyedEngine(config("logistic_regression"), cold=MemoryColdStore(), max_keys=1)
    run(keyed, RECORDS[:4])
    keyed.cold._blobs.clear()
    with pytest.raises(SnapshotNotFoundError, match="not in the cold store"):
        run(keyed, RECORDS)


@pytest.mark.parametrize(("key", "reason"), [(None, "missing_key"), (b"", "missing_key"), (b"\xff\xfe", "malformed_key")])
def test_a_record_without_a_usable_key_is_a_dead_letter(key, reason):
    keyed = KeyedEngine(config("logistic_regression"))
    record = InputRecord("features", 0, 3, 10, key, b'{"id": "e1", "features": {"a": 1, "b": 2, "c": 3}}')
    [out] = keyed.process(record, 0)
    assert isinstance(out, DeadLetter) and out.reason == reason and out.record is record
    assert keyed.counters.dead_letters == 1 and keyed.keys() == [] and keyed.stream_time == 0


def test_bad_input_of_a_key_is_that_keys_dead_letter():
    keyed = KeyedEngine(config("logistic_regression"))
    [out] = keyed.process(InputRecord("features", 0, 0, 10, b"k1", b"{not json"), 0)
    assert out.reason == "malformed_json" and keyed.counters.dead_letters == 1 and keyed.top_keys() == [("k1", 1)]


def test_drift_events_name_their_key_and_stay_unique():
    """Two keys on the same drifting stream: their detectors fire at the same positions."""
    rng = random.Random(3)
    records = []
    for i in range(3_000):
        x = {name: rng.gauss(0, 1) for name in "abc"}
        y = (x["a"] > 0) if i < 1_500 else (x["a"] <= 0)
        for j, key in enumerate((b"s1", b"s2")):
            records.append(InputRecord("features", 0, 2 * i + j, i * 10, key, orjson.dumps({"id": f"e{i}", "features": x})))
            records.append(InputRecord("labels", 0, 2 * i + j, i * 10 + 1, key, orjson.dumps({"id": f"e{i}", "label": y})))
    keyed = KeyedEngine(config("logistic_regression"))
    drift = [o for o in run(keyed, sorted(records, key=lambda r: (r.timestamp, r.kind != "labels", r.offset)))
             if isinstance(o, DriftEvent)]
    assert {d.key for d in drift} == {"s1", "s2"}
    assert len({d.id for d in drift}) == len(drift)
    for d in drift:
        assert d.id.endswith(f"@{d.key}") and d.body()["key"] == d.key
    assert keyed.counters.drift_events == len(drift)


def test_top_keys_are_the_busiest():
    keyed, _ = full_run("logistic_regression")
    counts = Counter(r.key.decode() for r in RECORDS)
    expected = sorted(counts.items(), key=lambda kc: (-kc[1], kc[0]))
    assert keyed.top_keys(5) == expected[:5]
    assert len(keyed.top_keys()) == keyed.config.scale.top_keys
    assert keyed.key_stats()["events_max"] == expected[0][1]


def test_a_keys_checkpoint_request_reaches_the_runtime():
    """A key's drift (or periodic retrain) asks for a version: the keyed engine raises it once."""
    keyed = KeyedEngine(config("logistic_regression"))
    engine = keyed.engine_for("k1")
    engine.checkpoint_due = "drift"
    keyed.process(InputRecord("features", 0, 0, 10, b"k1", b'{"id": "e1", "features": {"a": 1, "b": 2, "c": 3}}'), 0)
    assert (keyed.checkpoint_due, engine.checkpoint_due) == ("drift", None)
    keyed.checkpoint_due = None  # what the processor does at a cut
    keyed.process(InputRecord("features", 0, 1, 20, b"k1", b'{"id": "e2", "features": {"a": 1, "b": 2, "c": 3}}'), 0)
    assert keyed.checkpoint_due is None


def test_the_version_the_runtime_sets_names_every_prediction():
    keyed = KeyedEngine(config("logistic_regression", max_keys=5))
    run(keyed, RECORDS[:50])
    keyed.version = 7
    predictions = [o for o in run(keyed, RECORDS[50:200]) if isinstance(o, Prediction)]
    assert predictions and {p.model_version for p in predictions} == {7}


def test_a_synchronous_prediction_uses_the_keys_model_and_creates_no_key():
    keyed, _ = full_run("logistic_regression")
    x = HELD_OUT[0]
    assert keyed.predict(x, "k0001") == keyed.engine_for("k0001").predict(x)
    assert keyed.predict(x, "never-seen") == Engine(config("logistic_regression")).predict(x)
    assert "never-seen" not in keyed.keys() and keyed.resident == N_KEYS
    with pytest.raises(BadEventError, match="missing_key"):
        keyed.predict(x)
    assert keyed.model_examples == keyed.n_learned


@pytest.mark.parametrize("evicted", [False, True], ids=["resident", "evicted"])
def test_a_copy_with_one_keys_engine_replaced_goes_on_like_that_engine_and_leaves_the_original(evicted):
    """What a keyed lifecycle command serves (runtime/keyed_commands.py): the key learns on
    from the engine it was given, every other key exactly as in an undisturbed run."""
    preset, half = "logistic_regression", len(RECORDS) // 2
    keyed = KeyedEngine(config(preset, max_keys=TIGHT))
    run(keyed, RECORDS[:half])
    key = next(k for k in sorted(keyed.keys()) if (k in keyed._evicted) == evicted)
    assert keyed.key_engine(key) is not None and keyed.key_engine("never-seen") is None
    def layout(k: KeyedEngine):
        return ([(key, id(e)) for key, e in k._resident.items()], dict(k._evicted), len(k.cold), dict(k.events),
                vars(k.counters), k.evictions)

    before, mine = layout(keyed), pickle.dumps(keyed.key_engine(key))
    fresh = Engine(config(preset))
    copy = keyed.with_key_engine(key, fresh)
    assert layout(keyed) == before and pickle.dumps(keyed.key_engine(key)) == mine  # the original is as it was
    assert copy.key_engine(key) is fresh and copy.resident <= TIGHT
    rest = RECORDS[half:]
    run(copy, rest)
    oracle = Engine(config(preset))
    run(oracle, [r for r in rest if r.key.decode() == key])
    full, _ = full_run(preset)
    got, want = final_models(copy), final_models(full)
    assert got.pop(key) == [oracle.model.predict_proba_one(x) for x in HELD_OUT]
    want.pop(key)
    assert got == want
