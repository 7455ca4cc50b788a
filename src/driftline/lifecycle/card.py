"""Model cards: every version described with the Model Card Toolkit v0.0.2 field names.

Built from what a version records (its metadata: parent, trigger, positions, offset and
event-time ranges, parameters, metrics, counters), the lineage of its parents, the
lifecycle events of the registry and the deployment config; no I/O here. The JSON validates
against the vendored schema (docs/schemas/model-card-toolkit/v0.0.2); :func:`markdown`
renders the same card for people.

>>> from driftline.config import DeploymentConfig
>>> meta = {"version": 2, "parent": 1, "created_at": 1795829343073, "trigger": "drift", "examples_seen": 900,
...         "model_class": "Pipeline", "params": {}, "metrics": {"accuracy": 0.8}, "counters": {"drift_events": 1},
...         "positions": {"labels:0": 900}, "offset_range": {"labels:0": [400, 900]},
...         "event_time_range": [1000, 9000], "payload_sha256": "ab"}
>>> card = build_card(DeploymentConfig(name="credit"), meta, [meta], [])
>>> card["model_details"]["version"]["name"], card["schema_version"]
('2', '0.0.2')
>>> "## Pre-determined change plan" in markdown(card)
True
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from driftline.config import DeploymentConfig

__all__ = ["SCHEMA_VERSION", "build_card", "markdown"]

SCHEMA_VERSION = "0.0.2"


def _day(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime((ms or 0) / 1000))


def _kv(data: dict[str, Any]) -> list[dict[str, str]]:
    return [{"key": str(k), "value": v if isinstance(v, str) else orjson.dumps(v, default=str).decode()}
            for k, v in data.items()]


def _explanation_method(config: DeploymentConfig, model_class: str) -> str:
    explain = config.governance.explain
    if not explain.enabled:
        return "Per-prediction explanations are off ([governance.explain] enabled = false)."
    preset = config.model.factory or config.model.preset
    if preset in ("logistic_regression", "linear_regression"):
        how = "exact additive contributions w_i * z_i of the scaled, one-hot inputs plus the intercept (the logit)"
    elif preset in ("hoeffding_tree", "hoeffding_adaptive_tree"):
        how = "Saabas path contributions that sum to predict_proba_one exactly (a naive Bayes leaf's part as residual)"
    elif preset == "adaptive_random_forest":
        how = "the members' Saabas path contributions, weighted as the forest weighs their votes"
    else:
        how = f"none for {model_class}: its predictions carry method 'none' and no reasons"
    return f"Each prediction carries its top {explain.top_k} contributions and reason codes: {how}."


def _change_plan(config: DeploymentConfig) -> list[dict[str, str]]:
    drift, lc, cp = config.drift, config.lifecycle, config.checkpoint
    detectors = ", ".join(d.name for d in drift.detectors) if drift.detectors else "the task's benchmarked default"
    promotion = lc.promotion
    return [
        {"name": "What online learning changes",
         "mitigation_strategy": f"The parameters of the configured estimator only ({config.model.factory or config.model.preset}, "
                                f"hyper-parameters fixed: {orjson.dumps(config.model.params).decode()}), one labelled example "
                                "at a time, test-then-train; features, classes and hyper-parameters never change without a "
                                "new deployment config."},
        {"name": "Drift response",
         "mitigation_strategy": f"Concept drift detectors ({detectors}) on the per-example error; policy '{drift.policy}' "
                                f"(warm start {drift.warm_start} examples); every detection is an event on .drift with its evidence."},
        {"name": "Promotion",
         "mitigation_strategy": (f"A challenger replaces the champion only after {promotion.patience} consecutive McNemar exact "
                                 f"tests with p < {promotion.alpha} and an accuracy lead >= {promotion.margin} over "
                                 f"{promotion.window} paired examples." if promotion.enabled
                                 else "No automatic promotion: only an authenticated operator command promotes a model.")},
        {"name": "Rollback and audit",
         "mitigation_strategy": f"A signed version every {cp.every_examples} examples or {cp.every_seconds:g} s and on drift; "
                                "`driftline models rollback --to N [--replay --skip-from/--skip-to]` restores any kept version; "
                                "every lifecycle event is on .lifecycle and in the hash-chained .audit log, and so is every "
                                "change of these policies (a start with a different drift, promotion, privacy, explanation "
                                "or fairness config is a policy entry naming the settings that changed)."},
    ]


def _mitigation(meta: dict[str, Any]) -> list[dict[str, str]]:
    """The fairness mitigation the version was made under (core/fairness/switch.py), first."""
    mitigation = meta.get("mitigation")
    if not mitigation:
        return []
    if mitigation.get("disparate_treatment"):
        return [{"name": "DISPARATE TREATMENT: group_threshold mitigation",
                 "mitigation_strategy": f"This version decides with per-group thresholds on {mitigation['attribute']}: "
                                        "it takes the protected attribute into account in each decision (disparate "
                                        "treatment; unlawful in US credit decisions under ECOA and Regulation B). It was "
                                        "acknowledged in [governance.fairness]; see docs/governance.md#mitigation."}]
    return [{"name": f"fairness mitigation: {mitigation['policy']}",
             "mitigation_strategy": f"This version learns with {mitigation['policy']} on {mitigation['attribute']} "
                                    "(docs/governance.md#mitigation)."}]


def _group_metrics(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-group rates with their Wilson 95% intervals (core/fairness/summary.py), sliced by group."""
    fairness = meta.get("fairness") or {}
    rows = []
    for dimension, result in sorted((fairness.get("attributes") or {}).items()):
        for group, row in sorted(result["groups"].items()):
            for metric, rate in sorted(row["rates"].items()):
                rows.append({"type": f"fairness_{metric}", "value": f"{rate['value']:.6g}",
                             "slice": f"{dimension}={group}: the last {fairness.get('window_size')} events "
                                      f"(n={rate['n']}; state {result['states'].get(metric)}, "
                                      f"reference {result.get('reference')})",
                             "confidence_interval": {"lower_bound": f"{rate['lower']:.6g}",
                                                     "upper_bound": f"{rate['upper']:.6g}"}})
            if row.get("coverage") is not None:
                rows.append({"type": "fairness_label_coverage", "value": f"{row['coverage']:.6g}",
                             "slice": f"{dimension}={group} (n={row['n']}, labelled {row['labelled']})"})
    return rows


def _label_delay(meta: dict[str, Any], bound_ms: int) -> str:
    delay = meta.get("label_delay") or {}
    if not delay.get("labels"):
        return f"Label delay: no label joined yet (labels are accepted up to {bound_ms} ms of event time late)."
    return (f"Label delay observed over {delay['labels']} joined labels (event time, label minus features): "
            f"mean {delay['mean_ms']:.0f} ms, median <= {delay['p50_ms']} ms, 90% <= {delay['p90_ms']} ms, "
            f"max {delay['max_ms']} ms; labels later than {bound_ms} ms go to the dead-letter topic.")


def build_card(config: DeploymentConfig, meta: dict[str, Any], lineage: list[dict[str, Any]],
               events: list[dict[str, Any]]) -> dict[str, Any]:
    """The card of version ``meta["version"]``; ``lineage``: the metadata of it and its parents,
    newest first; ``events``: the deployment's lifecycle events (registry order)."""
    version, topics = meta["version"], config.topics
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if v is not None}
    counters = meta.get("counters") or {}
    window = config.drift.metrics_window
    chain = " <- ".join(f"v{m['version']} ({m.get('trigger')})" for m in lineage)
    start, end = (meta.get("event_time_range") or [None, None])[:2]
    data = [
        {"name": topics.features if source.startswith("features") else topics.labels,
         "description": f"partition {source.split(':', 1)[1]}: offsets [{r[0]}, {r[1]}) learned since v{meta.get('parent')}, "
                        f"all offsets below {meta.get('positions', {}).get(source)} reflected in this version"}
        for source, r in sorted((meta.get("offset_range") or {}).items())
    ]
    data.append({"name": "event-time range", "description": f"records with timestamps {start} to {end} (epoch ms) "
                                                             f"since the parent version"})
    adaptations = [m for m in lineage if m.get("trigger") in ("drift", "promote", "rollback", "periodic")]
    mine = [e for e in events if (e.get("details") or {}).get("version") in {m["version"] for m in lineage}
            or e.get("model_version") in {m["version"] for m in lineage}]
    return {
        "schema_version": SCHEMA_VERSION,
        "model_details": {
            "name": config.name,
            "overview": f"{meta.get('model_class')} learning online from {topics.features} and {topics.labels}; "
                        f"version {version}, {meta.get('examples_seen')} labelled examples learned.",
            "documentation": f"Lineage (newest first): {chain}. Snapshot payload sha256 {meta.get('payload_sha256')}, "
                             "HMAC-signed; restoring it and replaying from its positions reproduces the stream's model.",
            "version": {"name": str(version), "date": _day(meta.get("created_at")),
                        "diff": f"continues v{meta.get('parent')}; cut by '{meta.get('trigger')}'"
                                if meta.get("parent") else f"first version; cut by '{meta.get('trigger')}'"},
        },
        "model_parameters": {
            "model_architecture": f"{meta.get('model_class')}: {orjson.dumps(meta.get('params') or {}, default=str).decode()}",
            "data": data,
            "input_format": f"JSON feature events on {topics.features} (docs/schemas/features.schema.json); labels on "
                            f"{topics.labels}, joined by id within {config.join.max_age_ms} ms of event time (the label delay "
                            "bound; later labels go to the dead-letter topic)",
            "input_format_map": _kv(dict(config.model.features)),
            "output_format": f"JSON predictions on {topics.predictions} (docs/schemas/prediction.schema.json)",
            "output_format_map": _kv({"classes": list(config.model.classes), "task": config.model.task or "from the estimator"}),
        },
        "quantitative_analysis": {
            "performance_metrics": [
                {"type": name, "value": f"{value:.6g}" if isinstance(value, float) else str(value),
                 "slice": f"the last {window} labelled examples (prequential)" if name.startswith("rolling_")
                 else "every labelled example since the model started (prequential, test-then-train)"}
                for name, value in sorted(metrics.items())
            ] + _group_metrics(meta),
        },
        "considerations": {
            "users": [{"description": "Set by the operator: who relies on these predictions."}],
            "use_cases": [{"description": "Set by the operator: the decision the predictions support."}],
            "limitations": [
                {"description": _explanation_method(config, str(meta.get("model_class")))},
                {"description": f"Metrics are prequential over delayed labels (join window {config.join.max_age_ms} ms); "
                                + ("per-group results (fairness_* metrics) are over the fairness monitor's sliding window, "
                                   "with Wilson 95% intervals (docs/governance.md)." if meta.get("fairness")
                                   else "no per-group results: [governance.fairness] is off.")},
                {"description": _label_delay(meta, config.join.max_age_ms)},
                {"description": f"Drift and adaptation history: {counters.get('drift_events', 0)} drift events so far; "
                                f"adaptations in the lineage: "
                                + (", ".join(f"v{m['version']} {m.get('trigger')}" for m in adaptations) or "none")
                                + "; lifecycle events: "
                                + (", ".join(f"{e.get('action')} by {e.get('actor')}" for e in mine) or "none")},
            ],
            "tradeoffs": [{"description": f"Drift policy '{config.drift.policy}': a reset adapts faster and forgets; "
                                          "'none' keeps River's own semantics."}],
            "ethical_considerations": _mitigation(meta) + _change_plan(config),
        },
    }


def _interval(metric: dict[str, Any]) -> str:
    ci = metric.get("confidence_interval")
    return f"[{ci['lower_bound']}, {ci['upper_bound']}]" if ci else ""


def markdown(card: dict[str, Any]) -> str:
    """The card for people: the same fields, as Markdown."""
    d, p, q, c = (card["model_details"], card["model_parameters"], card["quantitative_analysis"],
                  card["considerations"])
    lines = [f"# Model card: {d['name']} v{d['version']['name']}", "", d["overview"], "",
             "## Model details", "", f"- Version {d['version']['name']} ({d['version']['date']}): {d['version']['diff']}",
             f"- {d['documentation']}", "", "## Parameters", "", f"- Architecture: {p['model_architecture']}",
             f"- Input: {p['input_format']}", f"- Output: {p['output_format']}", "", "## Data provenance", ""]
    lines += [f"- `{x['name']}`: {x['description']}" for x in p["data"]]
    lines += ["", "## Metrics", "", "| metric | value | 95% interval | over |", "|---|---|---|---|"]
    lines += [f"| {m['type']} | {m['value']} | {_interval(m)} | {m['slice']} |" for m in q["performance_metrics"]]
    lines += ["", "## Limitations, explanations and history", ""]
    lines += [f"- {x['description']}" for x in c["limitations"]]
    lines += ["", "## Pre-determined change plan", ""]
    lines += [f"- **{r['name']}.** {r['mitigation_strategy']}" for r in c["ethical_considerations"]]
    return "\n".join(lines) + "\n"
