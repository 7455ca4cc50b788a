"""Signed snapshots: verified before unpickling, whatever byte was changed."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from types import SimpleNamespace

import pytest

from driftline.exceptions import SnapshotIntegrityError
from driftline.versions import signing
from driftline.versions.signing import MAGIC, heartbeat_verifies, read_meta, seal, sign_heartbeat, unseal

KEY = b"test-key"
STATE = {"weights": [1.5, -2.0], "name": "m", "nested": {"n": 3}}


@pytest.fixture
def blob() -> bytes:
    return seal({"version": 3, "trigger": "manual"}, STATE, KEY)


@pytest.fixture
def no_unpickling(monkeypatch):
    """Make any call to pickle.loads inside the signing module fail the test."""
    calls = []

    def forbidden(data, *args, **kwargs):
        calls.append(data)
        raise AssertionError("pickle.loads was called on unverified bytes")

    monkeypatch.setattr(signing, "pickle", SimpleNamespace(dumps=pickle.dumps, loads=forbidden,
                                                           HIGHEST_PROTOCOL=pickle.HIGHEST_PROTOCOL))
    return calls


def test_round_trip(blob):
    meta, state = unseal(blob, KEY)
    assert state == STATE
    assert meta["version"] == 3 and meta["trigger"] == "manual"
    assert read_meta(blob) == meta
    payload = pickle.dumps(STATE, protocol=pickle.HIGHEST_PROTOCOL)
    assert meta["payload_bytes"] == len(payload) and blob.endswith(payload)
    assert meta["payload_sha256"] == hashlib.sha256(payload).hexdigest()


def test_seal_does_not_mutate_the_meta_argument():
    meta = {"version": 1}
    seal(meta, STATE, KEY)
    assert meta == {"version": 1}


def test_every_tampered_byte_is_refused_before_unpickling(blob, no_unpickling):
    for i in range(len(blob)):
        for mask in (0x01, 0x80):
            tampered = blob[:i] + bytes([blob[i] ^ mask]) + blob[i + 1:]
            with pytest.raises(SnapshotIntegrityError):
                unseal(tampered, KEY)
    assert no_unpickling == []


def test_every_truncation_and_extension_is_refused(blob, no_unpickling):
    for n in range(len(blob)):
        with pytest.raises(SnapshotIntegrityError):
            unseal(blob[:n], KEY)
    with pytest.raises(SnapshotIntegrityError):
        unseal(blob + b"\x00", KEY)
    assert no_unpickling == []


@pytest.mark.parametrize("key", [b"", b"test-kez", KEY + b"x", KEY[:-1]])
def test_wrong_key_is_refused(blob, key, no_unpickling):
    with pytest.raises(SnapshotIntegrityError, match="does not verify"):
        unseal(blob, key)


def test_a_consistent_forgery_without_the_key_is_refused(blob, no_unpickling):
    """Swap in another pickle and fix up the metadata hashes: only the HMAC stands in the way."""
    evil = pickle.dumps({"weights": "evil"})
    meta = {**read_meta(blob), "payload_bytes": len(evil), "payload_sha256": hashlib.sha256(evil).hexdigest()}
    forged_meta = signing.orjson.dumps(meta)
    meta_len = int.from_bytes(blob[len(MAGIC):len(MAGIC) + 8], "big")
    mac = blob[len(MAGIC) + 8 + meta_len:][:32]  # the genuine signature, reused
    with pytest.raises(SnapshotIntegrityError):
        unseal(MAGIC + len(forged_meta).to_bytes(8, "big") + forged_meta + mac + evil, KEY)
    resealed = seal(meta, {"weights": "evil"}, b"attacker-key")
    with pytest.raises(SnapshotIntegrityError):
        unseal(resealed, KEY)


@pytest.mark.parametrize("bad", [b"", b"not a snapshot", MAGIC, MAGIC + b"\x00" * 7,
                                 MAGIC + (10**6).to_bytes(8, "big") + b"{}"])
def test_read_meta_refuses_non_snapshots(bad):
    with pytest.raises(SnapshotIntegrityError):
        read_meta(bad)


def test_read_meta_refuses_non_json_metadata():
    meta = b"\xff not json"
    blob = MAGIC + len(meta).to_bytes(8, "big") + meta + b"\x00" * 32
    with pytest.raises(SnapshotIntegrityError, match="not JSON"):
        read_meta(blob)


def test_a_heartbeat_signature_is_the_documented_hmac():
    """Recomputed here from the format docs/events.md states, not with the module's helper."""
    expected = hmac.new(b"k", b'DRIFTLINE-HEARTBEAT/1\n["fraud",1700000000000,3]', hashlib.sha256).hexdigest()
    assert sign_heartbeat("fraud", 1_700_000_000_000, 3, b"k") == expected
    body = {"model": "fraud", "heartbeat": True, "watermark": 1_700_000_000_000, "version": 3, "signature": expected}
    assert heartbeat_verifies(body, b"k")


@pytest.mark.parametrize("change", [
    {"watermark": 1_800_000_000_000}, {"version": 4}, {"model": "other"}, {"signature": "0" * 64},
    {"signature": None}, {"version": "3"}, {"watermark": None},
])
def test_a_changed_or_unsigned_heartbeat_does_not_verify(change):
    body = {"model": "fraud", "watermark": 1_700_000_000_000, "version": 3,
            "signature": sign_heartbeat("fraud", 1_700_000_000_000, 3, b"k")}
    assert not heartbeat_verifies({**body, **change}, b"k")
    assert not heartbeat_verifies(body, b"another key")
