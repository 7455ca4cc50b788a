"""Output bodies and the examples of docs/events.md against docs/schemas/ (the cheap half of
the contract; tests/integration/runtime/test_contract.py checks what reaches the broker)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import orjson
import pytest

from driftline.core.outputs import DriftEvent, LifecycleEvent, Prediction

DOCS = Path(__file__).resolve().parents[3] / "docs"


def schema(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((DOCS / "schemas" / f"{name}.schema.json").read_text()))


def wire(body: dict) -> dict:
    """What a consumer decodes (JSON object keys become strings, as on the wire)."""
    return orjson.loads(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS))


def examples() -> dict[str, dict]:
    text = (DOCS / "events.md").read_text()
    return {m.group(1): json.loads(m.group(2))
            for m in re.finditer(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", text, re.S)}


PREDICTIONS = [
    Prediction("e1", "elec", 3, 120, True, {True: 0.7, False: 0.3}, 100, 105),
    Prediction("e2", "elec", 0, 0, None, {}, 100, 105, variant="hat"),
    Prediction("e3", "elec", 1, 5, 1, {0: 0.4, 1: 0.6}, 100, 105),
    Prediction("e4", "house", 2, 9, 3.25, None, 100, 105),  # regression
]


@pytest.mark.parametrize("prediction", PREDICTIONS, ids=lambda p: p.id)
def test_prediction_bodies_match_the_schema(prediction):
    body = wire(prediction.body())
    schema("prediction").validate(body)
    assert body["variant"] == prediction.variant


def test_drift_and_lifecycle_bodies_match_their_schemas():
    source = {"kind": "labels", "partition": 0, "offset": 7}
    drift = DriftEvent("m-drift-7-ADWIN", "m", 1, "concept", "ADWIN", {"delta": 0.002}, {"width": 64.0, "x": None},
                       7, 100, source, {}, {"accuracy": float("nan")}, "reset", 105,
                       evidence={"test": "t", "value": 0.5, "bound": None, "windows": {"kept": 64}})
    schema("drift").validate(wire(drift.body()))
    event = LifecycleEvent("m-promote-10-hat", "m", "promote", "policy:promotion", "won", 2,
                           {"challenger": "hat", "test": "mcnemar_exact", "b": 1, "c": 9, "n": 500}, 105)
    schema("lifecycle").validate(wire(event.body()))


def test_every_example_in_the_doc_matches_its_schema():
    found = examples()
    assert set(found) >= {"features", "labels", "prediction", "drift", "version"}
    for name, body in found.items():
        schema(name).validate(body)


def test_the_prediction_and_drift_examples_have_every_member_the_code_writes():
    found = examples()
    assert set(found["prediction"]) == set(PREDICTIONS[0].body())
    drift = DriftEvent("i", "m", 0, "concept", "d", {}, {}, 0, 0, {}, {}, {}, "none", 0)
    assert set(found["drift"]) == set(drift.body())


def test_a_key_is_written_only_in_keyed_mode():
    """Single mode bodies stay byte for byte what they were; keyed ones name the key."""
    plain = Prediction("e1", "elec", 3, 120, True, {True: 0.7, False: 0.3}, 100, 105)
    keyed = Prediction("e1", "elec", 3, 120, True, {True: 0.7, False: 0.3}, 100, 105, key="customer-7")
    assert "key" not in plain.body()
    assert keyed.body() == {**plain.body(), "key": "customer-7"}
    schema("prediction").validate(wire(keyed.body()))
    drift = DriftEvent("m-drift-7-ADWIN@customer-7", "m", 1, "concept", "ADWIN", {}, {}, 7, 100,
                       {"kind": "labels", "partition": 0, "offset": 7}, {}, {}, "reset", 105, key="customer-7")
    assert drift.body()["key"] == "customer-7"
    schema("drift").validate(wire(drift.body()))
    assert "key" not in DriftEvent("i", "m", 0, "concept", "d", {}, {}, 0, 0, {}, {}, {}, "none", 0).body()
