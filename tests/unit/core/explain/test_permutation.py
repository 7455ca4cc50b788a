"""iPFI (core/permutation.py) against the iXAI package's IncrementalPFI, and on Agrawal function 2."""

from __future__ import annotations

import itertools
import random
import warnings

import pytest
from river import datasets, naive_bayes, neighbors, preprocessing

from driftline.core.permutation import PermutationImportance

ixai_pfi = pytest.importorskip("ixai.explainer.pfi")  # pinned in the dev extra (pyproject.toml)
from ixai.storage import GeometricReservoirStorage  # noqa: E402


def _agrawal(n: int, seed: int):
    return list(itertools.islice(datasets.synth.Agrawal(classification_function=2, seed=seed), n))


def _loss(y, proba):
    return 1.0 - float(proba.get(y, 0.0))


@pytest.mark.parametrize("every", [1, 7])
def test_ipfi_equals_ixai_incremental_pfi_draw_for_draw(every):
    """Same model, same stream, same seed (iXAI draws from the global `random`): the same
    importances, to the last bit; iXAI explains every k-th event and only stores the others."""
    model = naive_bayes.GaussianNB()
    rows = _agrawal(3000, seed=3)
    names = list(rows[0][0])
    ours = PermutationImportance("classification", every=every, smoothing=0.01, seed=42)
    random.seed(42)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the model function cannot be automatically wrapped": meant so
        oracle = ixai_pfi.IncrementalPFI(model_function=model.predict_proba_one, loss_function=_loss,
                                         feature_names=names, smoothing_alpha=0.01,
                                         storage=GeometricReservoirStorage(size=100))

    def predict(x):
        return None, model.predict_proba_one(x)

    for i, (x, y) in enumerate(rows, start=1):
        ours.observe(predict, x, y)
        if i % every == 0:
            oracle.explain_one(x, y)
        else:
            oracle.update_storage(x)
        model.learn_one(x, y)
    assert ours.values() == oracle.importance_values
    assert ours.sampled == 3000 // every - 1


@pytest.mark.parametrize("make", [naive_bayes.GaussianNB,
                                  lambda: preprocessing.StandardScaler() | neighbors.KNNClassifier(n_neighbors=5)],
                         ids=["gaussian_nb", "scaled_knn"])
def test_ipfi_ranks_age_and_elevel_top_two_on_agrawal_function_2(make):
    """Agrawal function 2 labels by `age` and `elevel` only; models with no per-prediction
    method learn it, and iPFI on one labelled event in 10 ranks those two first."""
    model = make()
    perm = PermutationImportance("classification", every=10, seed=0)

    def predict(x):
        proba = model.predict_proba_one(x)
        return (max(proba, key=proba.get) if proba else None), proba

    for x, y in _agrawal(6000, seed=1):
        perm.observe(predict, x, y)
        model.learn_one(x, y)
    imp = perm.values()
    assert set(sorted(imp, key=imp.get, reverse=True)[:2]) == {"age", "elevel"}, imp


def test_the_budget_sets_how_often_an_event_is_explained():
    perm = PermutationImportance("classification", budget=0.05)
    perm.observe(lambda x: (True, {True: 1.0}), {f"f{i}": 0.0 for i in range(9)}, True)
    assert perm.every == 200  # (1 + 9) predictions per explained event / 0.05 per labelled event
