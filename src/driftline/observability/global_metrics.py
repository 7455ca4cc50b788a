"""Metrics of global mode's roles (runtime/trainer.py, runtime/predictor.py)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ["GlobalMetrics", "ServedMetrics"]


class GlobalMetrics:
    """Releases, heartbeats, versions loaded and refused, stale predictions."""

    def __init__(self, model: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.releases = Counter("driftline_global_releases", "Model versions the trainer released",
                                ["model"], registry=registry).labels(model)
        self.heartbeats = Counter("driftline_global_heartbeats", "Watermark heartbeats the trainer sent",
                                  ["model"], registry=registry).labels(model)
        self.loaded = Counter("driftline_global_versions_loaded", "Model versions a predictor verified and loaded",
                              ["model"], registry=registry).labels(model)
        # by reason (the dl_reason of its dead letter): version_bad_signature, version_bad_digest,
        # version_mismatch, version_out_of_order, version_malformed, version_unreadable
        self.refused = Counter("driftline_global_versions_refused",
                               "Model versions a predictor refused (bad signature, digest or order), by reason",
                               ["model", "reason"], registry=registry)
        self.stale = Counter("driftline_global_stale_predictions",
                             "Predictions served by the newest version after max_wait_ms (marked stale)",
                             ["model"], registry=registry).labels(model)
        self.predictions = Counter("driftline_global_predictions", "Predictions a predictor published",
                                   ["model"], registry=registry).labels(model)
        self.serving = Gauge("driftline_global_serving_version", "Newest model version a predictor has loaded",
                             ["model"], registry=registry).labels(model)
        self.watermark = Gauge("driftline_global_watermark_ms", "The trainer's latest watermark (event time, ms)",
                               ["model"], registry=registry).labels(model)
        self.refused.labels(model, "version_bad_signature").inc(0)


class ServedMetrics:
    """A predictor's served quality per partition ([scale] served_labels, core/served.py)."""

    def __init__(self, model: str, task: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.model = model
        labels = ["model", "partition"]
        if task == "regression":
            self.score = Gauge("driftline_served_mae", "Mean absolute error of the predictions this predictor "
                               "served, over the labels joined on a partition", labels, registry=registry)
        else:
            self.score = Gauge("driftline_served_accuracy", "Accuracy of the predictions this predictor served, "
                               "over the labels joined on a partition", labels, registry=registry)
        self.joined = Counter("driftline_served_labels_joined", "Labels joined with a prediction this predictor "
                              "served", labels, registry=registry)
        self.unmatched = Counter("driftline_served_labels_unmatched", "Labels of a partition this predictor owns "
                                 "whose prediction it did not serve (or no longer held)", labels, registry=registry)
        self.evictions = Counter("driftline_served_evictions", "Served predictions dropped from the bounded "
                                 "buffer before their label came ([scale] served_buffer)", labels, registry=registry)
        self.drifts = Counter("driftline_served_drift_events", "Served drift detections (drift events marked "
                              "served)", labels, registry=registry)

    def update(self, partition: int, summary: dict, before: dict) -> None:
        """Move the counters by what changed since ``before`` (both PartitionQuality summaries)."""
        p = str(partition)
        for counter, name in ((self.joined, "joined"), (self.unmatched, "unmatched"),
                              (self.evictions, "evictions"), (self.drifts, "drifts")):
            if summary[name] != before.get(name, 0):
                counter.labels(self.model, p).inc(summary[name] - before.get(name, 0))
        score = summary.get("mae", summary.get("accuracy"))
        if score is not None:
            self.score.labels(self.model, p).set(score)
