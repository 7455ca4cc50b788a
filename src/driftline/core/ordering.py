"""Event-time ordering across partitions, the way a Kafka Streams task does it.

Records are buffered per source partition. The next record to process is the head with
the smallest ``(timestamp, kind, partition, offset)``, where labels sort before features
at equal times (this is what makes the service match River's ``progressive_val_score``
with delayed labels). Three rules decide when a head may go:

* **Lagging sources are waited for, without a time limit** (Kafka Streams' KIP-695). A
  source whose buffer is empty holds everything back while its lag is above zero or not
  known; only a source known to be caught up (lag 0) is skipped.
* **Labels wait for the features' watermark.** A label with event time ``T`` is released
  only when every features partition has shown a record with time ``>= T`` (its watermark
  passed ``T``, so every earlier feature it holds was predicted first), or has been caught
  up and silent for ``max_idle_ms``. A label can therefore never be learned before a
  feature event with an earlier time that the processor has fetched, or that arrives while
  its partition is still active.
* **Protected records (the fairness side topic) sort first** at equal times, before labels
  and features, and wait for nothing else: the groups of a prediction are known when it is
  made if the producer stamps them with the features' time.
* **Features wait for no idle partition.** A features head goes as soon as it is the
  smallest head and no empty source is lagging: a prediction never waits for a caught-up
  label partition.

With all input already in Kafka, as in any replay, the order is a pure function of the
input. A label released after a feature with an equal or later time was predicted is
counted as late (:attr:`MergeStats.late_labels`): it is learned, but a prediction it came
too late for is never revised.

>>> from driftline.core.events import InputRecord
>>> merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=0)
>>> merger.push(InputRecord("features", 0, 0, 5, None, b""))
>>> merger.push(InputRecord("labels", 0, 0, 5, None, b""))
>>> [merger.pop(lambda src: 0, now_ms=0).kind for _ in range(2)]
['labels', 'features']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from driftline.core.events import InputRecord

__all__ = ["EventTimeMerger", "MergeStats", "Source", "Lag"]

Source = tuple[str, int]  # (kind, partition)
# How many records a source is behind the partition's end, or None when that is not known.
Lag = Callable[[Source], "int | None"]
# Protected attributes (the fairness side topic) sort first: their groups are known when the
# features of the same time are predicted.
_KIND_RANK = {"protected": -1, "labels": 0, "features": 1}
_NEVER = -(2**63)


@dataclass
class MergeStats:
    """What the merger decided, for metrics (counts since the merger was made)."""

    waits: int = 0  # times an empty source with lag > 0 (or unknown) held the stream back
    idle_releases: int = 0  # labels released because a features partition was silent max_idle_ms
    late_labels: int = 0  # labels released after a feature with an equal or later time went


class EventTimeMerger:
    """Buffers records per source and releases them in event-time order."""

    def __init__(self, sources: Iterable[Source], max_idle_ms: int) -> None:
        self.max_idle_ms = max_idle_ms
        self._queues: dict[Source, deque[InputRecord]] = {src: deque() for src in sources}
        self._features = [src for src in self._queues if src[0] == "features"]
        self._watermark: dict[Source, int] = {src: _NEVER for src in self._queues}
        self._idle_since: dict[Source, int] = {}  # empty and caught up since (wall ms)
        self._waiting: set[Source] = set()  # empty and lagging, counted once per episode
        self._features_time = _NEVER  # the largest event time of a released feature
        self.stats = MergeStats()

    def push(self, record: InputRecord) -> None:
        source = (record.kind, record.partition)
        self._queues[source].append(record)
        if record.timestamp > self._watermark[source]:
            self._watermark[source] = record.timestamp

    def buffered(self, source: Source) -> int:
        return len(self._queues[source])

    def watermark(self, source: Source) -> int | None:
        """The largest event time seen on ``source`` (None before its first record)."""
        mark = self._watermark[source]
        return None if mark == _NEVER else mark

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def clear(self) -> None:
        for queue in self._queues.values():
            queue.clear()

    def pop(self, lag: Lag, now_ms: int) -> InputRecord | None:
        """The next record in event-time order, or ``None`` if it must wait.

        ``lag(source)`` tells how far an empty source is behind its partition's end (0:
        caught up, None: not known yet).
        """
        run = self.pop_run(lag, now_ms, 1)
        return run[0] if run else None

    def pop_run(self, lag: Lag, now_ms: int, limit: int) -> list[InputRecord]:
        """The next records in event-time order, all from one source (empty if they must wait).

        The same records, in the same order, as calling :meth:`pop` up to ``limit`` times,
        but the heads of the other sources are compared once per run instead of once per
        record: the run takes the best source's records while they sort before every other
        source's head, and stops where that source's buffer runs out. ``lag`` is assumed
        not to change during one call.

        >>> from driftline.core.events import InputRecord
        >>> merger = EventTimeMerger([("features", 0), ("labels", 0)], max_idle_ms=0)
        >>> for t in (1, 2, 3, 7):
        ...     merger.push(InputRecord("features", 0, t, t, None, b""))
        >>> merger.push(InputRecord("labels", 0, 0, 3, None, b""))
        >>> [(r.kind, r.timestamp) for r in merger.pop_run(lambda src: 0, 0, 100)]
        [('features', 1), ('features', 2)]
        >>> [(r.kind, r.timestamp) for r in merger.pop_run(lambda src: 0, 0, 100)]
        [('labels', 3)]
        """
        best_source: Source | None = None
        best_key: tuple[int, int, int, int] | None = None
        next_key: tuple[int, int, int, int] | None = None  # the runner-up: where the run must stop
        must_wait = False
        idle_since, waiting = self._idle_since, self._waiting
        for source, queue in self._queues.items():
            if not queue:
                behind = lag(source)
                if behind is None or behind > 0:
                    # KIP-695: data is there (or may be): wait for it, without a time limit.
                    must_wait = True
                    idle_since.pop(source, None)
                    if source not in waiting:
                        waiting.add(source)
                        self.stats.waits += 1
                else:
                    waiting.discard(source)
                    idle_since.setdefault(source, now_ms)
                continue
            if source in idle_since:
                del idle_since[source]
            waiting.discard(source)
            head = queue[0]
            key = (head.timestamp, _KIND_RANK[head.kind], head.partition, head.offset)
            if best_key is None or key < best_key:
                best_source, best_key, next_key = source, key, best_key
            elif next_key is None or key < next_key:
                next_key = key
        if best_source is None or must_wait:
            return []
        assert best_key is not None
        queue = self._queues[best_source]
        if best_source[0] == "labels":
            return self._label_run(queue, best_key, next_key, now_ms, limit)
        run = [queue.popleft()]
        if next_key is None:  # no other source has a head: the run ends with this buffer
            while queue and len(run) < limit:
                run.append(queue.popleft())
        else:
            partition, rank = best_source[1], _KIND_RANK[best_source[0]]
            while queue and len(run) < limit:
                head = queue[0]
                if (head.timestamp, rank, partition, head.offset) > next_key:
                    break
                run.append(queue.popleft())
        if best_source[0] == "features" and run[-1].timestamp > self._features_time:
            self._features_time = max(r.timestamp for r in run)
        return run

    def _label_run(self, queue: deque[InputRecord], best_key: tuple[int, int, int, int],
                   next_key: tuple[int, int, int, int] | None, now_ms: int, limit: int) -> list[InputRecord]:
        """Labels from ``queue`` up to where an empty features partition's watermark allows."""
        # Labels may go up to the smallest watermark of the empty features partitions that
        # are not (yet) idle long enough; a non-empty features partition bounds the run
        # through next_key already.
        allowed: int | None = None
        idle = False
        for source in self._features:
            if self._queues[source]:
                continue
            mark = self._watermark[source]
            if mark >= best_key[0]:
                allowed = mark if allowed is None else min(allowed, mark)
            elif now_ms - self._idle_since.get(source, now_ms) >= self.max_idle_ms:
                idle = True  # caught up and silent long enough: it no longer holds labels back
            else:
                return []
        partition = best_key[2]
        run: list[InputRecord] = []
        while queue and len(run) < limit:
            head = queue[0]
            if run and next_key is not None and (head.timestamp, 0, partition, head.offset) > next_key:
                break
            if allowed is not None and head.timestamp > allowed:
                break
            run.append(queue.popleft())
        if idle:
            self.stats.idle_releases += len(run)
        if self._features_time != _NEVER:
            self.stats.late_labels += sum(1 for r in run if r.timestamp <= self._features_time)
        return run

    def take_through(self, source: Source, last_offset: int) -> list[InputRecord] | None:
        """The buffered records of ``source`` up to ``last_offset``, whatever the rules say,
        or None while that offset is not buffered yet. Recovery uses it to repeat a recorded
        order (core/order_log.py)."""
        queue = self._queues[source]
        if not queue or queue[-1].offset < last_offset:
            return None
        run = []
        while queue and queue[0].offset <= last_offset:
            run.append(queue.popleft())
        if source[0] == "features" and run and run[-1].timestamp > self._features_time:
            self._features_time = max(r.timestamp for r in run)
        return run

    def head_offset(self, source: Source) -> int | None:
        queue = self._queues[source]
        return queue[0].offset if queue else None
