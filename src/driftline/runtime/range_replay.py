"""Replaying a range of a deployment's input into an engine, outputs discarded.

A rollback restores a version and replays the inputs since it up to the current
positions (runtime/lifecycle.py), leaving out the labels a skip window names and the
records of erased subjects (runtime/erasure.py).
"""

from __future__ import annotations

from typing import Any

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.ordering import EventTimeMerger, Source
from driftline.lifecycle.commands import SkipWindow
from driftline.runtime.erasure import read_range

__all__ = ["replay_range"]


def replay_range(
    config: DeploymentConfig,
    engine: Engine,
    start: dict[Source, int],
    end: dict[Source, int],
    skip: SkipWindow | None = None,
    timeout_s: float = 120.0,
    erased: Any = None,
) -> tuple[Engine, dict[str, int]]:
    """Feed ``engine`` the input records in ``[start, end)`` per partition, in event-time
    order, leaving out the labels ``skip`` names and the records of erased subjects
    (``erased``, runtime/erasure.py); outputs are discarded. Returns the engine and counts
    (records replayed, labels skipped, erased records left out)."""
    counts = {"replayed": 0, "skipped_labels": 0}
    merger = EventTimeMerger(list(end), max_idle_ms=0)  # the input is complete: nothing to wait for
    read_range(config, start, end, merger.push, timeout_s)
    while (record := merger.pop(lambda _s: 0, 0)) is not None:
        if skip is not None and skip.skips(record):
            counts["skipped_labels"] += 1
            continue
        if erased is not None and erased.skips(record):  # records of erased subjects (runtime/erasure.py)
            counts["erased"] = counts.get("erased", 0) + 1
            continue
        engine.process(record, 0)
        counts["replayed"] += 1
    return engine, counts
