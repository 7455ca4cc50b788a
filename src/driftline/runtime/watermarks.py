"""What the processor knows about each input partition's end: fetched offsets,
end-of-partition events and high watermarks, for the event-time merger's lag rule
(KIP-695) and the consumer-lag metric."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from driftline.runtime.checkpointer import source_key

__all__ = ["Watermarks"]

log = logging.getLogger("driftline.processor")

Source = tuple[str, int]


class Watermarks:
    """Per assigned source: whether it is at its end, what was fetched, its lag."""

    def __init__(self, topic_of: dict[str, str]) -> None:
        self.topic_of = topic_of
        self.consumer: Any = None
        self.eof: dict[Source, bool] = {}
        self.eof_at: dict[Source, int] = {}  # the offset an end-of-partition event reported
        self.fetched: dict[Source, int] = {}
        self.lag: dict[str, int] = {}
        self._tps: dict[Source, TopicPartition] = {}
        self._marks: dict[Source, tuple[int, int]] = {}  # (low, high) asked of the broker
        self._asked_at: dict[Source, float] = {}

    def add(self, sources: list[Source]) -> None:
        """Start following sources just assigned; ask the broker for their ends (KIP-695:
        know every partition's lag before the first fetch)."""
        for source in sources:
            self.eof[source] = False
            self._tps[source] = TopicPartition(self.topic_of[source[0]], source[1])
        for source in sources:
            self.ask_broker(source)

    def remove(self, sources: list[Source]) -> None:
        for source in sources:
            for table in (self.eof, self.eof_at, self.fetched, self._tps, self._marks, self._asked_at):
                table.pop(source, None)
            self.lag.pop(source_key(source), None)

    @property
    def all_at_end(self) -> bool:
        return all(self.eof.values())

    def check(self, positions: dict[Source, int]) -> Callable[[Source], int | None]:
        """How many records an empty source is behind its partition's end, memoized for one
        batch; None when that is not known (the merger then waits, as for a known lag).

        The high watermark librdkafka caches from every fetch response is compared with the
        next offset to fetch: the last fetched record's, the offset an end-of-partition event
        reported (past any transaction marker), or where the partition was assigned. Before
        the first fetch response the broker is asked (KIP-695), at most every 200 ms.
        """
        memo: dict[Source, int | None] = {}
        eof_at, fetched, tps, consumer, marks = self.eof_at, self.fetched, self._tps, self.consumer, self._marks

        def lag(source: Source) -> int | None:
            if source in memo:
                return memo[source]
            try:
                low, high = consumer.get_watermark_offsets(tps[source], cached=True)
            except KafkaException:
                low = high = -1
            if high < 0:
                self.ask_broker(source, min_interval_s=0.2)
                low, high = marks.get(source, (-1, -1))
            nxt = max(fetched.get(source, -1), eof_at.get(source, -1), positions.get(source, -1))
            if nxt < 0:  # assigned at the beginning, nothing fetched yet
                nxt = low
            behind = memo[source] = None if high < 0 or nxt < 0 else max(0, high - nxt)
            return behind

        return lag

    def ask_broker(self, source: Source, min_interval_s: float = 0.0) -> None:
        """Ask the broker for a partition's watermarks (a round trip; bounded rate)."""
        now = time.monotonic()
        if now - self._asked_at.get(source, -1e9) < min_interval_s or source not in self._tps:
            return
        self._asked_at[source] = now
        try:
            self._marks[source] = self.consumer.get_watermark_offsets(self._tps[source], timeout=5, cached=False)
        except KafkaException as exc:
            log.warning("cannot read watermarks", extra={"fields": {"source": source_key(source), "error": str(exc)}})

    def update_lag(self, positions: dict[Source, int]) -> None:
        """Consumer lag per source, from the cached high watermarks (the metric)."""
        for source, tp in self._tps.items():
            try:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                self.lag[source_key(source)] = max(0, high - positions.get(source, 0))
