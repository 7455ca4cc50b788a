"""Erasure of one data subject: which input records are theirs, which versions hold them.

No I/O. The runtime (runtime/erasure.py) reads the input topics and the version store; this
decides. A subject is named by the record key (``--key``) or by the event id in the body
(``--id``). Its records are kept as offsets per source (``features:0``), never as values:
that is what a later replay must leave out, and what a receipt may carry.

A version *may contain* the subject when, on some source, its position is past the
subject's first record there: exact unlearning restores the newest version that may not
(it has never seen the subject) and replays the inputs since without the subject's records.

>>> subject = Subject("id", "e7")
>>> rec = InputRecord("features", 0, 12, 5, b"e7", b'{"id": "e7", "features": {"x": 1.0}}')
>>> subject.matches(rec), Subject("key", "e7").matches(rec), Subject("key", "e8").matches(rec)
(True, True, False)
>>> found = ErasedRecords()
>>> found.add(rec); found.add(InputRecord("labels", 0, 30, 9, b"e7", b'{"id": "e7", "label": true}'))
>>> found.first()
{'features:0': 12, 'labels:0': 30}
>>> may_contain({"features:0": 12, "labels:0": 31}, found.first()), may_contain({"features:0": 12}, found.first())
(True, False)
>>> ErasedRecords.from_ranges(found.ranges()).skips(rec), found.counts()
(True, {'features': 1, 'labels': 1})
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from driftline.core.events import InputRecord

__all__ = ["Subject", "ErasedRecords", "may_contain", "restore_point", "subject_digest"]


def subject_digest(key: bytes, value: str) -> str:
    """An identifier in a receipt: HMAC-SHA256 with the snapshot key (a bare sha256 of an
    event id such as ``e17`` is reversed by trying ids), as hex.

    >>> len(subject_digest(b"k", "e1")), subject_digest(b"k", "e1") == subject_digest(b"k2", "e1")
    (64, False)
    """
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Subject:
    """Whose records to erase: every record whose key (``by="key"``) or body ``id``
    (``by="id"``) is ``value``."""

    by: Literal["key", "id"]
    value: str

    def matches(self, record: InputRecord) -> bool:
        if self.by == "key":
            return record.key is not None and record.key == self.value.encode()
        value = record.value
        if not value or self.value.encode() not in value:  # cheap test first: most records are others'
            return False
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            return False
        return isinstance(body, dict) and str(body.get("id")) == self.value

    def describe(self) -> str:
        return f"{self.by} {self.value!r}"


def event_id(record: InputRecord) -> str | None:
    """The body's ``id`` of an input record (None when it has none)."""
    try:
        body = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None
    return str(body["id"]) if isinstance(body, dict) and "id" in body else None


class ErasedRecords:
    """Offsets of erased input records, per source (``features:0``)."""

    def __init__(self) -> None:
        self._offsets: dict[str, set[int]] = {}

    def add(self, record: InputRecord) -> None:
        self._offsets.setdefault(f"{record.kind}:{record.partition}", set()).add(record.offset)

    def skips(self, record: InputRecord) -> bool:
        offsets = self._offsets.get(f"{record.kind}:{record.partition}")
        return offsets is not None and record.offset in offsets

    def __len__(self) -> int:
        return sum(len(v) for v in self._offsets.values())

    def update(self, other: ErasedRecords) -> None:
        for source, offsets in other._offsets.items():
            self._offsets.setdefault(source, set()).update(offsets)

    def first(self) -> dict[str, int]:
        """The subject's first offset on each source it appears on."""
        return {source: min(offsets) for source, offsets in sorted(self._offsets.items()) if offsets}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for source, offsets in self._offsets.items():
            kind = source.split(":", 1)[0]
            out[kind] = out.get(kind, 0) + len(offsets)
        return dict(sorted(out.items()))

    def ranges(self) -> dict[str, list[list[int]]]:
        """Offsets as inclusive ``[first, last]`` runs (what a receipt carries)."""
        out: dict[str, list[list[int]]] = {}
        for source, offsets in sorted(self._offsets.items()):
            runs: list[list[int]] = []
            for offset in sorted(offsets):
                if runs and runs[-1][1] == offset - 1:
                    runs[-1][1] = offset
                else:
                    runs.append([offset, offset])
            out[source] = runs
        return out

    @classmethod
    def from_ranges(cls, ranges: dict[str, Iterable[Iterable[int]]]) -> ErasedRecords:
        erased = cls()
        for source, runs in ranges.items():
            offsets = erased._offsets.setdefault(source, set())
            for first, last in runs:
                offsets.update(range(int(first), int(last) + 1))
        return erased


def may_contain(positions: dict[str, int], first: dict[str, int]) -> bool:
    """True when a version at ``positions`` has (or may have) learned a record at ``first``."""
    return any(positions.get(source, 0) > offset for source, offset in first.items())


def restore_point(metas: Iterable[dict[str, Any]], first: dict[str, int],
                  excluded: set[int] = frozenset()) -> dict[str, Any] | None:  # type: ignore[assignment]
    """The newest version (by number) that cannot contain the subject, skipping ``excluded``
    (versions an earlier erasure superseded)."""
    clean = [m for m in metas if m["version"] not in excluded and not may_contain(m.get("positions") or {}, first)]
    return max(clean, key=lambda m: m["version"]) if clean else None
