"""The governed config, its digest and what a policy entry records (core/policy_change.py)."""

from __future__ import annotations

import hashlib

import orjson

from driftline.config import DeploymentConfig
from driftline.core.policy_change import digest, governed, policy_change


def test_the_digest_is_sha256_of_the_sorted_compact_json_of_the_dotted_settings():
    flat = governed(DeploymentConfig(name="m"))
    assert flat["drift.policy"] == "guarded" and flat["governance.explain.enabled"] is False
    assert "name" not in flat and "kafka.bootstrap_servers" not in flat and "model.preset" not in flat
    expected = hashlib.sha256(orjson.dumps(flat, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert digest(flat) == expected
    assert digest(dict(reversed(list(flat.items())))) == expected  # order of keys does not matter


def test_settings_outside_the_policies_do_not_change_the_digest():
    a = governed(DeploymentConfig(name="m", processor={"batch_size": 10}, kafka={"bootstrap_servers": "x:1"}))
    assert digest(a) == digest(governed(DeploymentConfig(name="other")))


def test_changed_keys_are_exactly_those_whose_value_changed():
    base = DeploymentConfig(name="m")
    first = policy_change(governed(base), None, first=True)
    assert first["reason"] == "first" and first["changed"] == sorted(governed(base))
    changed = DeploymentConfig(name="m", drift={"data": {"enabled": True}},
                               governance={"privacy": {"features": {"ssn": "hmac"}, "dlq_raw": True},
                                           "fairness": {"mitigation_window": 500}})
    second = policy_change(governed(changed, privacy_key_id="0badc0de"), first)
    assert second["previous"] == first["digest"] and second["reason"] == "changed"
    assert second["changed"] == ["drift.data.enabled", "governance.fairness.mitigation_window",
                                 "governance.privacy.dlq_raw", "governance.privacy.features",
                                 "governance.privacy.features.ssn", "governance.privacy.key_id"]
    assert policy_change(governed(changed, privacy_key_id="0badc0de"), second) is None
    rotated = policy_change(governed(changed, privacy_key_id="feedf00d"), second)
    assert rotated["changed"] == ["governance.privacy.key_id"]  # a key rotation is a policy change
    assert b"hmac" not in orjson.dumps(rotated)  # digests and names, no values


def test_an_entry_that_aged_out_is_said_so():
    record = policy_change(governed(DeploymentConfig(name="m")), None, first=False)
    assert record["reason"] == "no earlier policy entry retained" and record["previous"] is None
