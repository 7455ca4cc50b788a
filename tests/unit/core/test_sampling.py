"""The seeded label sample (``[model] learn_share``) against River and a hash computed here."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from river import metrics, tree

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.sampling import LabelSample
from driftline.datasets import stream
from driftline.runtime.publisher import encode_features


def test_the_sample_is_blake2b_keyed_with_the_seed():
    sample = LabelSample(0.3, seed=11)
    for i in range(2000):
        digest = hashlib.blake2b(f"e{i}".encode(), digest_size=8, key=(11).to_bytes(8, "big")).digest()
        assert sample.keeps(f"e{i}") == (int.from_bytes(digest, "big") / 2**64 < 0.3)


def test_the_share_is_kept_and_seeds_differ():
    ids = [f"e{i}" for i in range(20_000)]
    a, b = LabelSample(0.1, seed=1), LabelSample(0.1, seed=2)
    kept_a = {i for i in ids if a.keeps(i)}
    kept_b = {i for i in ids if b.keeps(i)}
    assert 1800 < len(kept_a) < 2200 and 1800 < len(kept_b) < 2200
    assert len(kept_a & kept_b) < 400  # independent samples overlap by about 1 %
    assert all(LabelSample(1.0).keeps(i) for i in ids[:100])


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share):
    with pytest.raises(ValueError):
        LabelSample(share)


def _config(**model) -> DeploymentConfig:
    return DeploymentConfig(name="s", model={"preset": "river.tree:HoeffdingTreeClassifier", **model},
                            drift={"policy": "none"})


def test_engine_learns_only_the_sample_and_scores_every_label():
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=1500, seed=4)]
    engine = Engine(_config(learn_share=0.25, learn_seed=9))
    sample = LabelSample(0.25, seed=9)
    model, accuracy, scored = tree.HoeffdingTreeClassifier(), metrics.Accuracy(), 0
    for i, (x, y) in enumerate(rows):
        engine.process(InputRecord("features", 0, i, 2 * i, None, orjson.dumps({"id": f"e{i}", "features": x})), 0)
        engine.process(InputRecord("labels", 0, i, 2 * i + 1, None, orjson.dumps({"id": f"e{i}", "label": y})), 0)
        if (predicted := model.predict_one(x)) is not None:  # an empty tree predicts nothing: not scored
            accuracy.update(y, predicted)
            scored += 1
        if sample.keeps(f"e{i}"):
            model.learn_one(x, y)
    kept = sum(sample.keeps(f"e{i}") for i in range(len(rows)))
    assert engine.n_learned == kept < len(rows)
    assert engine.counters.unsampled == len(rows) - kept
    assert engine.counters.joined == len(rows)
    assert engine.scores.n == scored > len(rows) - 20
    assert engine.scores.values()["accuracy"] == pytest.approx(accuracy.get(), abs=1e-12)
    assert engine.model.predict_proba_one(rows[0][0]) == model.predict_proba_one(rows[0][0])


def test_learn_share_is_validated_by_the_config():
    with pytest.raises(ValueError):
        _config(learn_share=0)
    with pytest.raises(ValueError):
        _config(learn_share=1.2)
