"""Model cards validate against the vendored Model Card Toolkit v0.0.2 schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from driftline.config import DeploymentConfig
from driftline.lifecycle.card import build_card, markdown

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" / "model-card-toolkit" / "v0.0.2"
                     / "model_card.schema.json").read_text())


def _meta(version, parent, trigger):
    return {"name": "credit", "version": version, "parent": parent, "created_at": 1795829343073 + version,
            "trigger": trigger, "examples_seen": 1000 * version, "model_class": "Pipeline",
            "params": {"LogisticRegression": {"l2": 0.0}}, "metrics": {"accuracy": 0.81, "rolling_accuracy": 0.79,
                                                                          "log_loss": None},
            "counters": {"drift_events": 2}, "positions": {"features:0": 1200, "labels:0": 1100},
            "offset_range": {"features:0": [100, 1200], "labels:0": [90, 1100]},
            "event_time_range": [1000, 9000], "payload_sha256": "ab" * 32}


@pytest.mark.parametrize("config", [
    DeploymentConfig(name="credit", model={"features": {"age": "num", "job": "cat"}, "classes": [0, 1]}),
    DeploymentConfig(name="credit", model={"preset": "hoeffding_tree"}, governance={"explain": {"enabled": True}},
                     lifecycle={"promotion": {"enabled": True}}),
])
def test_every_card_validates_against_the_model_card_toolkit_schema(config):
    lineage = [_meta(3, 2, "drift"), _meta(2, 1, "periodic"), _meta(1, None, "initial")]
    events = [{"action": "promote", "actor": "policy:promotion", "model_version": 2, "details": {"version": 3}}]
    card = build_card(config, lineage[0], lineage, events)
    jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(card)
    text = json.dumps(card)
    for needed in ("v3 (drift) <- v2 (periodic) <- v1 (initial)", "offsets [90, 1100)", "1000 to 9000",
                   "promote by policy:promotion", "Promotion"):
        assert needed in text, needed
    assert {m["type"] for m in card["quantitative_analysis"]["performance_metrics"]} == {"accuracy", "rolling_accuracy"}
    page = markdown(card)
    assert page.startswith("# Model card: credit v3") and "| accuracy | 0.81 |" in page


def test_the_schema_refuses_what_it_does_not_know():
    card = build_card(DeploymentConfig(name="c"), _meta(1, None, "initial"), [_meta(1, None, "initial")], [])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate({**card, "driftline": {}})  # additionalProperties: false
