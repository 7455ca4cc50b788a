"""Where a keyed engine keeps the keys it evicted: a two-verb store of pickled engines.

:class:`~driftline.core.keyed.KeyedEngine` keeps at most ``max_keys_in_memory`` per-key
engines in memory. The least recently used one is pickled and handed to a
:class:`ColdStore` under a *reference* (``<eviction number>/<key>``, never reused within a
run), and fetched back on the key's next record. The core only pickles; a runtime store
signs what it writes (the version store does) and may keep a blob until no snapshot refers
to it any more, which is why a restored key's blob is only ``release``d, not required gone.

>>> store = MemoryColdStore()
>>> store.put("1/customer-7", b"...")
>>> store.get("1/customer-7"), store.get("2/customer-7")
(b'...', None)
>>> store.release("1/customer-7"); len(store)
0
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["ColdStore", "MemoryColdStore"]


@runtime_checkable
class ColdStore(Protocol):
    """Pickled per-key engines by reference."""

    def put(self, ref: str, blob: bytes) -> None:
        """Keep ``blob`` under ``ref`` (a later ``put`` of the same ``ref`` replaces it)."""

    def get(self, ref: str) -> bytes | None:
        """The blob stored under ``ref``, or None when there is none."""

    def release(self, ref: str) -> None:
        """The engine no longer needs ``ref`` (its key is resident again). A store whose
        blobs are referenced by snapshots keeps it until those are gone."""


class MemoryColdStore:
    """A dict: for tests and for runs whose evicted keys travel inside the engine's snapshot.

    A :class:`~driftline.core.keyed.KeyedEngine` pickles this store with itself (and no other
    kind), so a snapshot of the engine holds every key, resident or evicted.
    """

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, ref: str, blob: bytes) -> None:
        self._blobs[ref] = blob

    def get(self, ref: str) -> bytes | None:
        return self._blobs.get(ref)

    def release(self, ref: str) -> None:
        self._blobs.pop(ref, None)

    def without(self, ref: str) -> MemoryColdStore:
        """A copy that no longer holds ``ref`` (the blobs themselves are shared: bytes)."""
        copy = MemoryColdStore()
        copy._blobs = {r: b for r, b in self._blobs.items() if r != ref}
        return copy

    def __len__(self) -> int:
        return len(self._blobs)

    def nbytes(self) -> int:
        """Bytes held (the pickled engines)."""
        return sum(len(b) for b in self._blobs.values())
