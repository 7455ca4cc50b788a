"""A change of the governed config is an audit entry: one ``policy`` entry when a start's
config differs from the newest one recorded (old -> new digest, the changed keys), none
when a restart keeps it; the chain, with the other kinds around it, verifies."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.config import load_config
from driftline.core.policy_change import digest, governed
from driftline.datasets import stream
from driftline.runtime.audit import verify_topic
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay

pytestmark = pytest.mark.integration

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs/schemas/audit.schema.json").read_text())


def _policies(config, reader) -> list[dict]:
    bodies = [orjson.loads(m.value()) for m in reader(config, config.topics.audit)]
    for body in bodies:
        jsonschema.Draft202012Validator(SCHEMA).validate(body)
    return [b for b in bodies if b["kind"] == "policy"]


def _run(config, signing_key) -> None:
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=2)


def test_a_policy_change_is_one_entry_and_a_restart_without_one_writes_none(make_config, reader, signing_key):
    config = make_config(drift={"policy": "reset", "detectors": [{"name": "ADWIN"}]})
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=1500, seed=7)]
    replay(config, rows[:1000], label_delay=20, n_rows=1000)
    _run(config, signing_key)
    first = _policies(config, reader)
    assert len(first) == 1
    record = first[0]["record"]
    assert record["reason"] == "first" and record["previous"] is None
    assert record["digest"] == digest(governed(config))  # recomputable from the config alone
    assert first[0]["subject"] == f"{config.name}-policy-{record['digest'][:16]}"

    _run(config, signing_key)  # the same config again: nothing to record
    assert _policies(config, reader) == first

    # The same deployment, restarted with other detectors, explanations on and a promotion test.
    settings = config.model_dump(mode="json")
    settings["drift"]["detectors"] = [{"name": "PageHinkley", "params": {"threshold": 60}}]
    settings["governance"]["explain"]["enabled"] = True
    settings["lifecycle"]["promotion"]["alpha"] = 0.001
    changed = load_config(**settings)
    replay(changed, rows[1000:], label_delay=20, n_rows=500)  # more records: this start processes some
    _run(changed, signing_key)
    _run(changed, signing_key)  # and a restart of the changed one
    policies = _policies(config, reader)
    assert len(policies) == 2 and policies[0] == first[0]
    second = policies[1]["record"]
    assert second["reason"] == "changed" and second["previous"] == record["digest"]
    assert second["digest"] == digest(governed(changed)) != record["digest"]
    assert second["changed"] == ["drift.detectors", "governance.explain.enabled", "lifecycle.promotion.alpha"]
    assert b"PageHinkley" not in orjson.dumps(policies[1])  # names of settings, never their values
    assert second["model_version"] >= 1

    result = verify_topic(config, signing_key, from_any=False)
    assert result.ok, result.reason
