"""Which model version serves an event in global mode (docs/scaling.md, "Global mode").

The trainer publishes version n with its watermark W_n, the event time up to which that
version has learned, and, between versions, heartbeats of its watermark. With
``staleness = "bounded"`` and Δ = ``max_staleness_ms``, an event of time t is served by the
newest version with W ≤ t − Δ; until a version or a heartbeat with W > t − Δ is known, a
newer version with W ≤ t − Δ may still come, so the event waits. Watermarks never go back,
so once one above t − Δ is known the answer cannot change: the choice is a pure function
of the input, whatever the number of predictors, the rebalances and the replays.

Version 0 is the deployment's fresh model (built from ``[model]``), known from the start
with no watermark: it serves events older than every version's watermark.

>>> book = VersionBook()
>>> book.add(1, 1_000)
>>> book.choose(1_500, delta_ms=100) is None     # nothing above 1_400 yet: wait
True
>>> book.heartbeat(1_450)
>>> book.choose(1_500, delta_ms=100)
1
>>> book.choose(1_050, delta_ms=100)               # 950: older than version 1's watermark
0
>>> book.newest
1
"""

from __future__ import annotations

import bisect

__all__ = ["VersionBook"]


class VersionBook:
    """The versions a predictor has verified and loaded, and the trainer's latest watermark.

    Versions arrive in increasing number and non-decreasing watermark (the trainer's event
    time does not go back); a version that breaks that order is refused by :meth:`add`.
    """

    def __init__(self) -> None:
        self._versions: list[int] = [0]
        self._marks: list[float] = [float("-inf")]
        self._watermark: float = float("-inf")

    @property
    def newest(self) -> int:
        return self._versions[-1]

    @property
    def watermark(self) -> float:
        """The highest watermark known (of a version or a heartbeat)."""
        return self._watermark

    def __contains__(self, version: int) -> bool:
        i = bisect.bisect_left(self._versions, version)
        return i < len(self._versions) and self._versions[i] == version

    def watermark_of(self, version: int) -> float:
        return self._marks[self._versions.index(version)]

    def add(self, version: int, watermark: int) -> None:
        """Record a verified version; a ``ValueError`` if it is not after the newest."""
        if version <= self._versions[-1] or watermark < self._marks[-1]:
            raise ValueError(f"version {version} (watermark {watermark}) does not follow version "
                             f"{self._versions[-1]} (watermark {self._marks[-1]})")
        self._versions.append(version)
        self._marks.append(watermark)
        self.heartbeat(watermark)

    def heartbeat(self, watermark: int | float) -> None:
        """The trainer's event time moved on (older heartbeats change nothing)."""
        if watermark > self._watermark:
            self._watermark = watermark

    def choose(self, event_time: int, delta_ms: int) -> int | None:
        """The newest version with W ≤ t − Δ, or None while a newer one may still come."""
        bound = event_time - delta_ms
        if self._watermark <= bound:
            return None
        return self._versions[bisect.bisect_right(self._marks, bound) - 1]
