"""Switching a mitigation: the restored engine takes the configured policy, the event and the flags."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import jsonschema

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.fairness.switch import mitigation_event, mitigation_meta, switch_mitigation
from driftline.lifecycle.card import build_card
from driftline.lifecycle.registry import Registry

SCHEMAS = Path(__file__).resolve().parents[4] / "docs" / "schemas"
FAIRNESS = {"enabled": True, "attributes": [{"name": "sex", "source": "protected"}]}


def config(**fairness) -> DeploymentConfig:
    return DeploymentConfig(name="loans", governance={"fairness": {**FAIRNESS, **fairness}})


def test_a_restored_engine_takes_the_configured_mitigation_and_the_event_says_so():
    engine = pickle.loads(pickle.dumps(Engine(config())))
    on = config(mitigation="group_threshold", acknowledge_disparate_treatment=True)
    assert switch_mitigation(engine, on) == ("none", "group_threshold")
    assert engine.fairness.thresholds is not None and engine.fairness.reweigher is None
    event = mitigation_event(engine, on, "none", "group_threshold", at=5)
    lifecycle = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "lifecycle.schema.json").read_text()))
    lifecycle.validate(event.body())
    assert event.id == "loans-mitigation-v0-none-group_threshold" and event.details["disparate_treatment"] is True
    assert switch_mitigation(engine, on) is None  # already in force: no second event
    assert switch_mitigation(engine, config(mitigation="reweigh")) == ("group_threshold", "reweigh")
    assert engine.fairness.thresholds is None and engine.fairness.reweigher is not None
    assert switch_mitigation(engine, config()) == ("reweigh", "none")
    assert engine.fairness.reweigher is None and mitigation_meta(engine) == {}


def test_a_group_threshold_version_is_flagged_in_the_registry_and_the_card(tmp_path):
    on = config(mitigation="group_threshold", acknowledge_disparate_treatment=True)
    meta = {"name": "loans", "version": 3, "created_at": 5, "trigger": "periodic", "examples_seen": 10,
            "stream_time": 0, **mitigation_meta(Engine(on))}
    member = json.loads((SCHEMAS / "version.schema.json").read_text())["properties"]["mitigation"]
    jsonschema.Draft202012Validator(member).validate(meta["mitigation"])
    registry = Registry(str(tmp_path / "registry.sqlite"))
    registry.register(meta, source="file:///v3")
    tags = registry.get("loans", 3)["tags"]
    assert tags["fairness_mitigation"] == "group_threshold on sex" and "disparate_treatment" in tags
    first = build_card(on, meta, [meta], [])["considerations"]["ethical_considerations"][0]
    assert first["name"].startswith("DISPARATE TREATMENT") and "sex" in first["mitigation_strategy"]
    plain = {**meta, "version": 4}
    plain.pop("mitigation")
    registry.register(plain, source="file:///v4")
    assert registry.get("loans", 4)["tags"] == {}
