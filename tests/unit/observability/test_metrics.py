"""Prometheus metrics on a fresh registry per test; engine state read at scrape time."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.datasets import stream
from driftline.observability.metrics import EngineCollector, ProcessorMetrics


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_processor_counters(registry):
    m = ProcessorMetrics("demo", registry=registry)
    m.dead_letters.labels("demo", "malformed_json").inc()
    m.dead_letters.labels(model="demo", reason="malformed_json").inc(2)
    m.events_in.labels("demo", "features", "live").inc()
    m.batch_seconds.labels("demo").observe(0.02)
    get = registry.get_sample_value
    assert get("driftline_dead_letters_total", {"model": "demo", "reason": "malformed_json"}) == 3.0
    assert get("driftline_events_in_total", {"model": "demo", "kind": "features", "mode": "live"}) == 1.0
    assert get("driftline_batch_seconds_count", {"model": "demo"}) == 1.0
    assert get("driftline_batch_seconds_bucket", {"model": "demo", "le": "0.025"}) == 1.0
    assert get("driftline_batch_seconds_bucket", {"model": "demo", "le": "0.01"}) == 0.0


def test_registries_are_independent(registry):
    ProcessorMetrics("demo", registry=registry).versions.labels("demo", "drift").inc()
    other = CollectorRegistry()
    ProcessorMetrics("demo", registry=other)
    assert other.get_sample_value("driftline_versions_total", {"model": "demo", "trigger": "drift"}) is None


def engine_state(engine: Engine) -> dict:
    return {
        "version": engine.version, "n_learned": engine.n_learned, "scores": engine.scores.values(),
        "pending_features": engine.join.pending_features, "pending_labels": engine.join.pending_labels,
        "expired_features": engine.counters.expired_features, "expired_labels": engine.counters.expired_labels,
        "lag": {"features:0": 4, "labels:0": 0},
    }


def test_engine_state_is_read_at_scrape_time(registry, timeline):
    engine = Engine(DeploymentConfig(name="demo"))
    ProcessorMetrics("demo", registry=registry).watch(lambda: engine_state(engine))
    get = registry.get_sample_value
    assert get("driftline_model_version", {"model": "demo"}) == 0.0
    assert get("driftline_model_metric", {"model": "demo", "metric": "accuracy"}) is None  # nothing scored yet
    records = timeline(list(stream("river:Phishing", limit=100)), 10)
    for r in records:
        engine.process(r, 0)
    engine.version = 4
    assert get("driftline_model_version", {"model": "demo"}) == 4.0
    assert get("driftline_examples_learned", {"model": "demo"}) == 100.0
    for name, value in engine.scores.values().items():
        assert get("driftline_model_metric", {"model": "demo", "metric": name}) == pytest.approx(value)
    assert get("driftline_join_pending", {"model": "demo", "side": "features"}) == 0.0
    assert get("driftline_consumer_lag", {"model": "demo", "source": "features:0"}) == 4.0
    assert b'driftline_model_version{model="demo"} 4.0' in generate_latest(registry)


def test_collector_defaults_for_a_sparse_state(registry):
    registry.register(EngineCollector("m", lambda: {}))
    assert registry.get_sample_value("driftline_examples_learned", {"model": "m"}) == 0.0
    assert registry.get_sample_value("driftline_join_expired", {"model": "m", "side": "labels"}) == 0.0


def test_data_drift_and_variants_are_exposed_per_feature_and_per_variant(registry):
    import random

    from driftline.config import DataDriftConfig
    from driftline.core.datadrift import DataDriftWatch

    watch = DataDriftWatch(DataDriftConfig(enabled=True), {"x": "num", "c": "cat"})
    served = {"champion": {"rolling_accuracy": 0.9}, "arf": {"rolling_accuracy": 0.7}}
    ProcessorMetrics("demo", registry=registry).watch(lambda: {"data_drift": watch.last, "served": served})
    get = registry.get_sample_value
    assert get("driftline_feature_drifting", {"model": "demo", "feature": "x"}) is None  # not evaluated yet
    rng = random.Random(1)
    for i in range(4000):
        watch.observe({"x": rng.gauss(0.5 if i >= 2000 else 0.0, 1), "c": rng.choice("ab")}, i)
    assert get("driftline_feature_drifting", {"model": "demo", "feature": "x"}) == 1.0
    assert get("driftline_feature_drifting", {"model": "demo", "feature": "c"}) == 0.0
    assert get("driftline_feature_drift_statistic", {"model": "demo", "feature": "x", "test": "ks"}) > 0.1
    assert get("driftline_feature_drift_statistic", {"model": "demo", "feature": "c", "test": "chi2"}) is not None
    assert get("driftline_feature_psi", {"model": "demo", "feature": "c"}) is None  # categorical: no PSI
    assert get("driftline_variant_metric", {"model": "demo", "variant": "arf", "metric": "rolling_accuracy"}) == 0.7


def test_drift_events_are_counted_by_kind_and_the_last_version_time_is_a_gauge(registry):
    m = ProcessorMetrics("demo", registry=registry)
    m.drift_events.labels("demo", "concept", "HDDM_A").inc()
    m.last_version.labels("demo").set(1_764_633_600.0)
    get = registry.get_sample_value
    assert get("driftline_drift_events_total", {"model": "demo", "kind": "concept", "detector": "HDDM_A"}) == 1.0
    assert get("driftline_last_version_timestamp_seconds", {"model": "demo"}) == 1_764_633_600.0
