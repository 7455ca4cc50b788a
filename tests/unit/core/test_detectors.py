"""Contract of every drift detector ErrorWatch accepts."""

from __future__ import annotations

import pickle
import random

import pytest

from driftline.config import DetectorSpec
from driftline.core.detectors import Detection, ErrorWatch, build_detector
from driftline.exceptions import ConfigError

CONTINUOUS = ["ADWIN", "PageHinkley", "KSWIN"]
BINARY = ["binary.DDM", "binary.EDDM", "binary.HDDMA", "binary.HDDMW", "binary.FHDDM"]
CHANGE = 1000


def errors(before: float, after: float, seed: int = 7) -> list[float]:
    """0/1 errors with rate ``before`` for CHANGE examples, then ``after``."""
    rng = random.Random(seed)
    return [float(rng.random() < (before if i < CHANGE else after)) for i in range(2 * CHANGE)]


def fired_at(watch: ErrorWatch, stream: list[float]) -> list[int]:
    return [i for i, e in enumerate(stream) if watch.update(e)]


@pytest.mark.parametrize("name", CONTINUOUS + BINARY)
def test_detector_contract(name):
    watch = ErrorWatch([DetectorSpec(name=name)], "classification")
    stream = errors(0.05, 0.6)
    split = len(stream) * 3 // 4
    fired = fired_at(watch, stream[:split])
    clone = pickle.loads(pickle.dumps(watch))
    rest = fired_at(watch, stream[split:])
    assert fired_at(clone, stream[split:]) == rest  # a pickled watch continues exactly alike
    assert any(i >= CHANGE for i in fired + [split + i for i in rest]), f"{name} missed an error jump 5% -> 60%"


@pytest.mark.parametrize("name", CONTINUOUS + BINARY)
def test_same_errors_same_detections(name):
    """Replays must fire at the same examples (regression: KSWIN once ran unseeded)."""
    rng = random.Random(11)
    stream = [float(rng.random() < (0.05 if (i // 300) % 2 == 0 else 0.6)) for i in range(4_000)]
    first, second = (ErrorWatch([DetectorSpec(name=name)], "classification") for _ in range(2))
    assert fired_at(first, stream) == fired_at(second, stream)


@pytest.mark.parametrize("name", CONTINUOUS + BINARY)
def test_detection_carries_its_evidence(name):
    params = {"seed": 1} if name == "KSWIN" else {}
    watch = ErrorWatch([DetectorSpec(name=name, params=params)], "classification")
    detections = [d for e in errors(0.05, 0.6) for d in watch.update(e)]
    assert detections and all(isinstance(d, Detection) for d in detections)
    assert {d.detector for d in detections} == {name}
    assert all(d.configured == params and d.params == d.settings and params.items() <= d.params.items()
               for d in detections)
    assert all(isinstance(v, float) or v is None for d in detections for v in d.statistic.values())
    assert all(d.statistic and d.evidence["test"] for d in detections)


@pytest.mark.parametrize("name", BINARY)
def test_binary_detectors_refuse_regression(name):
    with pytest.raises(ConfigError):
        ErrorWatch([DetectorSpec(name=name)], "regression")


@pytest.mark.parametrize("name", CONTINUOUS)
def test_continuous_detectors_watch_regression_errors(name):
    rng = random.Random(3)
    stream = [abs(rng.gauss(0, 1 if i < CHANGE else 6)) for i in range(2 * CHANGE)]
    watch = ErrorWatch([DetectorSpec(name=name)], "regression")
    assert any(i >= CHANGE for i in fired_at(watch, stream))


def test_fhddm_is_fed_accuracy_so_it_fires_on_rising_error_only():
    """FHDDM signals when its input falls: ErrorWatch feeds it 1 - error."""
    rising = ErrorWatch([DetectorSpec(name="binary.FHDDM")], "classification")
    falling = ErrorWatch([DetectorSpec(name="binary.FHDDM")], "classification")
    assert any(i >= CHANGE for i in fired_at(rising, errors(0.05, 0.6)))
    assert fired_at(falling, errors(0.6, 0.05)) == []


def test_several_detectors_and_reset():
    specs = [DetectorSpec(name="ADWIN"), DetectorSpec(name="binary.DDM")]
    watch = ErrorWatch(specs, "classification")
    stream = errors(0.05, 0.6)
    names = {d.detector for e in stream for d in watch.update(e)}
    assert names == {"ADWIN", "binary.DDM"}
    watch.reset()
    again = ErrorWatch(specs, "classification")
    assert fired_at(watch, stream) == fired_at(again, stream)  # reset = fresh detectors


@pytest.mark.parametrize("spec", [
    DetectorSpec(name="Nope"), DetectorSpec(name="binary.ADWINX"), DetectorSpec(name="drift.ADWIN"),
    DetectorSpec(name="binary"), DetectorSpec(name="ADWIN", params={"bogus": 1}),
    DetectorSpec(name="ADWIN", params={"delta": "x"}),
])
def test_bad_specs_are_config_errors(spec):
    with pytest.raises(ConfigError):
        build_detector(spec, "classification")


def _hddma_signals(detector, errors):
    out = []
    for x in errors:
        detector.update(x)
        out.append((detector.drift_detected, detector.warning_detected))
    return out


def _drifting_errors(seed: int, low: float, high: float, n: int = 30_000) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.random() < (low if (i // 3000) % 2 == 0 else high)) for i in range(n)]


@pytest.mark.parametrize("params", [
    {}, {"two_sided_test": True}, {"drift_confidence": 0.01, "warning_confidence": 0.05, "two_sided_test": True},
])
@pytest.mark.parametrize("seed", [11, 12])
def test_fast_hddma_decides_exactly_like_rivers(params, seed):
    """The plain-float HDDM_A must fire (and warn) at the same positions as River's own."""
    from river.drift import binary

    from driftline.core.detectors import FastHDDMA

    errors = _drifting_errors(seed, 0.1, 0.4)
    theirs = _hddma_signals(binary.HDDMA(**params), errors)
    assert sum(drifted for drifted, _ in theirs) >= 3  # the stream really drifts
    assert sum(warned for _, warned in theirs) >= 3
    assert _hddma_signals(FastHDDMA(**params), errors) == theirs


def test_fast_hddma_restores_snapshots_that_kept_rivers_means():
    """A FastHDDMA pickled with River's ``stats.Mean`` state continues exactly like River's."""
    from river.drift import binary

    from driftline.core.detectors import FastHDDMA

    errors = _drifting_errors(3, 0.1, 0.4, n=12_000)
    river = binary.HDDMA()
    _hddma_signals(river, errors[:7_000])
    old = FastHDDMA()
    old.__dict__ = dict(river.__dict__)  # the state an old snapshot holds
    restored = pickle.loads(pickle.dumps(old))
    assert _hddma_signals(restored, errors[7_000:]) == _hddma_signals(river, errors[7_000:])


def test_watch_pickled_before_settings_were_kept_still_reports_them():
    specs = [DetectorSpec(name="binary.HDDMA"), DetectorSpec(name="ADWIN", params={"delta": 0.01})]
    old = ErrorWatch(specs, "classification")
    del old._run_settings  # the layout of older snapshots: 4-tuple slots, settings read per detection
    old._slots = [slot[:4] for slot in old._slots]
    restored, fresh = pickle.loads(pickle.dumps(old)), ErrorWatch(specs, "classification")
    stream = errors(0.05, 0.6)
    ours = [d for e in stream for d in restored.update(e)]
    theirs = [d for e in stream for d in fresh.update(e)]
    assert ours and ours == theirs
    assert {d.detector: d.settings["delta"] for d in ours if d.detector == "ADWIN"} == {"ADWIN": 0.01}
    restored.reset()
    assert [d for e in stream for d in restored.update(e)] == theirs
