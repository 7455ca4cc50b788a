"""Reads the processor's state once a second and publishes what changed to the live feed.

The processor is not changed for the page: like the Prometheus collector, the sampler reads
the engine from its own thread (``engine()`` and ``state()`` are the processor's engine and
its scrape-time state). A read that races with the loop (a ring appended while copied) is
skipped and retried at the next tick. Published events:

- ``tick``: throughput (predictions and examples learned per second), rolling metrics per
  variant (champion and each challenger), join backlog, consumer lag, serving version;
- ``version``: the serving version changed (a cut, a promotion, a rollback);
- ``drift``: a drift event, with the same id and evidence summary as on ``.drift``;
- ``features``: the data-drift state per feature after each evaluation;
- ``importance``: the feature importances after each metrics window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from driftline.dashboard.feed import LiveFeed

__all__ = ["Sampler", "drift_summary"]

log = logging.getLogger("driftline.dashboard")


def drift_summary(event: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a drift event (its id, detector, evidence summary and action)."""
    keep = ("id", "kind", "level", "detector", "model_version", "position", "event_time", "action",
            "threshold", "p_value", "statistic", "features", "detected_at")
    return {k: event.get(k) for k in keep}


class Sampler:
    """Publishes the state of one deployment to a :class:`LiveFeed` every ``interval_s``."""

    def __init__(self, feed: LiveFeed, engine: Callable[[], Any], state: Callable[[], dict[str, Any]],
                 interval_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.feed, self.engine, self.state = feed, engine, state
        self.interval_s, self.clock = interval_s, clock
        self._stop = threading.Event()
        self._last: tuple[float, int, int] | None = None  # (time, predictions, learned)
        self._version: int | None = None
        self._drifts: set[str] = set()
        self._evaluations = -1
        self._metrics_at = -1

    def start(self) -> None:
        threading.Thread(target=self._run, name="driftline-dashboard", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except RuntimeError:  # a ring or dict changed while it was copied: next tick
                continue
            except Exception:  # noqa: BLE001 - the page must never take the processor down
                log.exception("dashboard sampler failed; retrying at the next tick")

    def sample(self) -> None:
        """One tick (public for tests: call it directly instead of starting the thread)."""
        engine = self.engine()
        if engine is None:
            return
        now = self.clock()
        state = self.state()
        version = int(state.get("version", engine.version))
        if version != self._version:
            self.feed.publish("version", {"t": now, "from": self._version, "to": version})
            self._version = version
        predictions, learned = engine.counters.predictions, engine.n_learned
        rate_p = rate_l = None
        if self._last is not None and now > self._last[0]:
            dt = now - self._last[0]
            rate_p = max(0.0, (predictions - self._last[1]) / dt)
            rate_l = max(0.0, (learned - self._last[2]) / dt)
        self._last = (now, predictions, learned)
        variants = {"champion": dict(state.get("scores") or engine.scores.values())}
        if engine.arena is not None:
            for name, member in list(engine.arena.members.items()):
                variants[name] = member.scores.values()
        lag = state.get("lag") or {}
        self.feed.publish("tick", {
            "t": now, "model": engine.config.name, "version": version, "predictions_per_s": rate_p, "learned_per_s": rate_l,
            "n_learned": learned, "predictions": predictions, "metrics": variants,
            "backlog": {"features": state.get("pending_features"), "labels": state.get("pending_labels")},
            "expired": {"features": state.get("expired_features"), "labels": state.get("expired_labels")},
            "lag": sum(lag.values()), "lag_by_partition": lag,
        })
        history = engine.history
        events = list(history.events)
        for event in events:
            if event["id"] not in self._drifts:
                self._drifts.add(event["id"])
                detected = event.get("detected_at")
                self.feed.publish("drift", {"t": detected / 1000 if detected else now, **drift_summary(event)})
        if len(self._drifts) > 4 * history.max_events:
            self._drifts = {e["id"] for e in events}
        watch = engine.data_watch
        if watch is not None and watch.evaluations != self._evaluations:
            self._evaluations = watch.evaluations
            self.feed.publish("features", {"t": now, "features": {
                name: {"test": t["test"], "statistic": t["statistic"], "p_adjusted": t.get("p_adjusted"),
                       "psi": t.get("psi"), "drift": bool(t.get("drift"))} for name, t in dict(watch.last).items()}})
        metrics = list(history.metrics)
        if metrics and metrics[-1]["position"] != self._metrics_at:
            self._metrics_at = metrics[-1]["position"]
            self.feed.publish("importance", {"t": now, "position": self._metrics_at,
                                             "importances": metrics[-1]["importances"]})
