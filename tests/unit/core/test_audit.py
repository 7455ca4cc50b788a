"""The audit chain: any single flipped byte of any entry fails verification at that entry."""

from __future__ import annotations

import orjson
import pytest

from driftline.core.audit import AuditChain, key_id, verify


def _chain(n: int = 5, key: bytes = b"secret") -> list[tuple[int, bytes]]:
    chain = AuditChain(key)
    return [(10 + i, chain.append("lifecycle", f"m-promote-{i}", {"action": "promote", "version": i,
                                                                     "details": {"p": 0.01 * i, "who": "api:é"}},
                                  at=1000 * i)) for i in range(n)]


def test_an_intact_chain_verifies():
    result = verify(_chain(), b"secret")
    assert result.ok and result.entries == 5 and result.first_bad is None


@pytest.mark.parametrize("which", [0, 2, 4])
def test_every_single_byte_flip_is_caught_at_that_entry(which):
    records = _chain()
    position, value = records[which]
    for i in range(len(value)):
        flipped = bytearray(value)
        flipped[i] ^= 0x01
        copy = list(records)
        copy[which] = (position, bytes(flipped))
        result = verify(copy, b"secret")
        assert not result.ok and result.first_bad == position and result.entries == which, (i, chr(value[i]))


def test_removed_reordered_and_resigned_entries_fail():
    records = _chain()
    assert verify(records[:2] + records[3:], b"secret").first_bad == 13  # a deletion breaks the sequence
    assert verify([records[1], records[0]] + records[2:], b"secret").first_bad == 11
    assert verify(records, b"other key").first_bad == 10  # signatures need the snapshot key


def test_a_forged_tail_without_the_key_fails_on_its_signature():
    records = _chain(3)
    body = orjson.loads(records[2][1])
    forger = AuditChain(b"forger", bytes.fromhex(body["prev"]), 2)
    forged = forger.append("lifecycle", "m-rollback-9", {"action": "rollback"}, at=5)
    result = verify(records[:2] + [(12, forged)], b"secret")
    assert result.first_bad == 12 and "signature" in result.reason


def test_resume_continues_the_chain_and_names_the_key():
    records = _chain(3)
    chain = AuditChain(b"secret")
    chain.resume(records[-1][1])
    more = chain.append("lifecycle", "m-alias-3", {"action": "alias"}, at=9)
    assert verify(records + [(13, more)], b"secret").ok
    assert orjson.loads(more)["key_id"] == key_id(b"secret") != key_id(b"rotated")


def test_after_retention_the_chain_verifies_from_its_oldest_retained_entry():
    records = _chain(6)
    assert not verify(records[2:], b"secret").ok  # strict: seq 0 is gone
    result = verify(records[2:], b"secret", from_any=True)
    assert result.ok and result.entries == 4 and result.seq == 2
    tampered = list(records[2:])
    tampered[0] = (12, tampered[0][1].replace(b"promote", b"demote", 1))
    assert verify(tampered, b"secret", from_any=True).first_bad == 12  # its own hash still binds it
    assert verify(records[2:3] + records[4:], b"secret", from_any=True).first_bad == 14
