"""Confusion counts per group: who was predicted favourably, and how the labels came out.

Prediction-side counts (``n``, ``pp``) move when a prediction is made, label-side ones
(``tp`` ``fp`` ``tn`` ``fn``, label delay) when its label is joined, so selection rates are
current while labels are still on their way. Three views: the last ``window`` events of
each side (sliding), event-time tumbling windows, and everything since the model version
changed (cumulative).

>>> from driftline.config import FairnessAttribute
>>> groups = Grouping([FairnessAttribute(name="age", bins=[25, 40])], [])
>>> groups.keys({"age": 30})
('[25,40)',)
>>> views = GroupViews(groups, window=3)
>>> views.predicted({"age": 30}, True, 0, version=1)
>>> views.joined({"age": 30}, True, False, delay_ms=5, event_time=0)
>>> c = views.sliding["age"]["[25,40)"]
>>> c.n, c.pp, c.fp, c.rate("selection_rate"), c.rate("tpr")
(1, 1, 1, 1.0, None)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from driftline.config import FairnessAttribute

__all__ = ["GroupCounts", "Grouping", "GroupViews", "fraction", "LABEL_SIDE"]

# metric -> (numerator, denominator) of GroupCounts fields; label-side metrics need a label.
_FRACTIONS = {
    "selection_rate": ("pp", "n"),
    "base_rate": ("pos", "labelled"),
    "tpr": ("tp", "pos"),
    "fpr": ("fp", "neg"),
    "ppv": ("tp", "lpp"),
    "fnr": ("fn", "pos"),
    "coverage": ("labelled", "n"),
}
LABEL_SIDE = frozenset({"base_rate", "tpr", "fpr", "ppv", "fnr"})


@dataclass(slots=True)
class GroupCounts:
    """Counts of one group in one view."""

    n: int = 0  # predictions
    pp: int = 0  # predicted favourable
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    delay_ms: int = 0  # sum of label delays

    @property
    def labelled(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def pos(self) -> int:
        return self.tp + self.fn

    @property
    def neg(self) -> int:
        return self.fp + self.tn

    @property
    def lpp(self) -> int:
        """Labelled events predicted favourably (the denominator of PPV)."""
        return self.tp + self.fp

    def rate(self, metric: str) -> float | None:
        """The metric's value, or None when its denominator is 0."""
        k, n = fraction(self, metric)
        return k / n if n else None

    def as_dict(self) -> dict[str, int]:
        return {"n": self.n, "pp": self.pp, "labelled": self.labelled, "tp": self.tp, "fp": self.fp,
                "tn": self.tn, "fn": self.fn}

    def add(self, other: GroupCounts) -> None:
        for name in ("n", "pp", "tp", "fp", "tn", "fn", "delay_ms"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def fraction(counts: GroupCounts, metric: str) -> tuple[int, int]:
    """(numerator, denominator) of ``metric`` for ``counts``."""
    num, den = _FRACTIONS[metric]
    return getattr(counts, num), getattr(counts, den)


def _bin_label(value: float, edges: Sequence[float]) -> str:
    if value < edges[0]:
        return f"<{edges[0]:g}"
    for lo, hi in zip(edges, edges[1:]):
        if value < hi:
            return f"[{lo:g},{hi:g})"
    return f">={edges[-1]:g}"


class Grouping:
    """Maps an event's features to its group in every dimension (attributes, then intersections).

    An intersection's group joins its attributes' groups with ``&``; a missing attribute is
    the group ``"missing"`` (never dropped: a group that is left out looks fair).
    """

    def __init__(self, attributes: Sequence[FairnessAttribute], intersections: Sequence[Sequence[str]]) -> None:
        self.attributes = list(attributes)
        self.intersections = [list(c) for c in intersections]
        self.names = [a.name for a in self.attributes] + ["&".join(c) for c in self.intersections]
        self._index = {a.name: i for i, a in enumerate(self.attributes)}

    def keys(self, features: dict[str, Any]) -> tuple[str, ...]:
        own = []
        for attr in self.attributes:
            value = features.get(attr.name)
            if value is None:
                own.append("missing")
            elif attr.bins is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
                own.append(_bin_label(value, attr.bins))
            else:
                own.append(str(value).lower() if isinstance(value, bool) else str(value))
        return tuple(own) + tuple("&".join(own[self._index[n]] for n in combo) for combo in self.intersections)


def _empty(names: Sequence[str]) -> dict[str, dict[str, GroupCounts]]:
    return {name: {} for name in names}


def _cell(groups: dict[str, GroupCounts], key: str) -> GroupCounts:
    counts = groups.get(key)
    if counts is None:
        counts = groups[key] = GroupCounts()
    return counts


class GroupViews:
    """Sliding, tumbling and cumulative-per-version counts for every dimension."""

    def __init__(self, grouping: Grouping, window: int, tumbling_ms: int | None = None) -> None:
        self.grouping = grouping
        self.window = window
        self.tumbling_ms = tumbling_ms
        names = grouping.names
        self.sliding = _empty(names)
        self.cumulative = _empty(names)
        self.tumbling = _empty(names)  # the window in progress
        self.tumbling_done: dict[str, dict[str, GroupCounts]] | None = None  # the last complete one
        self.tumbling_start: int | None = None
        self.version: int | None = None
        self._predictions: deque[tuple[tuple[str, ...], bool]] = deque()
        self._labels: deque[tuple[tuple[str, ...], str]] = deque()

    def _roll(self, event_time: int) -> None:
        if self.tumbling_ms is None:
            return
        start = event_time - event_time % self.tumbling_ms
        if self.tumbling_start is None:
            self.tumbling_start = start
        elif start > self.tumbling_start:
            self.tumbling_done, self.tumbling = self.tumbling, _empty(self.grouping.names)
            self.tumbling_start = start

    def predicted(self, features: dict[str, Any], favourable: bool, event_time: int, version: int,
                  keys: tuple[str, ...] | None = None) -> None:
        """A prediction was made: ``favourable`` is whether it was the favourable outcome.
        ``keys``: the event's groups when known (``grouping.keys(features)``)."""
        names = self.grouping.names
        if keys is None:
            keys = self.grouping.keys(features)
        if version != self.version:
            self.version, self.cumulative = version, _empty(names)
        self._roll(event_time)
        step = 1 if favourable else 0
        for table in (self.sliding, self.cumulative, self.tumbling):
            for name, key in zip(names, keys):
                counts = _cell(table[name], key)
                counts.n += 1
                counts.pp += step
        self._predictions.append((keys, favourable))
        if len(self._predictions) > self.window:
            old, was = self._predictions.popleft()
            step = 1 if was else 0
            for name, key in zip(names, old):
                counts = self.sliding[name][key]
                counts.n -= 1
                counts.pp -= step

    def joined(self, features: dict[str, Any], predicted: bool, actual: bool, delay_ms: int, event_time: int,
               keys: tuple[str, ...] | None = None) -> None:
        """A label was joined with its prediction (both as "is it the favourable outcome?")."""
        names = self.grouping.names
        if keys is None:
            keys = self.grouping.keys(features)
        cell = ("tp" if actual else "fp") if predicted else ("fn" if actual else "tn")
        self._roll(event_time)
        for table in (self.sliding, self.cumulative, self.tumbling):
            for name, key in zip(names, keys):
                counts = _cell(table[name], key)
                setattr(counts, cell, getattr(counts, cell) + 1)
                if table is not self.sliding:
                    counts.delay_ms += delay_ms
        self._labels.append((keys, cell))
        if len(self._labels) > self.window:
            old, old_cell = self._labels.popleft()
            for name, key in zip(names, old):
                counts = self.sliding[name][key]
                setattr(counts, old_cell, getattr(counts, old_cell) - 1)

    def views(self) -> dict[str, dict[str, dict[str, GroupCounts]]]:
        """View name -> dimension -> group -> counts."""
        out = {"sliding": self.sliding, "cumulative": self.cumulative}
        if self.tumbling_done is not None:
            out["tumbling"] = self.tumbling_done
        return out
