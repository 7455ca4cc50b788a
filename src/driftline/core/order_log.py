"""The order log: the merge decisions of a live run, so that a recovery can repeat them.

Live, the event-time merger's decisions depend on when records arrived (a partition that
was caught up a moment ago may have data now). Replaying the same records after a crash
could then pick another order and rebuild another model. So the processor writes down
what it did: each unit of work adds one entry with, per drain, the wall time it ran at and
the runs it processed (``kind``, ``partition``, first and last offset), and the entry is
written in the same transaction as the outputs those runs produced. A recovery restores a
version, reads the entries written since that version was cut, and takes the records in
exactly that order (:class:`OrderFollower`); from the end of the log on it merges by the
rules again.

>>> rec = OrderRecorder()
>>> rec.record(1000, "labels", 0, 4, 6)
>>> rec.record(1000, "features", 1, 7, 7)
>>> rec.record(1010, "features", 1, 8, 9)
>>> entry = rec.flush()
>>> follower = OrderFollower([entry])
>>> follower.next_run()
(1000, ('labels', 0), 4, 6)
>>> follower.advance(); follower.next_run()
(1000, ('features', 1), 7, 7)
>>> follower.advance(); follower.advance(); follower.next_run() is None
True
"""

from __future__ import annotations

from collections import deque

import orjson

__all__ = ["OrderRecorder", "OrderFollower", "Run"]

FORMAT = 1
_CODE = {"labels": "l", "features": "f", "protected": "p"}
_KIND = {"l": "labels", "f": "features", "p": "protected"}
# (now_ms, source, first offset, last offset): one run of consecutive records of a source
Run = tuple[int, tuple[str, int], int, int]


class OrderRecorder:
    """Collects the runs processed in the current unit of work."""

    def __init__(self) -> None:
        self._batches: list[list] = []  # [now_ms, [[code, partition, first, last], ...]]

    def record(self, now_ms: int, kind: str, partition: int, first: int, last: int) -> None:
        if not self._batches or self._batches[-1][0] != now_ms:
            self._batches.append([now_ms, []])
        self._batches[-1][1].append([_CODE[kind], partition, first, last])

    def __bool__(self) -> bool:
        return bool(self._batches)

    def flush(self) -> bytes:
        """The entry for what was recorded since the last flush (then forgets it)."""
        entry = orjson.dumps({"format": FORMAT, "batches": self._batches})
        self._batches = []
        return entry

    def discard(self) -> None:
        """Forget what was recorded (its unit of work was aborted)."""
        self._batches = []


class OrderFollower:
    """The recorded runs, in order, as a recovery consumes them."""

    def __init__(self, entries: list[bytes]) -> None:
        self._runs: deque[Run] = deque()
        for raw in entries:
            entry = orjson.loads(raw)
            if entry.get("format") != FORMAT:
                raise ValueError(f"unknown order log format {entry.get('format')!r}")
            for now_ms, runs in entry["batches"]:
                for code, partition, first, last in runs:
                    self._runs.append((now_ms, (_KIND[code], partition), first, last))

    def __len__(self) -> int:
        return len(self._runs)

    def next_run(self) -> Run | None:
        return self._runs[0] if self._runs else None

    def advance(self) -> None:
        self._runs.popleft()

    def clear(self) -> None:
        self._runs.clear()
