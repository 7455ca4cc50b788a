"""The served-quality metrics of a global-mode predictor (observability/global_metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from driftline.core.served import ServedQuality
from driftline.observability.global_metrics import GlobalMetrics, ServedMetrics


def test_counters_follow_the_summaries_per_partition():
    registry = CollectorRegistry()
    metrics = ServedMetrics("m", "classification", registry)
    quality = ServedQuality("classification", None, capacity=2)
    published: dict = {}
    for i in range(3):
        quality.served(4, f"e{i}", 1, 1)  # e0 is evicted
    for ident, label in (("e0", 1), ("e1", 1), ("e2", 0)):
        quality.label(4, ident, label)
        summary = quality.summary()[4]
        metrics.update(4, summary, published)
        published = summary
    value = lambda name: registry.get_sample_value(name, {"model": "m", "partition": "4"})  # noqa: E731
    assert value("driftline_served_accuracy") == 0.5
    assert value("driftline_served_labels_joined_total") == 2
    assert value("driftline_served_labels_unmatched_total") == 1
    assert value("driftline_served_evictions_total") == 1


def test_a_regressor_reports_mae_and_refusals_count_by_reason():
    registry = CollectorRegistry()
    ServedMetrics("m", "regression", registry).update(0, {"mae": 1.5, "joined": 1, "unmatched": 0, "evictions": 0,
                                                          "drifts": 0}, {})
    assert registry.get_sample_value("driftline_served_mae", {"model": "m", "partition": "0"}) == 1.5
    assert registry.get_sample_value("driftline_served_accuracy", {"model": "m", "partition": "0"}) is None
    refused = GlobalMetrics("m", registry).refused
    assert registry.get_sample_value("driftline_global_versions_refused_total",
                                     {"model": "m", "reason": "version_bad_signature"}) == 0
    refused.labels("m", "version_bad_digest").inc()
    assert registry.get_sample_value("driftline_global_versions_refused_total",
                                     {"model": "m", "reason": "version_bad_digest"}) == 1
