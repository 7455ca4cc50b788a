"""Prometheus metrics of a processor; engine state is read at scrape time by a Collector.

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> m = ProcessorMetrics("demo", registry=registry)
>>> m.dead_letters.labels(model="demo", reason="malformed_json").inc()
>>> registry.get_sample_value("driftline_dead_letters_total", {"model": "demo", "reason": "malformed_json"})
1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["ProcessorMetrics", "EngineCollector", "fairness_families", "keyed_families"]


class ProcessorMetrics:
    """Counters and histograms the runtime updates as it goes."""

    def __init__(self, model: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.model = model
        self.registry = registry
        self.events_in = Counter(
            "driftline_events_in", "Input messages read", ["model", "kind", "mode"], registry=registry
        )
        self.events_out = Counter(
            "driftline_events_out", "Messages published", ["model", "topic_kind"], registry=registry
        )
        self.dead_letters = Counter(
            "driftline_dead_letters", "Inputs sent to the dead-letter topic", ["model", "reason"], registry=registry
        )
        self.drift_events = Counter(
            "driftline_drift_events", "Drift events raised (kind: concept, data, performance, importance)",
            ["model", "kind", "detector"], registry=registry,
        )
        self.versions = Counter(
            "driftline_versions", "Versions cut", ["model", "trigger"], registry=registry
        )
        self.snapshot_failures = Counter(
            "driftline_snapshot_failures", "Snapshot writes that failed", ["model"], registry=registry
        )
        # Exported at 0 from the start: rate() and increase() miss the first failure of a
        # series that appears with it (DriftlineSnapshotFailures fires on one failure).
        self.snapshot_failures.labels(model)
        self.last_version = Gauge(
            "driftline_last_version_timestamp_seconds", "Creation time of the newest version stored (Unix s)",
            ["model"], registry=registry,
        )
        self.backpressure_pauses = Counter(
            "driftline_backpressure_pauses", "Input partitions paused: their event-time buffer was full",
            ["model", "source"], registry=registry,
        )
        self.backpressure_resumes = Counter(
            "driftline_backpressure_resumes", "Paused input partitions resumed", ["model", "source"], registry=registry
        )
        self.batch_seconds = Histogram(
            "driftline_batch_seconds",
            "Time to process and commit one transaction",
            ["model"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.snapshot_seconds = Histogram(
            "driftline_snapshot_seconds",
            "Time to pickle, sign and write one version (in a forked child unless inline)",
            ["model"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.label_wait_seconds = Histogram(
            "driftline_label_wait_seconds",
            "Time from a live label's fetch to its learning: what the event-time rule adds",
            ["model"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.record_seconds = Histogram(
            "driftline_record_seconds",
            "Processing time per input record (batch time / records)",
            ["model"],
            buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2),
            registry=registry,
        )

    def watch(self, state: Callable[[], dict[str, Any]]) -> None:
        """Expose engine state (version, scores, buffer sizes, lag) at scrape time."""
        self.registry.register(EngineCollector(self.model, state))


class EngineCollector(Collector):
    """Gauges computed at scrape time from ``state()``."""

    def __init__(self, model: str, state: Callable[[], dict[str, Any]]) -> None:
        self.model = model
        self.state = state

    def collect(self):
        state = self.state()
        version = GaugeMetricFamily("driftline_model_version", "Version serving predictions", labels=["model"])
        version.add_metric([self.model], state.get("version", 0))
        learned = GaugeMetricFamily("driftline_examples_learned", "Labelled examples learned", labels=["model"])
        learned.add_metric([self.model], state.get("n_learned", 0))
        score = GaugeMetricFamily("driftline_model_metric", "Online metric value", labels=["model", "metric"])
        for name, value in state.get("scores", {}).items():
            score.add_metric([self.model, name], value)
        pending = GaugeMetricFamily("driftline_join_pending", "Events waiting in the join buffer", labels=["model", "side"])
        pending.add_metric([self.model, "features"], state.get("pending_features", 0))
        pending.add_metric([self.model, "labels"], state.get("pending_labels", 0))
        expired = GaugeMetricFamily("driftline_join_expired", "Join entries expired unlabelled", labels=["model", "side"])
        expired.add_metric([self.model, "features"], state.get("expired_features", 0))
        expired.add_metric([self.model, "labels"], state.get("expired_labels", 0))
        unsampled = CounterMetricFamily("driftline_labels_unsampled", "Labels scored but not learned: outside "
                                        "the [model] learn_share sample", labels=["model"])
        unsampled.add_metric([self.model], state.get("unsampled", 0))
        lag = GaugeMetricFamily("driftline_consumer_lag", "Messages behind the partition end", labels=["model", "source"])
        for source, value in state.get("lag", {}).items():
            lag.add_metric([self.model, source], value)
        yield from (version, learned, score, pending, expired, unsampled, lag)
        yield from _variant_families(self.model, state.get("served", {}))
        yield from _feature_families(self.model, state.get("data_drift", {}))
        yield from fairness_families(self.model, state.get("fairness"))
        yield from keyed_families(self.model, state.get("keyed"))
        merge = state.get("merge", {})
        for name, doc in (
            ("waits", "Times an empty input partition with data to fetch (or unknown lag) held the stream back"),
            ("idle_releases", "Labels released because a features partition was caught up and silent max_idle_ms"),
            ("late_labels", "Labels learned after a feature with an equal or later event time was predicted"),
        ):
            family = CounterMetricFamily(f"driftline_merge_{name}", doc, labels=["model"])
            family.add_metric([self.model], merge.get(name, 0))
            yield family


def _variant_families(model: str, served: dict[str, dict[str, float]]):
    """Online metrics of each serving variant (champion and canaries), on the events it served."""
    family = GaugeMetricFamily("driftline_variant_metric", "Online metric of the events a variant served",
                               labels=["model", "variant", "metric"])
    for variant, values in served.items():
        for name, value in values.items():
            family.add_metric([model, variant, name], value)
    yield family


def _feature_families(model: str, tests: dict[str, dict[str, Any]]):
    """The last data-drift evaluation of every feature (empty until the first one).

    >>> fams = list(_feature_families("m", {"x": {"test": "ks", "statistic": 0.2, "p_adjusted": 0.01,
    ...                                          "psi": 0.3, "drift": True}}))
    >>> [(f.name, f.samples[0].labels.get("feature"), f.samples[0].value) for f in fams]
    [('driftline_feature_drift_statistic', 'x', 0.2), ('driftline_feature_drift_p_value', 'x', 0.01), ('driftline_feature_psi', 'x', 0.3), ('driftline_feature_drifting', 'x', 1.0)]
    """
    statistic = GaugeMetricFamily("driftline_feature_drift_statistic",
                                  "Last data-drift test statistic per feature (KS D, or chi-square)",
                                  labels=["model", "feature", "test"])
    p_value = GaugeMetricFamily("driftline_feature_drift_p_value",
                                "Last adjusted p-value per feature", labels=["model", "feature", "test"])
    psi = GaugeMetricFamily("driftline_feature_psi", "Last PSI per numeric feature", labels=["model", "feature"])
    drifting = GaugeMetricFamily("driftline_feature_drifting", "1 if the feature drifted at the last evaluation",
                                 labels=["model", "feature"])
    for name, t in tests.items():
        statistic.add_metric([model, name, t["test"]], t["statistic"])
        p_value.add_metric([model, name, t["test"]], t["p_adjusted"] if "p_adjusted" in t else t["p_value"])
        if "psi" in t:
            psi.add_metric([model, name], t["psi"])
        drifting.add_metric([model, name], 1.0 if t.get("drift") else 0.0)
    yield from (statistic, p_value, psi, drifting)


_FAIRNESS = {
    "rate": ("driftline_fairness_rate", "A group's rate (selection_rate, tpr, ...) in a window"),
    "disparity": ("driftline_fairness_disparity", "A group's rate over the reference group's"),
    "group_n": ("driftline_fairness_group_n", "Predictions for a group in a window"),
    "state": ("driftline_fairness_state", "1 for the current state (ok, violation, insufficient_data) of an "
              "attribute's metric, 0 for the others"),
}


def fairness_families(model: str, samples: dict[str, list[tuple[dict[str, str], float]]] | None):
    """Gauge families from the engine's fairness samples (``FairnessWatch.gauges``); none when off.

    >>> [f.name for f in fairness_families("m", {"group_n": [({"attribute": "a", "group": "x", "window": "sliding"}, 3.0)]})]
    ['driftline_fairness_group_n']
    """
    for key, rows in (samples or {}).items():
        name, doc = _FAIRNESS[key]
        if not rows:
            continue
        names = ["model", *rows[0][0]]
        family = GaugeMetricFamily(name, doc, labels=names)
        for labels, value in rows:
            family.add_metric([model, *labels.values()], value)
        yield family


def keyed_families(model: str, keyed: dict[str, Any] | None):
    """Keyed mode's tasks and keys (docs/scaling.md, "Metrics"): no label per key except the
    ``top`` busiest (``[scale] top_keys``); none outside keyed mode.

    ``keyed``: ``{"tasks": {index: KeyedEngine.key_stats()}, "top": [(key, records), ...]}``.

    >>> stats = {"keys": 3, "resident": 2, "evicted": 1, "evictions": 4, "restores": 3, "events_max": 9,
    ...          "events_mean": 5.0, "records": 15}
    >>> fams = {f.name: f for f in keyed_families("m", {"tasks": {0: stats, 1: {**stats, "records": 5}},
    ...                                                  "top": [("k1", 9)]})}
    >>> sorted(fams)
    ['driftline_key_evictions', 'driftline_key_records_max', 'driftline_key_records_mean', 'driftline_key_restores', 'driftline_keys', 'driftline_task_records', 'driftline_tasks', 'driftline_top_key_records']
    >>> [(s.labels.get("state"), s.value) for s in fams["driftline_keys"].samples]
    [('resident', 4.0), ('evicted', 2.0)]
    >>> [(s.labels["key"], s.value) for s in fams["driftline_top_key_records"].samples]
    [('k1', 9.0)]
    """
    if keyed is None:
        return
    tasks: dict[Any, dict[str, float]] = keyed.get("tasks", {})
    total = lambda name: float(sum(t.get(name, 0) for t in tasks.values()))  # noqa: E731
    owned = GaugeMetricFamily("driftline_tasks", "Tasks (partition indices) this process runs", labels=["model"])
    owned.add_metric([model], len(tasks))
    records = GaugeMetricFamily("driftline_task_records", "Records a task routed to its keys (skew across tasks)",
                                labels=["model", "task"])
    for index, stats in sorted(tasks.items()):
        records.add_metric([model, str(index)], stats.get("records", 0))
    keys = GaugeMetricFamily("driftline_keys", "Entity keys of this process's tasks: resident in memory or "
                             "evicted to the version store", labels=["model", "state"])
    keys.add_metric([model, "resident"], total("resident"))
    keys.add_metric([model, "evicted"], total("evicted"))
    evictions = CounterMetricFamily("driftline_key_evictions", "Keys evicted to the version store (memory budget)",
                                    labels=["model"])
    evictions.add_metric([model], total("evictions"))
    restores = CounterMetricFamily("driftline_key_restores", "Evicted keys restored on their next record",
                                   labels=["model"])
    restores.add_metric([model], total("restores"))
    busiest = GaugeMetricFamily("driftline_key_records_max", "Records of the busiest key", labels=["model"])
    busiest.add_metric([model], max((t.get("events_max", 0) for t in tasks.values()), default=0))
    n_keys = total("keys")
    mean = GaugeMetricFamily("driftline_key_records_mean", "Records per key, on average", labels=["model"])
    mean.add_metric([model], total("records") / n_keys if n_keys else 0.0)
    top = GaugeMetricFamily("driftline_top_key_records", "Records of the busiest keys, by name ([scale] top_keys)",
                            labels=["model", "key"])
    for key, count in keyed.get("top", []):
        top.add_metric([model, key], float(count))
    yield from (owned, records, keys, evictions, restores, busiest, mean, top)
