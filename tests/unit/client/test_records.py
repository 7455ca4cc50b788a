"""The typed records match docs/schemas/: required members are required fields, every field
is a member of the schema, and the examples of docs/events.md parse."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from driftline.client.records import RECORD_TYPES, DriftEvent, GlobalRelease, Heartbeat, Prediction, VersionAnnouncement, parse_body
from driftline.exceptions import RecordFormatError

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


def _fields(cls) -> tuple[set[str], set[str]]:
    fields = [f for f in dataclasses.fields(cls) if f.name != "body"]
    required = {f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    return required, {f.name for f in fields}


@pytest.mark.parametrize("cls", sorted(set(RECORD_TYPES.values()), key=lambda c: c.__name__))
def test_fields_are_the_schema_members(cls):
    schema = json.loads((SCHEMAS / f"{cls.schema}.schema.json").read_text())
    required, fields = _fields(cls)
    members = set(schema["properties"])
    if "oneOf" in schema:  # .versions: the typed record is the first body (a snapshot version)
        assert schema["oneOf"][0]["title"] == "Snapshot version"
        schema = schema["oneOf"][0]
        members -= {m for m, p in json.loads((SCHEMAS / f"{cls.schema}.schema.json").read_text())["properties"]
                    .items() if p["description"].startswith(("Global release", "Heartbeat"))}
    assert required == set(schema["required"])
    assert fields == members


@pytest.mark.parametrize("cls,title", [(GlobalRelease, "Global release"), (Heartbeat, "Heartbeat")])
def test_global_bodies_are_their_schema_branch(cls, title):
    schema = json.loads((SCHEMAS / "version.schema.json").read_text())
    branch = next(b for b in schema["oneOf"] if b["title"] == title)
    required, fields = _fields(cls)
    assert required == set(branch["required"])
    optional = {"inline", "store"} if cls is GlobalRelease else set()
    assert fields == set(branch["required"]) | optional
    assert fields <= set(schema["properties"])


def test_versions_bodies_are_told_apart():
    heartbeat = {"model": "m", "heartbeat": True, "watermark": 9, "version": 2, "created_at": 10, "signature": "0" * 64}
    release = {"model": "m", "version": 3, "watermark": 20, "examples": 30, "model_class": "Pipeline",
               "metrics": {}, "position": {"source": "labels:1", "offset": 29}, "sha256": "0" * 64, "bytes": 5,
               "created_at": 21, "store": "file:///x"}
    snapshot = {"name": "m", "version": 2, "parent": 1, "created_at": 5, "trigger": "periodic",
                "examples_seen": 10, "positions": {}, "offset_range": {}, "event_time_range": [1, 9], "params": {},
                "metrics": {}, "counters": {}, "payload_bytes": 3, "payload_sha256": "0" * 64}
    assert isinstance(parse_body("versions", heartbeat), Heartbeat)
    assert parse_body("versions", release).store == "file:///x"
    assert isinstance(parse_body("versions", snapshot), VersionAnnouncement)
    with pytest.raises(RecordFormatError, match="version body lacks examples"):
        parse_body("versions", {k: v for k, v in release.items() if k != "examples"})


def test_an_example_of_each_parses():
    prediction = Prediction.from_body({"id": "e1", "model": "m", "model_version": 1, "model_examples": 0,
                                       "prediction": None, "proba": {}, "event_time": 1, "predicted_at": 2})
    assert prediction.prediction is None and prediction.variant == "champion"
    version = VersionAnnouncement.from_body({
        "name": "m", "version": 2, "parent": 1, "created_at": 5, "trigger": "periodic", "examples_seen": 10,
        "positions": {"labels:0": 10}, "offset_range": {"labels:0": [0, 10]}, "event_time_range": [1, 9],
        "params": {}, "metrics": {"accuracy": 0.5}, "counters": {"labels": 10}, "payload_bytes": 3,
        "payload_sha256": "0" * 64})
    assert version.model_class is None and version.positions == {"labels:0": 10}
    with pytest.raises(RecordFormatError, match="drift body lacks kind"):
        DriftEvent.from_body({"id": "x"})
    with pytest.raises(RecordFormatError, match="not a JSON object"):
        Prediction.from_body([1])


def test_unknown_members_are_kept_and_ignored():
    body = {"id": "e1", "model": "m", "model_version": 1, "model_examples": 0, "prediction": 1,
            "proba": {"1": 1.0}, "event_time": 1, "predicted_at": 2, "future_member": {"a": 0.1}}
    prediction = Prediction.from_body(body)
    assert prediction.body["future_member"] == {"a": 0.1}
    assert prediction == Prediction.from_body({k: v for k, v in body.items() if k != "future_member"})
