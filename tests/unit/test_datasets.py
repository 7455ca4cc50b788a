"""Data set specs: CSV files, River's bundled sets, seeded synthetic streams with drift."""

from __future__ import annotations

import itertools

import pytest
from river import datasets
from river.datasets import synth

from driftline.datasets import SYNTH, drifting, stream
from driftline.exceptions import ConfigError


def test_river_datasets_are_passed_through():
    assert list(stream("river:Phishing", limit=50)) == list(itertools.islice(datasets.Phishing(), 50))
    assert sum(1 for _ in stream("river:Phishing")) == datasets.Phishing().n_samples


@pytest.mark.parametrize("name", sorted(SYNTH))
def test_synthetic_concepts_switch_every_drift_every(name):
    """Without noise, block k is generator k (seed + k), the concept index cycling."""
    factory, n_concepts = SYNTH[name]
    every, seed = 50, 7
    rows = list(stream(f"synth:{name}", limit=every * (n_concepts + 1), seed=seed, drift_every=every, noise=0.0))
    for k in range(n_concepts + 1):
        assert rows[k * every:(k + 1) * every] == list(factory(k % n_concepts, seed + k).take(every))


def test_sea_blocks_are_the_river_generators():
    rows = list(stream("synth:sea", limit=200, seed=3, drift_every=100, noise=0.0))
    assert rows[:100] == list(synth.SEA(variant=0, seed=3).take(100))
    assert rows[100:] == list(synth.SEA(variant=1, seed=4).take(100))


def test_noise_flips_labels_and_is_seeded():
    clean = list(stream("synth:sea", limit=5000, seed=1, noise=0.0))
    noisy = list(stream("synth:sea", limit=5000, seed=1, noise=0.2))
    assert noisy == list(stream("synth:sea", limit=5000, seed=1, noise=0.2))
    assert [x for x, _ in noisy] == [x for x, _ in clean]
    flipped = sum(a != b for (_, a), (_, b) in zip(clean, noisy))
    assert 0.17 * 5000 < flipped < 0.23 * 5000  # binomial(5000, 0.2): sd 28, bounds at ~5.6 sd
    everything = list(stream("synth:sea", limit=100, seed=1, noise=1.0))
    assert [y for _, y in everything] == [not y for _, y in clean[:100]]
    assert {type(y) for _, y in everything} == {bool}


def test_noise_on_integer_labels():
    clean = [y for _, y in itertools.islice(drifting("stagger", noise=0.0, seed=2), 200)]
    flipped = [y for _, y in itertools.islice(drifting("stagger", noise=1.0, seed=2), 200)]
    assert {type(y) for y in clean + flipped} == {int}  # not turned into booleans
    assert set(clean) == {0, 1} and flipped == [1 - y for y in clean]


def test_csv(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b,c,label\n1,2.5,red,yes\n-3,1e3,blue,no\n")
    assert list(stream(str(path))) == [
        ({"a": 1, "b": 2.5, "c": "red"}, "yes"),
        ({"a": -3, "b": 1000.0, "c": "blue"}, "no"),
    ]
    rows = list(stream(str(path), target="a", limit=1))
    assert rows == [({"b": 2.5, "c": "red", "label": "yes"}, 1)]
    assert isinstance(rows[0][1], int) and isinstance(rows[0][0]["b"], float)


def test_csv_keeps_big_integers_exact(tmp_path):
    # regression: integers went through float() and were rounded beyond 2**53
    path = tmp_path / "big.csv"
    path.write_text("id,y\n9007199254740993,1\n")
    assert list(stream(str(path))) == [({"id": 9007199254740993}, 1)]


@pytest.mark.parametrize("spec", ["river:NoSuchSet", "synth:nope", "/no/such/file.csv"])
def test_unknown_specs_are_config_errors(spec):
    with pytest.raises(ConfigError):
        list(stream(spec, limit=1))


def test_bad_csv_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ConfigError, match="header"):
        list(stream(str(empty)))
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="column"):
        list(stream(str(data), target="zzz"))
