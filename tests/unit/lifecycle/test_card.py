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


def test_a_card_shows_per_group_rates_with_intervals_and_the_observed_label_delay():
    """Per-group selection rates equal the predictions the engine published, counted here by
    group; the label delay is the one the labels were sent with."""
    import random

    from driftline.core.engine import Engine
    from driftline.core.events import InputRecord
    from driftline.core.outputs import Prediction
    from driftline.runtime.version_meta import lifecycle_meta

    config = DeploymentConfig(name="credit", model={"preset": "logistic_regression", "features": {"x": "num", "g": "cat"},
                                                    "classes": [False, True]},
                              governance={"fairness": {"enabled": True, "attributes": [{"name": "g"}],
                                                       "metrics": ["selection_rate", "tpr"], "window": 10_000}})
    engine, rng = Engine(config), random.Random(7)
    favourable: dict[str, list[bool]] = {"a": [], "b": []}
    delays = []
    for i in range(400):
        group, x = rng.choice("ab"), rng.gauss(0, 1)
        body = json.dumps({"id": f"e{i}", "features": {"x": x, "g": group}}).encode()
        for out in engine.process(InputRecord("features", 0, i, 1000 * i, f"e{i}".encode(), body), now_ms=0):
            if isinstance(out, Prediction):
                favourable[group].append(out.prediction is True)
        delay = rng.randrange(0, 5000)
        delays.append(delay)
        label = json.dumps({"id": f"e{i}", "label": x + rng.gauss(0, 1) > 0}).encode()
        engine.process(InputRecord("labels", 0, i, 1000 * i + delay, f"e{i}".encode(), label), now_ms=0)
    meta = {**_meta(1, None, "initial"), **lifecycle_meta(engine)}
    card = build_card(config, meta, [meta], [])
    jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(card)
    rows = {m["slice"].split(":")[0]: m for m in card["quantitative_analysis"]["performance_metrics"]
            if m["type"] == "fairness_selection_rate"}
    assert set(rows) == {"g=a", "g=b"}
    for group in "ab":
        row, expected = rows[f"g={group}"], sum(favourable[group]) / len(favourable[group])
        assert float(row["value"]) == pytest.approx(expected, abs=1e-6)
        low, high = float(row["confidence_interval"]["lower_bound"]), float(row["confidence_interval"]["upper_bound"])
        assert low < expected < high and high - low < 0.2
    assert meta["label_delay"]["labels"] == 400 and meta["label_delay"]["max_ms"] == max(delays)
    assert meta["label_delay"]["mean_ms"] == pytest.approx(sum(delays) / 400)
    assert f"max {max(delays)} ms" in markdown(card) and "| fairness_tpr |" in markdown(card)
    version_schema = json.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" / "version.schema.json").read_text())
    for member in ("label_delay", "fairness"):
        jsonschema.Draft202012Validator(version_schema["properties"][member]).validate(meta[member])
