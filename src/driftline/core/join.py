"""The join buffer: features and their prediction wait here until the label arrives.

Labels may come before their features; those wait too. Both sides are bounded by age
(in event time, so replays expire exactly the same entries) and by count.

>>> buf = JoinBuffer(max_age_ms=1000, max_pending=10)
>>> buf.add_features("a", Pending({"x": 1}, True, None, 1, 0))
>>> buf.add_label("a", OrphanLabel(True, 10, None)).features
{'x': 1}
>>> buf.add_features("b", Pending({"x": 2}, False, None, 1, 20))
>>> buf.expire(5000).features
1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from driftline.core.events import InputRecord
from driftline.exceptions import BadEventError

__all__ = ["JoinBuffer", "Pending", "OrphanLabel", "Expired"]


@dataclass(slots=True)
class Pending:
    """Features with the prediction made for them, waiting for a label."""

    features: dict[str, Any]
    prediction: Any
    proba: dict[Any, float] | None
    model_version: int
    event_time: int
    # The guarded policy's candidate prediction for the same features: (generation, prediction).
    # Pending objects pickled before it existed have the slot unset: read it with getattr.
    candidate: Any = None
    # The groups of protected fairness attributes ([governance.privacy], core/privacy.py), never
    # their values for binned attributes; None: none. Unset in Pending pickled before it (getattr).
    protected: dict[str, str] | None = None
    # Fairness: the event's groups as counted at predict time, reused at the join (None: not
    # counted yet). Unset in Pending pickled before it (getattr).
    fairness_keys: tuple[str, ...] | None = None


@dataclass(slots=True)
class OrphanLabel:
    """A label whose features have not been seen (yet)."""

    label: Any
    event_time: int
    record: InputRecord | None  # kept so an expired orphan can go to the DLQ intact


@dataclass
class Expired:
    features: int = 0
    labels: list[OrphanLabel] = field(default_factory=list)


class JoinBuffer:
    """Pending features and orphan labels keyed by event id, in arrival order.

    Plain dicts (insertion-ordered) rather than ``OrderedDict``: their lookups, inserts and
    pops are cheaper, and only dict operations are used, so buffers pickled with
    ``OrderedDict`` still work.
    """

    def __init__(self, max_age_ms: int, max_pending: int) -> None:
        self.max_age_ms = max_age_ms
        self.max_pending = max_pending
        self._features: dict[str, Pending] = {}
        self._labels: dict[str, OrphanLabel] = {}
        self._joined: dict[str, None] = {}  # recent ids, to spot duplicates
        self._joined_cap = min(max_pending, 100_000)

    def __len__(self) -> int:
        return len(self._features) + len(self._labels)

    @property
    def pending_features(self) -> int:
        return len(self._features)

    @property
    def pending_labels(self) -> int:
        return len(self._labels)

    def _remember(self, event_id: str) -> None:
        joined = self._joined
        joined[event_id] = None
        if len(joined) > self._joined_cap:
            del joined[next(iter(joined))]

    def add_features(self, event_id: str, pending: Pending) -> OrphanLabel | None:
        """Hold ``pending``; if its label already waits, return that label instead."""
        if event_id in self._features or event_id in self._joined:
            raise BadEventError("duplicate_event_id", f"features for {event_id!r} were already seen")
        label = self._labels.pop(event_id, None)
        if label is not None:
            self._remember(event_id)
            return label
        self._features[event_id] = pending
        return None

    def peek(self, event_id: str) -> Pending | None:
        """The pending features of ``event_id``, left in place (None: not waiting)."""
        return self._features.get(event_id)

    def take_features(self, event_id: str) -> Pending | None:
        """Remove and return the pending features a label for ``event_id`` completes, if any.

        The engine calls this first, so that the common case (features first) builds no
        :class:`OrphanLabel`.
        """
        pending = self._features.pop(event_id, None)
        if pending is not None:
            self._remember(event_id)
        return pending

    def add_label(self, event_id: str, label: OrphanLabel) -> Pending | None:
        """Return the pending features the label completes, or hold the label."""
        pending = self.take_features(event_id)
        if pending is not None:
            return pending
        if event_id in self._labels or event_id in self._joined:
            raise BadEventError("duplicate_label", f"a label for {event_id!r} was already seen")
        self._labels[event_id] = label
        return None

    def holds(self, event_ids: set[str]) -> int:
        """How many of ``event_ids`` have features or a label waiting here."""
        return sum((i in self._features) + (i in self._labels) for i in event_ids)

    def purge(self, event_ids: set[str]) -> int:
        """Forget ``event_ids`` (waiting features, orphan labels, the recent-id memory): an
        erasure. Returns how many waiting entries went."""
        removed = self.holds(event_ids)
        for i in event_ids:
            self._features.pop(i, None)
            self._labels.pop(i, None)
            self._joined.pop(i, None)
        return removed

    def expire(self, stream_time: int) -> Expired | None:
        """Drop entries older than ``max_age_ms`` and the oldest beyond ``max_pending``.

        Returns ``None`` when nothing expired (the common case, kept allocation-free).
        """
        horizon = stream_time - self.max_age_ms
        features, labels = self._features, self._labels
        if not (
            (features and (len(features) > self.max_pending or next(iter(features.values())).event_time < horizon))
            or (labels and (len(labels) > self.max_pending or next(iter(labels.values())).event_time < horizon))
        ):
            return None
        out = Expired()
        while features and (
            next(iter(features.values())).event_time < horizon or len(features) > self.max_pending
        ):
            del features[next(iter(features))]
            out.features += 1
        while labels and (
            next(iter(labels.values())).event_time < horizon or len(labels) > self.max_pending
        ):
            out.labels.append(labels.pop(next(iter(labels))))
        return out
