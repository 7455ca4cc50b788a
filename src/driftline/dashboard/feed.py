"""The live page's feed: a bounded ring of Server-Sent Events, numbered in order.

Publishers (the :class:`~driftline.dashboard.sampler.Sampler`) append events; each client
of ``/events`` first gets what the ring still holds after its ``Last-Event-ID`` (all of it
for a new page), then waits for new ones. The ring keeps the last ``capacity`` events, so a
client that reconnects after a short outage misses nothing and one that was away longer
gets the newest history. At most ``max_clients`` streams are served at once.

>>> feed = LiveFeed(capacity=2)
>>> [feed.publish("tick", {"n": i}) for i in range(3)]
[1, 2, 3]
>>> [(e.id, e.data) for e in feed.since(None)]
[(2, '{"n":1}'), (3, '{"n":2}')]
>>> [e.id for e in feed.since(2)]
[3]
>>> feed.since(3)
[]
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["LiveFeed", "FeedEvent"]


@dataclass(frozen=True)
class FeedEvent:
    id: int
    event: str
    data: str  # JSON

    def frame(self) -> bytes:
        """The event as it goes on the wire (text/event-stream)."""
        return f"id: {self.id}\nevent: {self.event}\ndata: {self.data}\n\n".encode()


class LiveFeed:
    """Bounded, numbered events for the live page; thread-safe."""

    def __init__(self, capacity: int = 3000, max_clients: int = 8) -> None:
        self.capacity = capacity
        self.max_clients = max_clients
        self._ring: deque[FeedEvent] = deque(maxlen=capacity)
        self._next = 1
        self._cond = threading.Condition()
        self._clients = 0
        self.closed = False

    def publish(self, event: str, data: dict[str, Any]) -> int:
        payload = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=str).decode()
        with self._cond:
            ident = self._next
            self._next += 1
            self._ring.append(FeedEvent(ident, event, payload))
            self._cond.notify_all()
        return ident

    def since(self, last_id: int | None) -> list[FeedEvent]:
        with self._cond:
            if last_id is None:
                return list(self._ring)
            return [e for e in self._ring if e.id > last_id]

    def wait(self, last_id: int | None, timeout_s: float) -> list[FeedEvent]:
        """New events after ``last_id``, waiting up to ``timeout_s`` for the first one."""
        with self._cond:
            newest = self._ring[-1].id if self._ring else 0
            if not self.closed and newest <= (last_id or 0):
                self._cond.wait(timeout_s)
        return self.since(last_id)

    def join(self) -> bool:
        """Take a client slot; ``False`` when ``max_clients`` are already served."""
        with self._cond:
            if self._clients >= self.max_clients or self.closed:
                return False
            self._clients += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._clients -= 1

    @property
    def clients(self) -> int:
        return self._clients

    def close(self) -> None:
        """Wake every waiting client so that its stream ends."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()
