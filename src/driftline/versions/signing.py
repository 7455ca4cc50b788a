"""The signed snapshot format: metadata and a pickle, bound together by HMAC-SHA256.

Layout: ``MAGIC | len(meta) (8 bytes, big endian) | meta JSON | HMAC (32 bytes) | pickle``.
The HMAC covers the magic, the metadata and the pickle, and is checked with a
constant-time comparison *before* anything is unpickled.

>>> blob = seal({"version": 1}, {"weights": [1, 2]}, key=b"k")
>>> read_meta(blob)["version"]
1
>>> unseal(blob, key=b"k")[1]
{'weights': [1, 2]}
>>> unseal(blob, key=b"wrong")
Traceback (most recent call last):
...
driftline.exceptions.SnapshotIntegrityError: snapshot signature does not verify (wrong key or tampered bytes); refusing to unpickle it
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any

import orjson

from driftline.exceptions import SnapshotIntegrityError

__all__ = ["MAGIC", "seal", "unseal", "read_meta", "HEADER_PEEK", "sign_heartbeat", "heartbeat_verifies"]

MAGIC = b"DRIFTLINE-SNAPSHOT/1\n"
_LEN = 8
_MAC = 32
HEADER_PEEK = 64 * 1024  # bytes to read to get the metadata of any reasonable snapshot
HEARTBEAT_MAGIC = b"DRIFTLINE-HEARTBEAT/1\n"


def _mac(key: bytes, meta: bytes, payload: bytes) -> bytes:
    mac = hmac.new(key, MAGIC, hashlib.sha256)
    mac.update(len(meta).to_bytes(_LEN, "big"))
    mac.update(meta)
    mac.update(payload)
    return mac.digest()


def seal(meta: dict[str, Any], state: Any, key: bytes) -> bytes:
    """Pickle ``state`` and sign it together with ``meta``."""
    payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    meta = {**meta, "payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest()}
    meta_bytes = orjson.dumps(meta, default=str, option=orjson.OPT_NON_STR_KEYS)
    return b"".join(
        [MAGIC, len(meta_bytes).to_bytes(_LEN, "big"), meta_bytes, _mac(key, meta_bytes, payload), payload]
    )


def _split(blob: bytes) -> tuple[bytes, bytes, bytes]:
    if not blob.startswith(MAGIC):
        raise SnapshotIntegrityError("not a Driftline snapshot (bad magic bytes)")
    start = len(MAGIC)
    if len(blob) < start + _LEN:
        raise SnapshotIntegrityError("snapshot is truncated (no header)")
    n = int.from_bytes(blob[start : start + _LEN], "big")
    meta_end = start + _LEN + n
    if len(blob) < meta_end + _MAC:
        raise SnapshotIntegrityError("snapshot is truncated (header cut short)")
    return blob[start + _LEN : meta_end], blob[meta_end : meta_end + _MAC], blob[meta_end + _MAC :]


def read_meta(blob: bytes) -> dict[str, Any]:
    """The (unverified) metadata, for listings; never touches the pickle."""
    meta, _, _ = _split(blob)
    try:
        return orjson.loads(meta)
    except orjson.JSONDecodeError as exc:
        raise SnapshotIntegrityError(f"snapshot metadata is not JSON: {exc}") from None


def unseal(blob: bytes, key: bytes) -> tuple[dict[str, Any], Any]:
    """Verify the signature, then unpickle; raise if the bytes were not signed with ``key``."""
    meta, mac, payload = _split(blob)
    if not hmac.compare_digest(mac, _mac(key, meta, payload)):
        raise SnapshotIntegrityError(
            "snapshot signature does not verify (wrong key or tampered bytes); refusing to unpickle it"
        )
    return orjson.loads(meta), pickle.loads(payload)  # noqa: S301 - verified above


def sign_heartbeat(model: str, watermark: int, version: int, key: bytes) -> str:
    """HMAC-SHA256 (hex) of a global-mode heartbeat's model, watermark and latest release.

    A forged heartbeat would make predictors serve events before the trainer's watermark
    passed them (with an older release than the rule picks), so heartbeats are signed
    with the same key as the releases.

    >>> sig = sign_heartbeat("fraud", 1_700_000_000_000, 3, key=b"k")
    >>> body = {"model": "fraud", "watermark": 1_700_000_000_000, "version": 3, "signature": sig}
    >>> heartbeat_verifies(body, key=b"k"), heartbeat_verifies({**body, "watermark": 1_800_000_000_000}, key=b"k")
    (True, False)
    """
    message = HEARTBEAT_MAGIC + orjson.dumps([model, watermark, version])
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def heartbeat_verifies(body: dict[str, Any], key: bytes) -> bool:
    """Whether ``body``'s ``signature`` is the trainer's for its model, watermark and version."""
    signature, model, version = body.get("signature"), body.get("model"), body.get("version")
    if not isinstance(signature, str) or not isinstance(model, str) or not isinstance(version, int):
        return False
    expected = sign_heartbeat(model, body.get("watermark"), version, key)  # type: ignore[arg-type]
    return hmac.compare_digest(signature.encode(), expected.encode())
