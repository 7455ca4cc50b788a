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


import pytest  # noqa: E402
from river import imblearn, linear_model, tree  # noqa: E402

from driftline.core.augment import resampled  # noqa: E402
from driftline.exceptions import ConfigError  # noqa: E402


def test_river_resamplers_wrap_the_model_by_config():
    lr, ht = linear_model.LogisticRegression(), tree.HoeffdingTreeClassifier()
    over = resampled(ht, AugmentConfig(kind="random_over", desired={"a": 0.7, "b": 0.3}, seed=5), ("a", "b"))
    assert isinstance(over, imblearn.RandomOverSampler) and over.classifier is ht
    assert over.desired_dist == {"a": 0.7, "b": 0.3} and over.seed == 5
    # a binary-only model learns False/True for the configured classes, in their order
    under = resampled(lr, AugmentConfig(kind="random_under", desired={"no": 0.9, "yes": 0.1}), ("no", "yes"))
    assert isinstance(under, imblearn.RandomUnderSampler) and under.desired_dist == {False: 0.9, True: 0.1}
    hard = resampled(ht, AugmentConfig(kind="hard_sampling", ring=50, p=0.2, seed=1))
    assert isinstance(hard, imblearn.HardSamplingClassifier) and (hard.size, hard.p) == (50, 0.2)
    assert resampled(ht, AugmentConfig(kind="smote")) is ht and resampled(ht, AugmentConfig()) is ht


def test_a_resampler_without_the_shares_it_needs_is_a_config_error():
    with pytest.raises(ConfigError, match="needs \\[model\\] classes"):
        resampled(tree.HoeffdingTreeClassifier(), AugmentConfig(kind="random_over"))
    with pytest.raises(ConfigError, match="no share for class"):
        resampled(tree.HoeffdingTreeClassifier(), AugmentConfig(kind="random_over", desired={"a": 1.0}), ("a", "b"))


@pytest.mark.parametrize("kind", ["random_over", "random_under", "hard_sampling"])
def test_an_engine_with_a_resampler_is_deterministic_and_snapshots_exactly(kind):
    from driftline.core.events import InputRecord

    config = DeploymentConfig(name="r", model=ModelConfig(preset="hoeffding_tree", classes=[0, 1],
                                                          augment=AugmentConfig(kind=kind, seed=3)),
                              drift={"policy": "none", "detectors": []})
    records = []
    for i in range(600):
        x = {"x": float(i % 17), "y": float((i * 7) % 11)}
        label = int(x["x"] + x["y"] > 22)
        records.append(InputRecord("features", 0, i, i, f"e{i}".encode(),
                                   f'{{"id": "e{i}", "features": {{"x": {x["x"]}, "y": {x["y"]}}}}}'.encode()))
        records.append(InputRecord("labels", 0, i, i, f"e{i}".encode(), f'{{"id": "e{i}", "label": {label}}}'.encode()))
    engine = Engine(config)
    assert type(engine.model).__module__.startswith("river.imblearn")
    first = [o for r in records[:600] for o in engine.process(r, 0)]
    restored = pickle.loads(pickle.dumps(engine))
    rest = [o for r in records[600:] for o in restored.process(r, 0)]
    again = Engine(config)
    assert [o for r in records for o in again.process(r, 0)] == first + rest
    assert restored.scores.values() == again.scores.values() and again.n_learned == 600
