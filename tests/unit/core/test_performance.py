"""Performance alerts, in isolation and from the engine's own rolling metrics."""

from __future__ import annotations

import statistics

from driftline.config import DeploymentConfig, DetectorSpec, ModelConfig, PerformanceRule
from driftline.core.engine import Engine
from driftline.core.outputs import DriftEvent, Prediction
from driftline.core.performance import PerformanceWatch
from driftline.datasets import stream


def test_threshold_crossings_fire_once_and_rearm():
    watch = PerformanceWatch([PerformanceRule(metric="rolling_mae", max=2.0)])
    values = [1.0, 2.5, 3.0, 1.5, 2.1]
    fired = [[a.reason for a in watch.check({"rolling_mae": v})] for v in values]
    assert fired == [[], ["max"], [], [], ["max"]]


def test_band_is_mean_plus_minus_k_sigma_of_the_reference_windows():
    watch = PerformanceWatch([PerformanceRule(band_k=2.0, reference_windows=3)])
    ref = [0.90, 0.86, 0.88]
    for v in ref:
        assert watch.check({"rolling_accuracy": v}) == []
    low = statistics.mean(ref) - 2 * statistics.stdev(ref)
    assert watch.check({"rolling_accuracy": low + 1e-9}) == []
    (alert,) = watch.check({"rolling_accuracy": low - 1e-9})
    assert alert.reason == "band" and abs(alert.low - low) < 1e-12 and alert.reference == ref
    watch.rebase()
    assert watch.check({"rolling_accuracy": 0.1}) == []  # a fresh reference is being built


def test_engine_emits_performance_events_with_the_window_value(timeline):
    rows = list(stream("synth:stagger", limit=3000, drift_every=1500, noise=0.0, seed=1))
    engine = Engine(DeploymentConfig(
        name="t", model=ModelConfig(preset="hoeffding_tree"),
        drift={"detectors": [], "metrics_window": 200,
               "performance": [{"metric": "rolling_accuracy", "min": 0.8}]},
    ))
    out = [o for r in timeline(rows, 0) for o in engine.process(r, 0)]
    predictions = {int(o.id[1:]): o.prediction for o in out if isinstance(o, Prediction)}
    correct = [predictions[i] == y for i, (_, y) in enumerate(rows) if predictions[i] is not None]
    events = [o for o in out if isinstance(o, DriftEvent)]
    assert events and all(e.drift_kind == "performance" and e.threshold == 0.8 for e in events)
    first_after_change = [e for e in events if e.position >= 1500]
    assert first_after_change, "the concept change did not bring accuracy below 0.8"
    for e in events:
        end = e.windows["metric"]["end"]
        assert end % 200 == 0
        assert abs(e.statistic["value"] - sum(correct[end - 200:end]) / 200) < 1e-12
        assert e.statistic["value"] < 0.8


def test_no_rule_no_watch():
    engine = Engine(DeploymentConfig(name="t", drift={"detectors": [DetectorSpec(name="ADWIN")]}))
    assert engine.perf is None
