"""A bounded record of what the monitors saw, kept in the engine state for reports.

Three rings, each with a fixed capacity so that the state (and every version) stays small:

- ``metrics``: one entry per metrics window: the position, stream time, serving version,
  the window's metrics and the feature importances at that moment;
- ``windows``: one entry per data-drift evaluation: per feature the statistic, the adjusted
  p-value, the PSI and whether it drifted (``[statistic, p_adjusted, psi, drift]``);
- ``events``: every drift event's body, as published on ``.drift`` (less the per-feature
  histograms of a data drift event's tests: the report draws the version's own).

Each entry is appended once per window, evaluation or event, never per record, so the hot
path pays nothing. A report (:mod:`driftline.reports`) rebuilds everything from a stored
version's engine alone.

>>> h = MonitorHistory(max_metrics=2)
>>> for n in (1000, 2000, 3000):
...     h.add_metrics(n, n * 10, 1, {"accuracy": 0.5}, None)
>>> [m["position"] for m in h.metrics]
[2000, 3000]
>>> h.add_event({"id": "demo-drift-1", "model_version": 1})
>>> [e["id"] for e in h.events]
['demo-drift-1']
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["MonitorHistory"]


class MonitorHistory:
    """Rings of per-window metrics, per-evaluation data-drift statistics and drift events."""

    def __init__(self, max_metrics: int = 500, max_windows: int = 200, max_events: int = 500) -> None:
        self.max_metrics = max_metrics
        self.max_windows = max_windows
        self.max_events = max_events
        self.metrics: deque[dict[str, Any]] = deque(maxlen=max_metrics)
        self.windows: deque[dict[str, Any]] = deque(maxlen=max_windows)
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)

    def add_metrics(self, position: int, stream_time: int, version: int, values: dict[str, float],
                    importances: dict[str, float] | None) -> None:
        self.metrics.append({"position": position, "stream_time": stream_time, "version": version,
                             "values": dict(values), "importances": dict(importances or {})})

    def add_window(self, seen: int, version: int, tests: dict[str, dict[str, Any]]) -> None:
        self.windows.append({"seen": seen, "version": version, "features": {
            name: [t["statistic"], t["p_adjusted"], t.get("psi"), bool(t["drift"])] for name, t in tests.items()}})

    def add_event(self, body: dict[str, Any]) -> None:
        tests = (body.get("evidence") or {}).get("tests")
        if tests:
            body = {**body, "evidence": {**body["evidence"], "tests": {
                name: {k: v for k, v in t.items() if k != "histogram"} for name, t in tests.items()}}}
        self.events.append(body)
