"""SMOTE-style oversampling at learning time: seeded, bounded, invisible to scoring."""

from __future__ import annotations

import pickle

from driftline.config import AugmentConfig, DeploymentConfig, ModelConfig
from driftline.core.augment import Oversampler
from driftline.core.engine import Engine


class Recorder:
    def __init__(self):
        self.seen = []

    def learn_one(self, x, y):
        self.seen.append((dict(x), y))


def test_synthetic_examples_lie_between_two_real_minority_examples():
    sampler = Oversampler(AugmentConfig(kind="smote", k=4, ratio=0.5, ring=3))
    model = Recorder()
    for i in range(20):
        sampler.learned(model, {"x": float(i), "c": "a"}, False)
    sampler.learned(model, {"x": 100.0, "c": "b"}, True)
    sampler.learned(model, {"x": 200.0, "c": "b"}, True)
    synthetic = model.seen  # the model saw only what the sampler made
    assert len(synthetic) == 4 and all(y is True for _, y in synthetic)
    assert all(100.0 <= x["x"] <= 200.0 and x["c"] == "b" for x, _ in synthetic)
    assert len(sampler.rings[False]) == 3 and sampler.counts == {False: 20, True: 2}


def test_engine_with_smote_is_deterministic_and_a_snapshot_continues_exactly(timeline):
    rows = [({"x": float(i % 17), "z": float(i % 5)}, i % 23 == 0) for i in range(2000)]
    config = DeploymentConfig(name="t", model=ModelConfig(preset="logistic_regression",
                                                          augment={"kind": "smote", "k": 3}))
    records = timeline(rows, 5)
    reference = Engine(config)
    out = [o for r in records for o in reference.process(r, 0)]
    assert reference.n_learned == 2000 and reference.augment.synthetic > 0
    engine = Engine(config)
    half = [o for r in records[:1500] for o in engine.process(r, 0)]
    restored = pickle.loads(pickle.dumps(engine))
    assert half + [o for r in records[1500:] for o in restored.process(r, 0)] == out
    assert restored.scores.values() == reference.scores.values()
    plain = Engine(DeploymentConfig(name="t", model=ModelConfig(preset="logistic_regression")))
    for r in records:
        plain.process(r, 0)
    assert plain.augment is None and plain.scores.values() != reference.scores.values()
