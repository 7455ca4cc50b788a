"""The explainer predicts through a linear pipeline's transform once and explains from it:
the same probabilities as the pipeline, the same explanation as a fresh transform."""

from __future__ import annotations

import pickle
import struct

from river import compose, linear_model, preprocessing
from river.datasets import synth

from driftline.core.explain import Explainer
from driftline.core.models import PRESETS


def _trained(categorical=()):
    rows = list(synth.Agrawal(classification_function=2, seed=11).take(1300))
    model = PRESETS["logistic_regression"](categorical)
    for x, y in rows[:1000]:
        model.learn_one(x, y)
    return model, [x for x, _ in rows[1000:]]


def test_the_shared_transform_gives_the_pipelines_probabilities_and_a_fresh_explanation():
    for categorical in ((), ("car", "zipcode")):
        model, test = _trained(categorical)
        shared = Explainer(5, categorical)
        for x in test:
            assert shared.predict_proba_one(model, x) == model.predict_proba_one(x)
            assert shared.explanation(model, x, True) == Explainer(5, categorical).explanation(model, x, True)


def test_the_kept_transform_is_read_once_and_only_for_the_same_input_and_model():
    model, test = _trained()
    explainer = Explainer(5)
    x = dict(test[0])
    explainer.predict_proba_one(model, x)
    model.learn_one(x, True)  # the scaler moves: a second explanation must not reuse the old transform
    explainer.explanation(model, x, True)
    after = explainer.explanation(model, x, True)
    assert after == Explainer(5).explanation(model, x, True)
    other = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    explainer.predict_proba_one(model, x)
    assert explainer.explanation(other, x, True) == Explainer(5).explanation(other, x, True)


def test_a_pickled_explainer_holds_no_features():
    model, test = _trained()
    explainer = Explainer(5)
    x = {**test[0], "salary": 123456.789}
    explainer.predict_proba_one(model, x)
    assert struct.pack(">d", 123456.789) not in pickle.dumps(explainer)  # pickle's BINFLOAT
    restored = pickle.loads(pickle.dumps(explainer))
    assert restored.explanation(model, x, True) == Explainer(5).explanation(model, x, True)
