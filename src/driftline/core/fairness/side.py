"""The protected side topic: attributes joined by event id like labels, never seen by the model.

A record on ``<prefix>.<model>.protected`` is ``{"id": ..., "attributes": {...}}``. Only the
groups of the attributes ``[governance.fairness]`` reads from it (``source = "protected"``)
are kept: a bin such as ``[25,40)``, never the value. The event-time merger takes a protected
record before a feature event of the same time, so a producer that stamps it with its
features' time has its groups known when the prediction is made:

- protected record first: its groups wait here (bounded by the join window's age and size)
  until the features come; the prediction is counted with them at once;
- features first: the prediction is counted when the protected record arrives, if the label
  has not been joined yet (the groups then wait in the join buffer's entry);
- label joined before any protected record: the example is counted in the group ``missing``
  (never dropped: a group left out of the counts looks fair).

A prediction whose features expire unlabelled before its protected record arrives is not
counted. Everything here is pickled with the engine, so a version restores it exactly.

>>> from driftline.config import FairnessAttribute
>>> side = ProtectedSide([FairnessAttribute(name="age", source="protected", bins=[25, 40])], 1000, 10)
>>> side.hold("e1", side.groups({"age": 30, "name": "Ann"}), event_time=0, stream_time=0)
>>> side.complete({"x": 1.0}), side.take("e1", stream_time=5)
(False, {'age': '[25,40)'})
>>> side.take("e1", stream_time=5) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from driftline.config import FairnessAttribute
from driftline.core.fairness.counts import Grouping
from driftline.exceptions import BadEventError

__all__ = ["ProtectedSide"]


class ProtectedSide:
    """Groups from the protected side topic waiting by event id for their features."""

    def __init__(self, attributes: Sequence[FairnessAttribute], max_age_ms: int, max_pending: int) -> None:
        self.names = tuple(a.name for a in attributes)
        self.max_age_ms = max_age_ms
        self.max_pending = max_pending
        self._grouping = Grouping(list(attributes), [])
        self._waiting: dict[str, tuple[dict[str, str], int]] = {}  # id -> (groups, event time)
        self.received = 0  # protected records decoded
        self.late = 0  # arrived after their features (the prediction was counted then)
        self.expired = 0  # waited longer than the join window for their features
        self.unattributed = 0  # labels joined before any protected record: counted as "missing"

    def __len__(self) -> int:
        return len(self._waiting)

    def groups(self, attributes: dict[str, Any]) -> dict[str, str]:
        """The groups of the side attributes (``missing`` for one the record does not carry)."""
        return dict(zip(self.names, self._grouping.keys(attributes)))

    def complete(self, features: dict[str, Any]) -> bool:
        """Does ``features`` (the model's features and known groups) hold every side attribute?"""
        return all(name in features for name in self.names)

    def hold(self, event_id: str, groups: dict[str, str], event_time: int, stream_time: int) -> None:
        """Keep ``groups`` until the features of ``event_id`` come."""
        if event_id in self._waiting:
            raise BadEventError("duplicate_protected", f"protected attributes for {event_id!r} were already seen")
        self._waiting[event_id] = (groups, event_time)
        self.expire(stream_time)

    def take(self, event_id: str, stream_time: int) -> dict[str, str] | None:
        """The groups waiting for ``event_id``'s features (removed), or None."""
        if self._waiting:
            self.expire(stream_time)
        entry = self._waiting.pop(event_id, None)
        return None if entry is None else entry[0]

    def expire(self, stream_time: int) -> None:
        """Drop entries older than the join window and the oldest beyond its size."""
        waiting, horizon = self._waiting, stream_time - self.max_age_ms
        while waiting and (len(waiting) > self.max_pending or next(iter(waiting.values()))[1] < horizon):
            del waiting[next(iter(waiting))]
            self.expired += 1
