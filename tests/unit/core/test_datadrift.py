"""Data drift: each test against scipy or first principles, and the streaming contract."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest
from scipy import stats

from driftline.config import DataDriftConfig
from driftline.core.datadrift import DataDriftWatch, adjust, psi
from driftline.exceptions import ConfigError

CFG = DataDriftConfig(enabled=True, reference_size=1000, window_size=500, step=100)


def feed(watch, rows):
    return [(i, r) for i, row in enumerate(rows) if (r := watch.observe(row, None)) is not None]


def gauss_rows(n, seed, shift_at=None, mean=0.0, sd=1.0, cat_probs=None, cat_at=None):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        after = shift_at is not None and i >= shift_at
        probs = cat_probs if (cat_at is not None and i >= cat_at) else (0.5, 0.3, 0.2)
        rows.append({
            "x": rng.gauss(mean if after else 0.0, sd if after else 1.0),
            "y": rng.gauss(5.0, 2.0),
            "c": rng.choices("abc", probs)[0],
        })
    return rows


def test_ks_statistic_and_pvalue_equal_scipys():
    rows = gauss_rows(1500, seed=3, shift_at=1000, mean=0.3)
    watch = DataDriftWatch(CFG.model_copy(update={"alpha": 1e-12}), {"x": "num", "y": "num", "c": "cat"})
    feed(watch, rows)
    test = watch.report()["x"]
    ref = [r["x"] for r in rows[:1000]]
    cur = [r["x"] for r in rows[1000:]]
    expected = stats.ks_2samp(ref, cur, method="asymp")
    assert test["statistic"] == pytest.approx(expected.statistic, abs=1e-12)
    assert test["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi_square_equals_scipys_on_a_table_built_independently():
    rows = gauss_rows(1500, seed=4, cat_probs=(0.3, 0.3, 0.4), cat_at=1000)
    watch = DataDriftWatch(CFG.model_copy(update={"alpha": 1e-12}), {"x": "num", "y": "num", "c": "cat"})
    feed(watch, rows)
    ref = [r["c"] for r in rows[:1000]]
    cur = [r["c"] for r in rows[1000:]]
    table = [[ref.count(c) for c in "abc"], [cur.count(c) for c in "abc"]]
    chi2, p, *_ = stats.chi2_contingency(table, correction=False)
    got = watch.report()["c"]
    assert got["statistic"] == pytest.approx(chi2) and got["p_value"] == pytest.approx(p)
    assert got["histogram"]["reference"][:3] == table[0] and got["histogram"]["current"][:3] == table[1]


def test_psi_from_first_principles_on_reference_deciles():
    rows = gauss_rows(1500, seed=5, shift_at=1000, mean=0.5)
    watch = DataDriftWatch(CFG.model_copy(update={"alpha": 1e-12}), {"x": "num", "y": "num", "c": "cat"})
    feed(watch, rows)
    ref = np.array([r["x"] for r in rows[:1000]])
    cur = np.array([r["x"] for r in rows[1000:]])
    edges = np.quantile(ref, [k / 10 for k in range(1, 10)])
    r = np.array([np.sum(np.digitize(ref, edges) == b) for b in range(10)]) / len(ref)
    c = np.array([np.sum(np.digitize(cur, edges) == b) for b in range(10)]) / len(cur)
    expected = sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c))
    assert watch.report()["x"]["psi"] == pytest.approx(expected)
    assert 0.15 < expected < 0.4  # about 0.25 for a 0.5 sigma shift (NOTES)
    assert psi(np.array([0.2, 0.8]), np.array([0.2, 0.8])) == 0.0


def test_corrections_by_hand():
    p = [0.001, 0.02, 0.04, 0.5]
    assert adjust(p, "bonferroni") == pytest.approx([0.004, 0.08, 0.16, 1.0])
    assert adjust(p, "holm") == pytest.approx([0.004, 0.06, 0.08, 0.5])
    assert adjust(p, "bh") == pytest.approx([0.004, 0.04, 0.05333333, 0.5])


def test_a_half_sigma_shift_is_found_within_one_window_and_names_the_feature():
    hits = 0
    for seed in range(10):
        rows = gauss_rows(3000, seed=seed, shift_at=2000, mean=0.5)
        watch = DataDriftWatch(CFG, {"x": "num", "y": "num", "c": "cat"})
        found = feed(watch, rows)
        first = next((i for i, r in found if i >= 2000), None)
        hits += first is not None and first < 2500 and found[0][1].drifting == ["x"]
        assert all(i >= 2000 for i, _ in found), "false alarm before the shift"
    assert hits == 10


def test_stationary_streams_raise_no_alarm():
    alarms = sum(len(feed(DataDriftWatch(CFG, {"x": "num", "y": "num", "c": "cat"}), gauss_rows(6000, seed=s)))
                 for s in range(10))
    assert alarms <= 1  # 50k events; the bench measures the rate precisely


def test_categorical_frequency_change_and_evidence():
    rows = gauss_rows(3000, seed=8, cat_probs=(0.2, 0.3, 0.5), cat_at=2000)
    watch = DataDriftWatch(CFG, {"x": "num", "y": "num", "c": "cat"})
    (i, result), *_ = feed(watch, rows)
    assert 2000 <= i < 2500 and result.drifting == ["c"] and not result.dataset_drift
    assert result.tests["c"]["test"] == "chi2" and result.tests["c"]["p_adjusted"] <= CFG.alpha
    assert result.current["size"] == 500 and result.current["end"]["index"] == i
    assert result.reference["start"]["index"] == 0 and result.reference["end"]["index"] == 999


def test_reported_once_then_rearmed():
    rows = gauss_rows(2500, seed=9, shift_at=1500, mean=2.0) + gauss_rows(1500, seed=10) + \
        gauss_rows(1500, seed=11, shift_at=0, mean=2.0)
    watch = DataDriftWatch(CFG, {"x": "num", "y": "num", "c": "cat"})
    found = [i for i, _ in feed(watch, rows)]
    assert len(found) == 2 and 1500 <= found[0] < 1700 and 4000 <= found[1] < 4300


def test_reference_statistics_are_computed_once(monkeypatch):
    calls = []
    original = DataDriftWatch._build_reference
    monkeypatch.setattr(DataDriftWatch, "_build_reference", lambda self, rows: calls.append(1) or original(self, rows))
    watch = DataDriftWatch(CFG, {"x": "num", "y": "num", "c": "cat"})
    feed(watch, gauss_rows(5000, seed=1))
    assert len(calls) == 1
    watch.rebase()
    feed(watch, gauss_rows(1200, seed=2))
    assert len(calls) == 2


def test_tests_run_every_step_not_every_event(monkeypatch):
    calls = []
    original = DataDriftWatch._evaluate
    monkeypatch.setattr(DataDriftWatch, "_evaluate", lambda self: calls.append(self.seen) or original(self))
    feed(DataDriftWatch(CFG, {"x": "num"}), [{"x": float(i % 7)} for i in range(3000)])
    assert calls == list(range(1500, 3001, 100))


def test_small_windows_are_refused_for_psi():
    with pytest.raises(ConfigError):
        DataDriftWatch(DataDriftConfig(enabled=True, reference_size=1000, window_size=100), {"x": "num"})


def test_pickled_mid_stream_continues_identically():
    rows = gauss_rows(4000, seed=12, shift_at=2500, mean=0.6)
    a = DataDriftWatch(CFG, {})  # schema-less: kinds inferred from the reference
    feed(a, rows[:1800])
    b = pickle.loads(pickle.dumps(a))
    ra, rb = feed(a, rows[1800:]), feed(b, rows[1800:])
    assert [(i, r.drifting, r.tests) for i, r in ra] == [(i, r.drifting, r.tests) for i, r in rb] and ra
    assert a.report()["c"]["test"] == "chi2" and a.report()["x"]["test"] == "ks"
