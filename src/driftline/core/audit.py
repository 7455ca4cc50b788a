"""The tamper-evident audit log: a hash chain of signed entries (no I/O).

Entry ``i`` is the canonical JSON of ``{id, seq, at, kind, subject, record, key_id}``
(sorted keys, no spaces). Its hash is ``h_i = sha256(h_{i-1} || entry_i)`` with ``h_0`` 32 zero bytes, and
its signature is HMAC-SHA256 of ``h_i`` under the snapshot key. A record on ``.audit``
carries the entry's members plus ``prev`` (``h_{i-1}``), ``hash`` and ``sig``; ``key_id``
is the first 8 hex digits of sha256 of the key (which key signed, never the key).

Changing any byte of an entry changes its hash, so :func:`verify` stops at it; rewriting the
whole tail with new hashes needs the key for the signatures.

>>> chain = AuditChain(b"k")
>>> first = chain.append("lifecycle", "m-promote-1", {"action": "promote"}, at=1000)
>>> second = chain.append("lifecycle", "m-alias-2", {"action": "alias"}, at=2000)
>>> verify([(0, first), (1, second)], b"k").ok
True
>>> bad = verify([(0, first), (1, second.replace(b"alias", b"aliaz"))], b"k")
>>> bad.ok, bad.first_bad, bad.reason
(False, 1, 'hash mismatch: the entry was changed')
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["GENESIS", "AuditChain", "Verification", "entry_bytes", "key_id", "verify"]

GENESIS = bytes(32)
_ENTRY = ("id", "seq", "at", "kind", "subject", "record", "key_id")


def key_id(key: bytes) -> str:
    """Names a key without revealing it (rotation shows as a new id)."""
    return hashlib.sha256(key).hexdigest()[:8]


def entry_bytes(body: dict[str, Any]) -> bytes:
    """The canonical bytes of an entry: the chained members, sorted, compact."""
    return orjson.dumps({k: body[k] for k in _ENTRY}, option=orjson.OPT_SORT_KEYS, default=str)


def _link(prev: bytes, entry: bytes) -> bytes:
    return hashlib.sha256(prev + entry).digest()


def _sign(key: bytes, digest: bytes) -> str:
    return hmac.new(key, digest, hashlib.sha256).hexdigest()


class AuditChain:
    """The head of a chain: appends signed entries after the last one (``resume`` from a record)."""

    def __init__(self, key: bytes, head: bytes = GENESIS, seq: int = 0) -> None:
        self._key, self.head, self.seq = key, head, seq
        self.key_id = key_id(key)

    def resume(self, last: bytes | None) -> None:
        """Continue after ``last``, the value of the newest committed audit record (None: empty)."""
        if last is None:
            self.head, self.seq = GENESIS, 0
            return
        body = orjson.loads(last)
        self.head, self.seq = bytes.fromhex(body["hash"]), body["seq"] + 1

    def append(self, kind: str, subject: str, record: dict[str, Any], at: int) -> bytes:
        """The value of the next audit record; the head moves to it."""
        body: dict[str, Any] = {"id": f"audit-{self.seq}", "seq": self.seq, "at": at, "kind": kind,
                                "subject": subject, "record": record, "key_id": self.key_id}
        digest = _link(self.head, entry_bytes(body))
        body.update(prev=self.head.hex(), hash=digest.hex(), sig=_sign(self._key, digest))
        self.head, self.seq = digest, self.seq + 1
        return orjson.dumps(body, default=str)


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    entries: int  # entries that verified
    first_bad: int | None = None  # the position (topic offset) of the first bad entry
    seq: int | None = None  # its sequence number, when it could be read (ok: the first entry's)
    reason: str = ""


def verify(records: Iterable[tuple[int, bytes]], key: bytes, from_any: bool = False) -> Verification:
    """Check a chain: ``records`` are (position, value) in topic order.

    ``from_any``: the first record may be any entry of the chain (the ones before it were
    removed by retention): its ``seq`` and ``prev`` are taken as given, its hash and
    signature are checked, and everything after it links strictly.
    """
    head, expected, n = GENESIS, 0, 0
    first = True
    for position, value in records:
        if first and from_any:
            try:
                start = orjson.loads(value)
                head, expected = bytes.fromhex(start["prev"]), start["seq"]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                return Verification(False, 0, position, None, f"unreadable entry ({type(exc).__name__})")
        first = False
        try:
            body = orjson.loads(value)
            seq = body["seq"]
            entry = entry_bytes(body)
            stored, prev, sig = str(body["hash"]), body["prev"], str(body["sig"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return Verification(False, n, position, None, f"unreadable entry ({type(exc).__name__})")
        if seq != expected:
            return Verification(False, n, position, seq, f"sequence {seq} where {expected} was expected")
        if prev != head.hex():
            return Verification(False, n, position, seq, "prev does not name the previous entry's hash")
        digest = _link(head, entry)
        if not hmac.compare_digest(digest.hex(), stored):  # as text: "A" and "a" are not the same byte
            return Verification(False, n, position, seq, "hash mismatch: the entry was changed")
        if not hmac.compare_digest(_sign(key, digest), sig):
            return Verification(False, n, position, seq, "bad signature (another key, or a forged entry)")
        head, expected, n = digest, expected + 1, n + 1
    return Verification(True, n, seq=expected - n if n else None)
