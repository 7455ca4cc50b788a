"""The checkpointer: when a version is due, cutting it, registering it once saved, and
announcing it on ``.versions``.

A version is the whole engine pickled and signed (versions/store.py) with the input
positions it reflects and the order log's offset at that point. It is cut every
``checkpoint.every_examples`` or ``every_seconds``, on drift (rate-limited), for lifecycle
commands and at shutdown, never inside a unit of work and never while replaying (its
positions would not match the order log offset it names).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from driftline import __version__
from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.observability.metrics import ProcessorMetrics
from driftline.runtime.collector import OutputCollector
from driftline.runtime.snapshots import BackgroundSaver, SaveResult
from driftline.runtime.unit_of_work import UnitOfWork
from driftline.versions.store import VersionStore

__all__ = ["Checkpointer", "source_key"]

log = logging.getLogger("driftline.processor")

Source = tuple[str, int]


def source_key(source: Source) -> str:
    """How a (kind, partition) is written in version metadata and logs.

    >>> source_key(("labels", 3))
    'labels:3'
    """
    return f"{source[0]}:{source[1]}"


def _now_ms() -> int:
    return int(time.time() * 1000)


class Checkpointer:
    """Owns the version store, the background saver and the cadence of cuts.

    Hooks the owner sets: ``flush`` is called before a cut (order log entries committed
    but not yet acknowledged must have their offsets known); ``commit`` commits the open
    unit of work (the owner knows the positions); ``on_version`` receives the metadata of
    every version stored (the lifecycle registry indexes it); ``announce_to`` publishes it
    (by default on ``.versions``). ``meta_extra`` adds fields
    to a version's metadata from its engine (the serving history).
    """

    def __init__(self, config: DeploymentConfig, store: VersionStore, metrics: ProcessorMetrics,
                 collector: OutputCollector, work: UnitOfWork,
                 meta_extra: Callable[[Engine], dict[str, Any]] = lambda engine: {}) -> None:
        self.config = config
        self.store = store
        self.saver = BackgroundSaver(store, enabled=config.checkpoint.background)
        self.metrics = metrics
        self.collector = collector
        self.work = work
        self.meta_extra = meta_extra
        self.flush: Callable[[], None] = lambda: None
        self.commit: Callable[[], None] = lambda: None
        self.announce_to: Callable[[dict[str, Any], int], None] = collector.version
        self.on_version: Callable[[dict[str, Any]], None] = lambda stored: None
        self._failed_version = 0
        self._learned_at_cut = 0
        self._time_of_cut = 0.0
        self._range_start: dict[Source, int] = {}
        self._time_range: list[int] = []

    def start(self, engine: Engine, positions: dict[Source, int]) -> None:
        """Begin counting the next cut's interval and ranges from here."""
        self._learned_at_cut, self._time_of_cut = engine.n_learned, time.monotonic()
        self._range_start = dict(positions)

    def saw(self, first_ts: int, last_ts: int) -> None:
        """Widen the event-time range the next version covers."""
        if not self._time_range:
            self._time_range = [first_ts, last_ts]
        self._time_range[1] = max(self._time_range[1], last_ts)

    def maybe(self, engine: Engine, positions: dict[Source, int], order_offset: int, now: float) -> None:
        """Cut a version if one is due (called between units of work, not while replaying)."""
        if self.saver.busy:
            done = self.saver.poll()
            if done is None:
                return  # one version at a time: a cut that falls due now waits for this one
            self.saved(engine, done, commit=False)
            return
        ckpt = self.config.checkpoint
        due = engine.checkpoint_due
        learned = engine.n_learned - self._learned_at_cut
        if due and (due != "drift" or (learned >= ckpt.drift_min_examples
                                       and now - self._time_of_cut >= ckpt.drift_min_seconds)):
            self.cut(engine, positions, order_offset, due, wait=False)
        elif learned >= ckpt.every_examples:
            self.cut(engine, positions, order_offset, "periodic", wait=False)
        elif now - self._time_of_cut >= ckpt.every_seconds and learned > 0:
            self.cut(engine, positions, order_offset, "periodic", wait=False)

    def cut(self, engine: Engine, positions: dict[Source, int], order_offset: int, trigger: str,
            wait: bool = True, commit: bool = True) -> dict[str, Any] | None:
        """Cut a version of ``engine`` at ``positions``.

        With ``wait`` (start-up, shutdown, lifecycle commands) the version is stored,
        registered and announced before this returns its metadata. Without it, a forked
        child writes it (runtime/snapshots.py) and :meth:`saved` registers it once the
        child is done. Predictions name the new version from the cut on; if its write fails,
        they go back to the last good one and the failed number is never reused. Without
        ``commit`` the announcement is left in the open unit of work (a lifecycle command
        adds its event and commits, see runtime/lifecycle.py).
        """
        if self.saver.busy:
            self.saved(engine, self.saver.wait())
        # A version number whose write failed is not reused: predictions may carry it.
        version = max(self.store.next_version(), self._failed_version + 1)
        meta = {
            "parent": engine.version or None,
            "created_at": _now_ms(),
            "trigger": trigger,
            "examples_seen": engine.n_learned,
            "positions": {source_key(s): o for s, o in positions.items()},
            "offset_range": {source_key(s): [self._range_start.get(s, 0), o] for s, o in positions.items()},
            "event_time_range": list(self._time_range),
            "params": engine.model._get_params(),
            "model_class": type(engine.model).__name__,
            "metrics": engine.scores.values(),
            "counters": vars(engine.counters),
            "driftline_version": __version__,
            **self.meta_extra(engine),
        }
        self.flush()
        state = {"engine": engine, "positions": dict(positions), "order_offset": order_offset}
        # Whatever happens to this save, the next cut is due a full interval from now (a
        # failing disk must not be retried every batch).
        self._learned_at_cut, self._time_of_cut = engine.n_learned, time.monotonic()
        # From the cut on, predictions name the new version (the registry's serving intervals
        # start at the cut's stream time), also while the child is still writing it.
        engine.version, engine.checkpoint_due = version, None
        range_start, time_range = self._range_start, self._time_range
        self._range_start, self._time_range = dict(positions), []
        self.saver.start(version, meta, state)
        if wait or not self.saver.forking:
            stored = self.saved(engine, self.saver.wait(), commit)
            if stored is None:  # nothing was stored: the next version still covers this range
                self._range_start, self._time_range = range_start, time_range
            return stored
        return None

    def saved(self, engine: Engine, done: SaveResult | None, commit: bool = True) -> dict[str, Any] | None:
        """Register and announce a finished save, or count its failure."""
        if done is None:
            return None
        name = self.config.name
        if done.error is not None:
            self._failed_version = done.version
            if engine.version == done.version:  # serve under the last good version again
                engine.version = done.meta["parent"] or 0
            self.metrics.snapshot_failures.labels(name).inc()
            log.error("snapshot failed: keeping the last good version",
                      extra={"fields": {"version": done.version, "error": done.error}})
            return None
        stored = self.store.meta(done.version)
        self.metrics.versions.labels(name, stored["trigger"]).inc()
        self.metrics.last_version.labels(name).set(stored["created_at"] / 1000)
        self.metrics.snapshot_seconds.labels(name).observe(done.seconds)
        log.info("version cut", extra={"fields": {"version": done.version, "trigger": stored["trigger"],
                                                  "examples_seen": stored["examples_seen"],
                                                  "seconds": round(done.seconds, 3)}})
        self.announce(stored, commit)
        self.on_version(stored)
        return stored

    def announce(self, meta: dict[str, Any], commit: bool = True) -> None:
        """Publish a version's metadata; without ``commit`` it rides in the next batch's
        transaction (one commit less)."""
        self.work.ensure_open()
        self.announce_to(meta, _now_ms())
        if commit:
            self.commit()

    def cadence(self) -> tuple[Any, ...]:
        """What a cut changes in the cadence, for :meth:`undo` when a command fails."""
        return self._range_start, self._time_range, self._learned_at_cut, self._time_of_cut

    def undo(self, cadence: tuple[Any, ...], stored: dict[str, Any] | None) -> None:
        """Forget a cut whose command failed: its cadence, and its stored version (deleted;
        the number is never reused: predictions may have carried it)."""
        self._range_start, self._time_range, self._learned_at_cut, self._time_of_cut = cadence
        if stored is not None:
            self._failed_version = max(self._failed_version, stored["version"])
            self.store.delete(stored["version"])

    def wait(self) -> None:
        """Let a version being written land (it is complete and consistent); the next
        start registers it."""
        self.saver.wait()
