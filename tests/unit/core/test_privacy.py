"""The privacy field policy (core/privacy.py, [governance.privacy]): applied at ingress."""

from __future__ import annotations

import hashlib
import hmac
import pickle

import orjson
import pytest

from driftline.config import DeploymentConfig, PrivacyConfig, load_config
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.outputs import DeadLetter
from driftline.core.privacy import UNPARSED, FieldPolicy, policy_for
from driftline.exceptions import ConfigError

KEY_A = "privacy-unit-key-aaaaaaaaaaaa"
KEY_B = "privacy-unit-key-bbbbbbbbbbbb"
CANARY = "CANARY-7f3a9c"


def _config(name: str, **privacy) -> DeploymentConfig:
    return DeploymentConfig(name=name, model={"features": {"x": "num", "ssn": "cat"}},
                            governance={"privacy": {"features": {"ssn": "hmac", "name": "drop"}, **privacy}})


def _features(i: int, **extra) -> InputRecord:
    body = {"id": f"e{i}", "features": {"x": float(i % 7), "ssn": f"{CANARY}-{i}", "name": CANARY, **extra},
            "note": CANARY}
    return InputRecord("features", 0, i, 1000 + i, f"e{i}".encode(), orjson.dumps(body))


def test_hmac_is_hmac_sha256_under_the_key_with_its_key_id(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_PRIVACY_KEY", KEY_A)
    policy = policy_for(_config("p-hmac"))
    digest = hmac.new(KEY_A.encode(), b"123-45-6789", hashlib.sha256).hexdigest()
    kid = hashlib.sha256(KEY_A.encode()).hexdigest()[:8]
    assert policy.pseudonym("123-45-6789") == f"hmac:{kid}:{digest}"
    assert policy.pseudonym("123-45-6789") == policy.pseudonym("123-45-6789")  # stable under one key
    assert policy.pseudonym(policy.pseudonym("a")) == policy.pseudonym("a")  # redacting twice: a no-op
    assert policy.pseudonym(42) == f"hmac:{kid}:" + hmac.new(KEY_A.encode(), b"42", hashlib.sha256).hexdigest()


def test_rotation_changes_values_and_shows_its_key_id(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_PRIVACY_KEY", KEY_A)
    before = policy_for(_config("p-rot")).pseudonym("Ann")
    monkeypatch.setenv("DRIFTLINE_PRIVACY_KEY", KEY_B)
    after = policy_for(_config("p-rot")).pseudonym("Ann")
    assert before != after
    assert before.split(":")[1] == hashlib.sha256(KEY_A.encode()).hexdigest()[:8]
    assert after.split(":")[1] == hashlib.sha256(KEY_B.encode()).hexdigest()[:8]


def test_the_engine_never_sees_or_keeps_dropped_or_raw_hmac_values(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_PRIVACY_KEY", KEY_A)
    engine = Engine(_config("p-engine"))
    outputs = []
    for i in range(40):
        outputs += engine.process(_features(i), now_ms=0)
    assert engine.counters.predictions == 40 and not [o for o in outputs if isinstance(o, DeadLetter)]
    pending = engine.join._features["e3"].features
    assert set(pending) == {"x", "ssn"} and pending["ssn"].startswith("hmac:")
    assert CANARY.encode() not in pickle.dumps(engine)  # the join buffer, as a snapshot holds it
    assert KEY_A.encode() not in pickle.dumps(engine)  # the key is never pickled


def test_a_dropped_field_declared_as_a_feature_or_a_numeric_hmac_is_refused():
    with pytest.raises(ValueError, match=r"declares \['name'\]"):
        DeploymentConfig(name="m", model={"features": {"name": "cat"}},
                         governance={"privacy": {"features": {"name": "drop"}}})
    with pytest.raises(ValueError, match="declare them 'cat'"):
        DeploymentConfig(name="m", model={"features": {"ssn": "num"}},
                         governance={"privacy": {"features": {"ssn": "hmac"}}})
    with pytest.raises(ValueError, match="features.ssn|ssn"):
        PrivacyConfig(features={"ssn": "encrypt"})
    with pytest.raises(ValueError, match=r"names \['id'\]"):
        PrivacyConfig(body={"id": "hmac"})
    with pytest.raises(ValueError, match=r"unknown topic kinds \['audits'\]"):
        PrivacyConfig(retention_ms={"audits": 1})


def test_unknown_privacy_fields_are_named(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text('name = "m"\n[governance.privacy]\nfeature = {ssn = "hmac"}\n')
    with pytest.raises(ConfigError, match="feature"):
        load_config(path)


def test_a_missing_or_short_hmac_key_is_one_line_at_startup(monkeypatch):
    monkeypatch.delenv("DRIFTLINE_PRIVACY_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"^privacy HMAC key missing: set the DRIFTLINE_PRIVACY_KEY environment variable$"):
        Engine(_config("p-nokey"))
    monkeypatch.setenv("DRIFTLINE_PRIVACY_KEY", "short")
    with pytest.raises(ConfigError, match="is 5 bytes: use at least 16"):
        Engine(_config("p-shortkey"))


def test_dead_letters_are_redacted_unless_dlq_raw(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_PRIVACY_KEY", KEY_A)
    policy = policy_for(_config("p-dlq", body={"note": "drop"}))
    bad = orjson.dumps({"id": "e1", "features": {"x": "not a number", "ssn": CANARY, "name": CANARY}, "note": CANARY})
    value, redacted = policy.redact(bad)
    assert CANARY.encode() not in value
    assert sorted(redacted) == ["features.name", "features.ssn", "note"]
    assert orjson.loads(value)["features"]["x"] == "not a number"  # what made it a dead letter stays
    assert policy.redact(value)[0] == value  # idempotent
    clean = b'{"id":"e2","features":{"x":1.0}}'
    assert policy.redact(clean) == (clean, [])  # nothing under the policy: the same bytes
    assert policy.redact(b'{"id": "e3", "features": {"name": "' + CANARY.encode()) == (None, [UNPARSED])


def test_an_orphan_label_is_kept_redacted(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_PRIVACY_KEY", KEY_A)
    engine = Engine(_config("p-orphan", body={"note": "hmac"}))
    engine.process(InputRecord("labels", 0, 0, 1000, b"e9", orjson.dumps({"id": "e9", "label": True, "note": CANARY})), 0)
    assert CANARY.encode() not in pickle.dumps(engine)
    assert b"hmac:" in engine.join._labels["e9"].record.value


def test_protected_fields_reach_fairness_but_not_the_model_or_the_buffer():
    cfg = DeploymentConfig(name="p-fair", governance={
        "privacy": {"features": {"age": "protected", "sex": "protected"}},
        "fairness": {"enabled": True, "attributes": [{"name": "age", "bins": [0, 40]}],
                     "metrics": ["selection_rate"], "check_every": 1}})
    engine = Engine(cfg)
    for i in range(10):
        body = {"id": f"e{i}", "features": {"x": float(i), "age": 23 + i, "sex": "f"}}
        engine.process(InputRecord("features", 0, i, 1000 + i, None, orjson.dumps(body)), 0)
    pending = engine.join._features["e1"]
    assert set(pending.features) == {"x"}  # the model's input
    assert pending.protected == {"age": "[0,40)"}  # the group, not the age; sex is no attribute: gone
    assert engine.fairness.monitor.views.sliding["age"]["[0,40)"].n == 10
    engine.process(InputRecord("labels", 0, 0, 2000, None, b'{"id": "e1", "label": true}'), 0)
    assert engine.fairness.monitor.views.cumulative["age"]["[0,40)"].labelled == 1


def test_a_restored_engine_applies_the_policy_in_force(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_PRIVACY_KEY", KEY_A)
    engine = Engine(_config("p-restore"))
    blob = pickle.dumps(engine)
    monkeypatch.setenv("DRIFTLINE_PRIVACY_KEY", KEY_B)
    policy_for(_config("p-restore"))  # the runtime builds today's policy before it restores
    restored = pickle.loads(blob)
    out = restored.process(_features(1), 0)
    assert out[0].prediction is not None
    assert restored.join._features["e1"].features["ssn"].split(":")[1] == hashlib.sha256(KEY_B.encode()).hexdigest()[:8]


def test_check_only_policy_lets_a_producer_validate_without_the_key():
    policy = FieldPolicy(PrivacyConfig(features={"ssn": "hmac"}), None, "p-check", check_only=True)
    assert policy.pseudonym("x").startswith("hmac:None:")
    with pytest.raises(ConfigError, match="not loaded"):
        FieldPolicy(PrivacyConfig(features={"ssn": "hmac"}), None, "p-check").pseudonym("x")


def test_topic_retention_is_configurable_per_kind():
    from driftline.runtime.topics import topic_specs

    cfg = DeploymentConfig(name="p-ret", governance={"privacy": {"retention_ms": {"predictions": 86_400_000,
                                                                                  "dlq": 3_600_000}}})
    specs = {t.topic.rsplit(".", 1)[1]: t.config for t in topic_specs(cfg)}
    assert specs["predictions"]["retention.ms"] == "86400000"
    assert specs["dlq"]["retention.ms"] == "3600000"
    assert specs["features"]["retention.ms"] == str(7 * 24 * 3600 * 1000)  # unset kinds keep their default
    assert specs["audit"]["retention.ms"] == str(183 * 24 * 3600 * 1000)
