"""Contract: the streaming counts give what fairlearn's MetricFrame and Aequitas give on the same records."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame, demographic_parity_difference, demographic_parity_ratio, equal_opportunity_difference,
    equal_opportunity_ratio, equalized_odds_difference, equalized_odds_ratio, false_negative_rate,
    false_positive_rate, selection_rate, true_positive_rate,
)
from sklearn.metrics import precision_score

from driftline.config import FairnessAttribute
from driftline.core.fairness.counts import GroupViews, Grouping
from driftline.core.fairness.disparities import aequitas_parity, difference, ratio, summary

ATTRS = [FairnessAttribute(name="sex"), FairnessAttribute(name="age", bins=[30, 50])]
METRICS = {"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate,
           "fnr": false_negative_rate, "ppv": lambda t, p: precision_score(t, p, zero_division=0)}


def records(seed: int, n: int = 5000):
    """Seeded records whose rates differ by group (so no ratio is trivially 1)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        sex = rng.choice(["f", "m", "m"])
        age = rng.uniform(18, 80)
        base = 0.3 + (0.2 if sex == "m" else 0.0) + (0.1 if age >= 50 else 0.0)
        y = rng.random() < base
        y_hat = rng.random() < (0.8 if y else 0.15 + (0.1 if age < 30 else 0.0))
        rows.append(({"sex": sex, "age": age}, y_hat, y))
    return rows


def streamed(rows):
    grouping = Grouping(ATTRS, [["sex", "age"]])
    views = GroupViews(grouping, window=len(rows))
    for x, y_hat, y in rows:
        views.predicted(x, y_hat, 0, version=1)
        views.joined(x, y_hat, y, delay_ms=0, event_time=0)
    return grouping, views


def frame(rows):
    sens = pd.DataFrame({"sex": [x["sex"] for x, _, _ in rows],
                         "age": [Grouping(ATTRS, []).keys(x)[1] for x, _, _ in rows]})
    y_true = np.array([y for _, _, y in rows])
    y_pred = np.array([p for _, p, _ in rows])
    return sens, y_true, y_pred


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("dimension", ["sex", "age", "sex&age"])
def test_rates_differences_and_ratios_equal_metricframe(seed, dimension):
    rows = records(seed)
    _, views = streamed(rows)
    sens, y_true, y_pred = frame(rows)
    features = sens[dimension.split("&")] if "&" in dimension else sens[dimension]
    mf = MetricFrame(metrics=METRICS, y_true=y_true, y_pred=y_pred, sensitive_features=features)
    groups = views.sliding[dimension]
    assert len(groups) == len(mf.by_group)
    for index, row in mf.by_group.iterrows():
        key = "&".join(index) if isinstance(index, tuple) else index
        for metric in METRICS:
            assert groups[key].rate(metric) == pytest.approx(row[metric], abs=1e-12), (key, metric)
    for method in ("between_groups", "to_overall"):
        diffs, ratios = mf.difference(method=method), mf.ratio(method=method)
        for metric in METRICS:
            assert difference(groups, metric, method) == pytest.approx(diffs[metric], abs=1e-12)
            assert ratio(groups, metric, method) == pytest.approx(ratios[metric], abs=1e-12)
        ours = summary(groups)
        suffix = "" if method == "between_groups" else "_to_overall"
        for name, function in (("demographic_parity_difference", demographic_parity_difference),
                               ("demographic_parity_ratio", demographic_parity_ratio),
                               ("equalized_odds_difference", equalized_odds_difference),
                               ("equalized_odds_ratio", equalized_odds_ratio),
                               ("equal_opportunity_difference", equal_opportunity_difference),
                               ("equal_opportunity_ratio", equal_opportunity_ratio)):
            expected = function(y_true, y_pred, sensitive_features=features, method=method)
            assert ours[name + suffix] == pytest.approx(expected, abs=1e-12), (name, method)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tau_band_booleans_equal_aequitas(seed):
    from aequitas.bias import Bias
    from aequitas.fairness import Fairness
    from aequitas.group import Group

    rows = records(seed, 3000)
    _, views = streamed(rows)
    sens, y_true, y_pred = frame(rows)
    df = pd.DataFrame({"score": y_pred.astype(int), "label_value": y_true.astype(int),
                       "sex": sens["sex"], "age": sens["age"]})
    xtab, _ = Group().get_crosstabs(df)
    refs = {"sex": "m", "age": "[30,50)"}
    bdf = Bias().get_disparity_predefined_groups(xtab, original_df=df, ref_groups_dict=refs, alpha=0.05,
                                                 check_significance=False)
    fdf = Fairness(tau=0.8).get_group_value_fairness(bdf)
    checked = 0
    for dimension, ref in refs.items():
        ours = aequitas_parity(views.sliding[dimension], ref, tau=0.8)
        for _, row in fdf[fdf["attribute_name"] == dimension].iterrows():
            for column, value in ours[row["attribute_value"]].items():
                assert value == bool(row[column]), (dimension, row["attribute_value"], column)
                checked += 1
    assert checked == 6 * 5  # five groups, six parities each
    assert not all(v for g in aequitas_parity(views.sliding["age"], "[30,50)").values() for v in g.values())
