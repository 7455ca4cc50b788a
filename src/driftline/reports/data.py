"""What a report shows, as plain data, taken from one stored version's engine.

Everything comes from the version alone: the data-drift watch's reference bins (fixed when
the reference was set) and its last evaluation (the current window's counts and each
feature's test), and the engine's bounded history (:mod:`driftline.core.history`): the
statistics of every evaluation, the metrics and importances of every metrics window, and
the drift events. So the report of any stored version can be rebuilt at any time.
"""

from __future__ import annotations

import math
from typing import Any

from driftline.reports import svg

__all__ = ["report_data"]

_EVIDENCE_CHARS = 700


def _neglog(p: float | None) -> float:
    return -math.log10(max(p, 1e-300)) if p is not None else 0.0


def _bin_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    labels = [f"<= {edges[0]:.3g}"]
    labels += [f"({a:.3g}, {b:.3g}]" for a, b in zip(edges, edges[1:])]
    return labels + [f"> {edges[-1]:.3g}"]


def _proportions(counts: list[float]) -> list[float]:
    total = sum(counts) or 1.0
    return [c / total for c in counts]


def _strip(value: Any) -> Any:
    """Evidence without the bulky per-feature histograms (they are drawn above), numbers to 4 digits."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "histogram"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


def _evidence(event: dict[str, Any]) -> str:
    import orjson

    keep = {k: event.get(k) for k in ("statistic", "threshold", "p_value", "input", "features", "windows",
                                       "evidence", "source") if event.get(k) not in (None, {}, [])}
    text = orjson.dumps(_strip(keep), option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    return text if len(text) <= _EVIDENCE_CHARS else text[:_EVIDENCE_CHARS] + " …"


def _summary(event: dict[str, Any]) -> str:
    """One line: the statistic against its threshold, and the features named."""
    stat = event.get("statistic") or {}
    main = ", ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in list(stat.items())[:3])
    parts = [main] if main else []
    if event.get("threshold") is not None:
        parts.append(f"threshold {event['threshold']:.4g}")
    if event.get("p_value") is not None:
        parts.append(f"p {event['p_value']:.3g}")
    if event.get("features"):
        parts.append("features " + ", ".join(map(str, event["features"][:6])))
    return "; ".join(parts) or "evidence"


def _features(engine: Any, history: Any, marks: list[float]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    watch = engine.data_watch
    if watch is None:
        return [], {"enabled": False}
    cfg = watch.config
    kinds = dict(watch.kinds)
    rows = []
    windows = list(history.windows) if history is not None else []
    for name, test in (watch.last or {}).items():
        hist = test.get("histogram", {})
        ref, cur = hist.get("reference", []), hist.get("current", [])
        labels = hist.get("categories") or _bin_labels(hist.get("edges", []))
        over = [(w["seen"], _neglog(w["features"][name][1])) for w in windows if name in w["features"]]
        rows.append({
            "feature": name, "type": kinds.get(name) or ("num" if test["test"] == "ks" else "cat"),
            "test": test["test"], "statistic": test["statistic"], "p_value": test["p_value"],
            "p_adjusted": test.get("p_adjusted"), "psi": test.get("psi"), "drift": bool(test.get("drift")),
            "histogram": svg.histogram(_proportions(ref), _proportions(cur), labels, f"{name}: reference vs current"),
            "over_windows": svg.series(over, _neglog(cfg.alpha), f"{name}: -log10 adjusted p per evaluation", marks),
            "evaluations": len(over),
        })
    rows.sort(key=lambda r: (-r["statistic"], r["feature"]))
    drifted = sum(r["drift"] for r in rows)
    share = drifted / len(rows) if rows else 0.0
    summary = {
        "enabled": True, "tested": len(rows), "drifted": drifted, "share": share,
        "dataset_drift": bool(rows) and share >= cfg.dataset_share,
        "rule": (f"a feature drifts when its {cfg.correction}-adjusted p-value is at most {cfg.alpha:g}"
                 + (f" and its PSI is at least {cfg.psi_min:g}" if cfg.psi_min else "")
                 + f" (KS for numbers, on {cfg.reference_size} reference and {cfg.window_size} current events; "
                 f"chi-square for categories; PSI on {cfg.psi_bins} reference-quantile bins); the data set drifts "
                 f"when at least {cfg.dataset_share:.0%} of the features do"),
        "evaluated_at": windows[-1]["seen"] if windows else None,
        "evaluations": len(windows),
    }
    return rows, summary


def _importance(history: Any, engine: Any) -> dict[str, Any]:
    entries = [m for m in (history.metrics if history is not None else []) if m["importances"]]
    latest = engine.feature_importances() or (entries[-1]["importances"] if entries else {})
    ranked = sorted(latest.items(), key=lambda kv: -kv[1])
    top = [name for name, _ in ranked[:8]]
    lines = {name: [(m["position"], m["importances"].get(name, 0.0)) for m in entries] for name in top}
    return {"ranked": ranked, "chart": svg.multi_series(lines, title="importance over time") if entries else "",
            "legend": top}


def report_data(meta: dict[str, Any], engine: Any, lineage: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's content for one version: ``meta`` as stored, its ``engine``, and its ancestors."""
    history = engine.history
    events = list(history.events) if history is not None else []
    concept_marks = [float(e["position"]) for e in events]
    features, summary = _features(engine, history, [])
    metrics = list(history.metrics) if history is not None else []
    names = sorted({k for m in metrics for k in m["values"]})
    version_marks = sorted({float(m["position"]) for a, m in zip(metrics, metrics[1:]) if a["version"] != m["version"]})
    metric_charts = [{"name": n, "chart": svg.series([(m["position"], m["values"][n]) for m in metrics
                                                      if n in m["values"]], None, n, concept_marks + version_marks)}
                     for n in names]
    start = min([m["position"] for m in metrics] + concept_marks + [0.0])
    end = max([m["position"] for m in metrics] + concept_marks + [float(engine.n_learned)])
    timeline = svg.timeline([(e["position"], e.get("kind", "concept"), e["id"]) for e in events], start, end)
    return {
        "model": meta.get("name"), "version": meta.get("version"), "meta": meta,
        "summary": summary, "features": features,
        "events": [{**e, "evidence_text": _evidence(e), "summary_text": _summary(e)} for e in events],
        "timeline": timeline if events else "",
        "metric_charts": metric_charts, "metrics_now": meta.get("metrics") or {},
        "importance": _importance(history, engine),
        "lineage": lineage,
        "history_bounds": {"metrics": history.max_metrics, "windows": history.max_windows,
                           "events": history.max_events} if history is not None else None,
    }
