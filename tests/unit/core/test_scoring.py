"""Online scores against River metrics computed separately (and by hand where simple)."""

from __future__ import annotations

import math
import pickle
import random

import pytest
from river import metrics, utils
from scipy.stats import mannwhitneyu

from driftline.core.roc_auc import BinnedROCAUC
from driftline.core.scoring import MeanLoss, OnlineScores, Windowed, cross_entropy, error_of, log_loss

WINDOW = 40


def binary_stream(n=300, seed=1, pos=True, neg=False):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        y = rng.random() < 0.4
        q = min(max((0.7 if y else 0.35) + rng.uniform(-0.3, 0.3), 0.01), 0.99)
        out.append((pos if y else neg, {pos: q, neg: 1 - q}))
    return out


def feed(scores, data):
    for y, proba in data:
        scores.update(y, max(proba, key=proba.get), proba)


def river_value(cls, data, needs, **kwargs):
    metric = cls(**kwargs)
    for y, proba in data:
        metric.update(y, max(proba, key=proba.get) if needs == "label" else proba)
    return metric.get()


def check(values, data, table):
    """Cumulative values exactly, windowed ones against a fresh metric over the last WINDOW."""
    for name, (cls, needs, kwargs) in table.items():
        assert values[name] == river_value(cls, data, needs, **kwargs), name
        assert values[f"rolling_{name}"] == pytest.approx(river_value(cls, data[-WINDOW:], needs, **kwargs)), name


def test_binary_scores_match_river():
    data = binary_stream()
    scores = OnlineScores("classification", WINDOW)
    feed(scores, data)
    check(scores.values(), data, {
        "accuracy": (metrics.Accuracy, "label", {}),
        "precision": (metrics.Precision, "label", {}),
        "recall": (metrics.Recall, "label", {}),
        "f1": (metrics.F1, "label", {}),
        "log_loss": (metrics.LogLoss, "proba", {}),
    })
    assert scores.n == len(data)


def _mann_whitney_auc(data):
    """AUC as the Mann-Whitney U statistic (scipy) on scores rounded down to 0.001 bins."""
    pos = [int(p[True] * 1000) for y, p in data if y]
    neg = [int(p[True] * 1000) for y, p in data if not y]
    return mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))


def test_roc_auc_is_the_mann_whitney_statistic():
    data = binary_stream(seed=9)
    scores = OnlineScores("classification", WINDOW)
    feed(scores, data)
    assert scores.values()["roc_auc"] == pytest.approx(_mann_whitney_auc(data), abs=1e-12)
    assert scores.values()["rolling_roc_auc"] == pytest.approx(_mann_whitney_auc(data[-WINDOW:]), abs=1e-12)


def test_accuracy_and_log_loss_from_first_principles():
    data = binary_stream(seed=5)
    scores = OnlineScores("classification", WINDOW)
    feed(scores, data)
    hits = [y == max(p, key=p.get) for y, p in data]
    losses = [-math.log(p[y]) for y, p in data]
    values = scores.values()
    assert values["accuracy"] == pytest.approx(sum(hits) / len(hits))
    assert values["rolling_accuracy"] == pytest.approx(sum(hits[-WINDOW:]) / WINDOW)
    assert values["log_loss"] == pytest.approx(sum(losses) / len(losses))
    assert values["rolling_log_loss"] == pytest.approx(sum(losses[-WINDOW:]) / WINDOW)


def _precision_recall(data, positive):
    pred = [max(p, key=p.get) for _, p in data]
    tp = sum(1 for (y, _), yp in zip(data, pred) if y == positive and yp == positive)
    return tp / sum(1 for yp in pred if yp == positive), tp / sum(1 for y, _ in data if y == positive)


def test_two_integer_classes_use_the_last_as_positive():
    data = binary_stream(seed=2, pos=1, neg=0)
    scores = OnlineScores("classification", WINDOW, classes=(0, 1))
    feed(scores, data)
    precision, recall = _precision_recall(data, 1)
    assert scores.values()["precision"] == pytest.approx(precision)
    assert scores.values()["recall"] == pytest.approx(recall)


def test_two_string_classes_use_the_last_as_positive():
    # regression: pos_val="yes" was handed to River 0.26.1 binary metrics, which then read
    # precision/recall/f1/roc_auc as 0 and log loss from proba[True]
    data = binary_stream(seed=3, pos="yes", neg="no")
    scores = OnlineScores("classification", WINDOW, classes=("no", "yes"))
    feed(scores, data)
    precision, recall = _precision_recall(data, "yes")
    values = scores.values()
    assert values["precision"] == pytest.approx(precision)
    assert values["recall"] == pytest.approx(recall)
    assert values["log_loss"] == pytest.approx(sum(-math.log(p[y]) for y, p in data) / len(data))


def test_multiclass_scores_match_river():
    rng = random.Random(4)
    data = []
    for _ in range(300):
        weights = [rng.random() for _ in "abc"]
        data.append((rng.choice("abc"), {c: w / sum(weights) for c, w in zip("abc", weights)}))
    scores = OnlineScores("classification", WINDOW)
    feed(scores, data)
    check(scores.values(), data, {
        "accuracy": (metrics.Accuracy, "label", {}),
        "precision": (metrics.MacroPrecision, "label", {}),
        "recall": (metrics.MacroRecall, "label", {}),
        "f1": (metrics.MacroF1, "label", {}),
        "log_loss": (metrics.CrossEntropy, "proba", {}),
    })


def test_regression_scores_match_river_and_first_principles():
    rng = random.Random(6)
    data = [(rng.gauss(0, 3), rng.gauss(0, 3)) for _ in range(300)]
    scores = OnlineScores("regression", WINDOW)
    for y, p in data:
        scores.update(y, p, None)
    values = scores.values()
    for name, cls in [("mae", metrics.MAE), ("rmse", metrics.RMSE), ("r2", metrics.R2)]:
        cumulative, window = cls(), cls()
        for i, (y, p) in enumerate(data):
            cumulative.update(y, p)
            if i >= len(data) - WINDOW:
                window.update(y, p)
        assert values[name] == cumulative.get()
        assert values[f"rolling_{name}"] == pytest.approx(window.get())
    assert values["mae"] == pytest.approx(sum(abs(y - p) for y, p in data) / len(data))
    last = data[-WINDOW:]
    assert values["rolling_rmse"] == pytest.approx(math.sqrt(sum((y - p) ** 2 for y, p in last) / WINDOW))


def test_empty_prediction_is_skipped():
    scores = OnlineScores("classification", WINDOW)
    assert scores.values() == {}
    scores.update(True, None, {})
    assert scores.n == 0 and scores.values() == {}
    scores.update(True, True, {True: 0.9, False: 0.1})
    before = scores.values()
    scores.update(False, None, {})
    assert scores.n == 1 and scores.values() == before and before["accuracy"] == 1.0


@pytest.mark.parametrize(("task", "y", "p", "expected"), [
    ("classification", "a", "a", 0.0), ("classification", True, False, 1.0),
    ("regression", 2.0, 3.5, 1.5), ("regression", -1, 1, 2.0),
])
def test_error_of(task, y, p, expected):
    assert error_of(task, y, p) == expected


# -- the lean replacements of utils.Rolling and River's loss metrics, against River itself ----

def _random_probas(n, seed, classes):
    """Seeded (label, proba) pairs, with some certain (0/1) probabilities to hit the clamp."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        weights = [rng.random() ** 3 for _ in classes]
        if rng.random() < 0.05:
            weights = [float(c == rng.choice(classes)) for c in classes]
        total = sum(weights) or 1.0
        out.append((rng.choice(classes), {c: w / total for c, w in zip(classes, weights)}))
    return out


@pytest.mark.parametrize(("river_cls", "loss", "classes"), [
    (metrics.CrossEntropy, cross_entropy, ("a", "b", "c")),
    (metrics.CrossEntropy, cross_entropy, (0, 1)),
    (metrics.LogLoss, log_loss, (False, True)),
])
def test_mean_loss_equals_rivers_metric_and_rolling(river_cls, loss, classes):
    data = _random_probas(3_000, seed=17, classes=classes)
    ours = MeanLoss(loss, window_size=WINDOW)
    total, rolling = river_cls(), utils.Rolling(river_cls, window_size=WINDOW)
    for y, proba in data:
        ours.update(y, proba)
        total.update(y, proba)
        rolling.update(y, proba)
        assert ours.total.get() == total.get()
        assert ours.recent.get() == rolling.get()


def test_windowed_confusion_matrix_equals_rivers_rolling():
    data = _random_probas(3_000, seed=19, classes=("a", "b", "c"))
    ours = Windowed(metrics.ConfusionMatrix(), WINDOW)
    theirs = utils.Rolling(metrics.ConfusionMatrix, window_size=WINDOW)
    readers = [(cls(cm=ours.metric), cls(cm=theirs)) for cls in
               (metrics.Accuracy, metrics.MacroPrecision, metrics.MacroRecall, metrics.MacroF1)]
    for i, (y, proba) in enumerate(data):
        predicted = max(proba, key=proba.get)
        ours.update(y, predicted)
        theirs.update(y, predicted)
        if i % 97 == 0 or i == len(data) - 1:
            assert [a.get() for a, _ in readers] == [b.get() for _, b in readers]
    assert ours.metric.data == theirs.data


@pytest.mark.parametrize(("cls", "regression"), [(BinnedROCAUC, False), (metrics.MAE, True), (metrics.R2, True)])
def test_windowed_metric_equals_rivers_rolling(cls, regression):
    rng = random.Random(23)
    if regression:
        data = [(rng.gauss(0, 3), rng.gauss(0, 3)) for _ in range(3_000)]
    else:
        data = _random_probas(3_000, seed=23, classes=(False, True))
    ours, theirs = Windowed(cls(), WINDOW), utils.Rolling(cls, window_size=WINDOW)
    for y, p in data:
        ours.update(y, p)
        theirs.update(y, p)
        assert ours.get() == theirs.get()


def test_scores_pickled_with_rivers_rolling_keep_updating():
    """Snapshots taken before Windowed/MeanLoss hold utils.Rolling objects; they still work."""
    data = binary_stream(n=200, seed=8)
    old = OnlineScores("classification", WINDOW)
    feed(old, data[:1])
    cms = (metrics.ConfusionMatrix(), utils.Rolling(metrics.ConfusionMatrix, window_size=WINDOW))
    old._cms = cms
    old._metrics = [("accuracy", "", metrics.Accuracy(cm=cms[0])),
                    ("rolling_accuracy", "", metrics.Accuracy(cm=cms[1])),
                    ("log_loss", "proba", metrics.LogLoss()),
                    ("rolling_log_loss", "proba", utils.Rolling(metrics.LogLoss, window_size=WINDOW))]
    old._fed = [("proba", m) for _, feed_, m in old._metrics if feed_]
    old.n = 0
    restored = pickle.loads(pickle.dumps(old))
    feed(restored, data)
    fresh = OnlineScores("classification", WINDOW)
    feed(fresh, data)
    assert restored.values() == {k: v for k, v in fresh.values().items() if k in restored.values()}
