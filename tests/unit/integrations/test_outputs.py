"""The adapters' messages carry the headers the contract documents (docs/asyncapi.json,
generated from docs/events.md) and the processor's bodies."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from driftline.core.events import InputRecord
from driftline.core.outputs import DeadLetter, DriftEvent, Prediction, ShadowPrediction
from driftline.integrations.outputs import to_message

DOC = json.loads((Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json").read_text())


def _documented(kind: str) -> set[str]:
    return set(DOC["components"]["messages"][kind]["headers"]["required"])


def test_prediction_drift_and_dead_letter_headers_are_the_documented_ones():
    prediction = Prediction("e1", "m", 2, 10, "a", {"a": 0.6, "b": 0.4}, 5, 7)
    kind, key, value, headers = to_message(prediction, "m")
    assert (kind, key, orjson.loads(value)) == ("predictions", b"e1", prediction.body())
    assert {h for h, _ in headers} == _documented("predictions")
    assert dict(headers)["dl_model_version"] == b"2"

    drift = DriftEvent("m-drift-9-ADWIN", "m", 2, "concept", "ADWIN", {}, {"width": 3.0}, 9, 100,
                       {"kind": "labels", "partition": 0, "offset": 9}, {}, {}, "reset", 110)
    kind, key, value, headers = to_message(drift, "m")
    assert (kind, key) == ("drift", b"m-drift-9-ADWIN")
    assert {h for h, _ in headers} == _documented("drift")
    assert dict(headers)["ce_id"] == b"m-drift-9-ADWIN"

    record = InputRecord("labels", 1, 4, 99, b"e1", b"{bad")
    kind, key, value, headers = to_message(DeadLetter(record, "malformed_json", "x"), "m")
    assert (kind, key, value) == ("dlq", b"e1", b"{bad")
    # dl_redacted: only on a redacted body; dl_instance: only on a release a global-mode predictor refused
    assert {h for h, _ in headers} == _documented("dlq") - {"dl_redacted", "dl_instance"}


def test_shadow_predictions_are_left_to_the_processor():
    shadow = ShadowPrediction.__new__(ShadowPrediction)
    assert to_message(shadow, "m") is None
