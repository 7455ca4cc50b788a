"""Detectors configured for their input: direction, warning zone, and the evidence they carry."""

from __future__ import annotations

import random

import pytest

from driftline.config import DetectorSpec
from driftline.core.detectors import ErrorWatch, input_of


def errors(before: float, after: float, n: int = 3000, seed: int = 5) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < (before if i < n // 2 else after)) for i in range(n)]


def fired(watch, stream):
    return [i for i, e in enumerate(stream) if watch.update(e)]


def test_page_hinkley_only_watches_a_rising_error_by_default():
    falling = ErrorWatch([DetectorSpec(name="PageHinkley")], "classification")
    both = ErrorWatch([DetectorSpec(name="PageHinkley", params={"mode": "both"})], "classification")
    stream = errors(0.6, 0.05)
    assert fired(falling, stream) == [] and fired(both, stream) != []
    rising = ErrorWatch([DetectorSpec(name="PageHinkley")], "classification")
    assert any(i >= 1500 for i in fired(rising, errors(0.05, 0.6)))


@pytest.mark.parametrize("name", ["binary.DDM", "binary.HDDMA", "binary.HDDMW"])
def test_warning_zone_comes_before_drift(name):
    watch = ErrorWatch([DetectorSpec(name=name)], "classification")
    warned = None
    for i, e in enumerate(errors(0.1, 0.35)):
        if watch.update(e):
            break
        if watch.warning and warned is None:
            warned = i
            assert watch.warnings() == [name]
    assert warned is not None and warned <= i


@pytest.mark.parametrize("name", ["ADWIN", "PageHinkley", "binary.FHDDM"])
def test_detectors_without_warning_zone_never_warn(name):
    watch = ErrorWatch([DetectorSpec(name=name)], "classification")
    assert not watch.has_warning_zone
    for e in errors(0.1, 0.5):
        watch.update(e)
        assert not watch.warning


def test_detection_carries_threshold_settings_and_input():
    watch = ErrorWatch([DetectorSpec(name="PageHinkley", params={"threshold": 20})], "classification")
    (d,) = [d for e in errors(0.05, 0.6) for d in watch.update(e)][:1]
    assert d.params == d.settings and d.params["threshold"] == 20 and d.threshold == 20.0
    assert d.configured == {"threshold": 20}
    assert d.settings["mode"] == "up" and d.settings["threshold"] == 20 and d.input == "error"
    assert d.statistic["sum_increase"] - d.statistic["min_increase"] > 20  # PH fires above its threshold
    fh = ErrorWatch([DetectorSpec(name="binary.FHDDM")], "classification")
    (d,) = [d for e in errors(0.05, 0.6) for d in fh.update(e)][:1]
    assert d.input == "1-error" and d.threshold == pytest.approx((__import__("math").log(1e6) / 200) ** 0.5)


def test_inputs():
    assert input_of("binary.FHDDM", "classification") == "1-error"
    assert input_of("binary.HDDMA", "classification") == "error"
    assert input_of("PageHinkley", "regression") == "loss"


def test_quiet_updates_return_a_shared_empty_tuple():
    watch = ErrorWatch([DetectorSpec(name="ADWIN")], "classification")
    assert watch.update(0.0) is watch.update(1.0) is ()  # noqa: F632 - the identity is the point
