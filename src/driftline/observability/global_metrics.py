"""Metrics of global mode's roles (runtime/trainer.py, runtime/predictor.py)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ["GlobalMetrics"]


class GlobalMetrics:
    """Releases, heartbeats, versions loaded and refused, stale predictions."""

    def __init__(self, model: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.releases = Counter("driftline_global_releases", "Model versions the trainer released",
                                ["model"], registry=registry).labels(model)
        self.heartbeats = Counter("driftline_global_heartbeats", "Watermark heartbeats the trainer sent",
                                  ["model"], registry=registry).labels(model)
        self.loaded = Counter("driftline_global_versions_loaded", "Model versions a predictor verified and loaded",
                              ["model"], registry=registry).labels(model)
        self.refused = Counter("driftline_global_versions_refused",
                               "Model versions a predictor refused (bad signature, digest or order)",
                               ["model"], registry=registry).labels(model)
        self.stale = Counter("driftline_global_stale_predictions",
                             "Predictions served by the newest version after max_wait_ms (marked stale)",
                             ["model"], registry=registry).labels(model)
        self.predictions = Counter("driftline_global_predictions", "Predictions a predictor published",
                                   ["model"], registry=registry).labels(model)
        self.serving = Gauge("driftline_global_serving_version", "Newest model version a predictor has loaded",
                             ["model"], registry=registry).labels(model)
        self.watermark = Gauge("driftline_global_watermark_ms", "The trainer's latest watermark (event time, ms)",
                               ["model"], registry=registry).labels(model)
        self.refused.inc(0)
