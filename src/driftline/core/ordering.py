"""Event-time ordering across partitions, the way a Kafka Streams task does it.

Records are buffered per source partition. The next record to process is the head with
the smallest ``(timestamp, kind, partition, offset)``, where labels sort before features
at equal times (this is what makes the service match River's
``progressive_val_score`` with delayed labels). A record is only released when every
source either has buffered records or is known to be caught up; a source that lags
(it has data the consumer has not fetched yet) is waited for, but at most ``max_idle_ms``.
With all input already in Kafka, as in any replay, the order is therefore a pure function
of the input.

>>> from driftline.core.events import InputRecord
>>> merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=0)
>>> merger.push(InputRecord("features", 0, 0, 5, None, b""))
>>> merger.push(InputRecord("labels", 0, 0, 5, None, b""))
>>> [merger.pop(lambda src: True, now_ms=0).kind for _ in range(2)]
['labels', 'features']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from driftline.core.events import InputRecord

__all__ = ["EventTimeMerger", "Source"]

Source = tuple[str, int]  # (kind, partition)
_KIND_RANK = {"labels": 0, "features": 1}


class EventTimeMerger:
    """Buffers records per source and releases them in event-time order."""

    def __init__(self, sources: Iterable[Source], max_idle_ms: int) -> None:
        self.max_idle_ms = max_idle_ms
        self._queues: dict[Source, deque[InputRecord]] = {src: deque() for src in sources}
        self._waiting_since: dict[Source, int] = {}

    def push(self, record: InputRecord) -> None:
        self._queues[(record.kind, record.partition)].append(record)

    def buffered(self, source: Source) -> int:
        return len(self._queues[source])

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def clear(self) -> None:
        for queue in self._queues.values():
            queue.clear()

    def pop(self, caught_up: Callable[[Source], bool], now_ms: int) -> InputRecord | None:
        """The next record in event-time order, or ``None`` if it must wait.

        ``caught_up(source)`` tells whether an empty source has nothing more to fetch.
        """
        run = self.pop_run(caught_up, now_ms, 1)
        return run[0] if run else None

    def pop_run(self, caught_up: Callable[[Source], bool], now_ms: int, limit: int) -> list[InputRecord]:
        """The next records in event-time order, all from one source (empty if they must wait).

        The same records, in the same order, as calling :meth:`pop` up to ``limit`` times,
        but the heads of the other sources are compared once per run instead of once per
        record: the run takes the best source's records while they sort before every other
        source's head, and stops where that source's buffer runs out. ``caught_up`` is
        assumed not to change during one call.

        >>> from driftline.core.events import InputRecord
        >>> merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=0)
        >>> for t in (1, 2, 3, 7):
        ...     merger.push(InputRecord("features", 0, t, t, None, b""))
        >>> merger.push(InputRecord("labels", 0, 0, 3, None, b""))
        >>> [(r.kind, r.timestamp) for r in merger.pop_run(lambda src: True, 0, 100)]
        [('features', 1), ('features', 2)]
        >>> [(r.kind, r.timestamp) for r in merger.pop_run(lambda src: True, 0, 100)]
        [('labels', 3)]
        """
        best_source: Source | None = None
        best_key: tuple[int, int, int, int] | None = None
        next_key: tuple[int, int, int, int] | None = None  # the runner-up: where the run must stop
        must_wait = False
        waiting = self._waiting_since
        for source, queue in self._queues.items():
            if not queue:
                # Like Kafka Streams' max.task.idle.ms, each lagging source gets its own
                # deadline, which holds until that source has data or is caught up.
                if not caught_up(source):
                    since = waiting.setdefault(source, now_ms)
                    must_wait = must_wait or now_ms - since < self.max_idle_ms
                    continue
            if source in waiting:
                del waiting[source]
            if not queue:
                continue
            head = queue[0]
            key = (head.timestamp, _KIND_RANK[head.kind], head.partition, head.offset)
            if best_key is None or key < best_key:
                best_source, best_key, next_key = source, key, best_key
            elif next_key is None or key < next_key:
                next_key = key
        if best_source is None or must_wait:
            return []
        queue = self._queues[best_source]
        run = [queue.popleft()]
        if next_key is None:  # no other source has a head: the run ends with this buffer
            while queue and len(run) < limit:
                run.append(queue.popleft())
            return run
        rank, partition = _KIND_RANK[best_source[0]], best_source[1]
        while queue and len(run) < limit:
            head = queue[0]
            if (head.timestamp, rank, partition, head.offset) > next_key:
                break
            run.append(queue.popleft())
        return run
