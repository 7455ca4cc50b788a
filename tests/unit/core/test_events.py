"""Decoding and validation: every dead-letter reason code, and nothing but BadEventError."""

from __future__ import annotations

import json

import orjson

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.core.events import EventSchema, FeatureEvent, LabelEvent, decode_features, decode_label
from driftline.exceptions import BadEventError

NUM_CAT = EventSchema(features={"x": "num", "day": "cat"})
FREE = EventSchema()
BINARY = EventSchema(classes=(0, 1))
REGRESSION = EventSchema(task="regression")


def reason_of(decode, value: bytes | None, schema: EventSchema) -> str:
    with pytest.raises(BadEventError) as info:
        decode(value, schema, "m")
    return info.value.reason


def test_valid_events_decode():
    ev = decode_features(b'{"id": "e1", "model": "m", "features": {"x": 2, "day": 3}}', NUM_CAT, "m")
    assert (ev.id, ev.features) == ("e1", {"x": 2, "day": 3})
    free = decode_features(b'{"id": "e", "features": {"a": -0.5, "b": "s"}}', FREE, "m")
    assert free.features == {"a": -0.5, "b": "s"}
    assert decode_label(b'{"id": "e", "label": "cat"}', FREE, "m").label == "cat"
    assert decode_label(b'{"id": "e", "label": 1}', BINARY, "m").label == 1
    assert decode_label(b'{"id": "e", "label": -2.5}', REGRESSION, "m").label == -2.5


FEATURE_CASES = [
    (None, FREE, "empty_payload"),
    (b"{" + b" " * 300 + b"}", EventSchema(max_bytes=100), "oversized"),
    (b'{"id": "e1", "features": {', FREE, "malformed_json"),
    (b"\xff\xfe", FREE, "malformed_json"),
    (b"[1, 2]", FREE, "malformed_event"),
    (b'"e1"', FREE, "malformed_event"),
    (b'{"features": {}}', FREE, "missing_id"),
    (b'{"id": "", "features": {}}', FREE, "missing_id"),
    (b'{"id": 7, "features": {}}', FREE, "missing_id"),
    (b'{"id": "e", "model": "other", "features": {}}', FREE, "unknown_model"),
    (b'{"id": "e"}', FREE, "missing_features"),
    (b'{"id": "e", "features": [1, 2]}', FREE, "missing_features"),
    (b'{"id": "e", "features": {"x": 1}}', NUM_CAT, "missing_feature"),
    (b'{"id": "e", "features": {"x": 1, "day": "mon", "z": 0}}', NUM_CAT, "unknown_feature"),
    (b'{"id": "e", "features": {"x": "1", "day": "mon"}}', NUM_CAT, "mistyped_feature"),
    (b'{"id": "e", "features": {"x": true, "day": "mon"}}', NUM_CAT, "mistyped_feature"),
    (b'{"id": "e", "features": {"x": 1, "day": 1.5}}', NUM_CAT, "mistyped_feature"),
    (b'{"id": "e", "features": {"x": 1, "day": false}}', NUM_CAT, "mistyped_feature"),
    (b'{"id": "e", "features": {"a": null}}', FREE, "mistyped_feature"),
    (b'{"id": "e", "features": {"a": [1]}}', FREE, "mistyped_feature"),
]


@pytest.mark.parametrize(("value", "schema", "reason"), FEATURE_CASES)
def test_feature_reasons(value, schema, reason):
    assert reason_of(decode_features, value, schema) == reason


LABEL_CASES = [
    (None, FREE, "empty_payload"),
    (b"{", FREE, "malformed_json"),
    (b"3", FREE, "malformed_event"),
    (b'{"label": true}', FREE, "missing_id"),
    (b'{"id": "e", "model": "other", "label": true}', FREE, "unknown_model"),
    (b'{"id": "e"}', FREE, "missing_label"),
    (b'{"id": "e", "label": 0.5}', FREE, "mistyped_label"),
    (b'{"id": "e", "label": null}', FREE, "mistyped_label"),
    (b'{"id": "e", "label": [1]}', FREE, "mistyped_label"),
    (b'{"id": "e", "label": "yes"}', REGRESSION, "mistyped_label"),
    (b'{"id": "e", "label": true}', REGRESSION, "mistyped_label"),
    (b'{"id": "e", "label": 2}', BINARY, "unknown_class"),
    (b'{"id": "e", "label": "1"}', BINARY, "unknown_class"),
]


@pytest.mark.parametrize(("value", "schema", "reason"), LABEL_CASES)
def test_label_reasons(value, schema, reason):
    assert reason_of(decode_label, value, schema) == reason


def test_size_limit_is_inclusive():
    body = b'{"id": "e", "features": {}}'
    assert decode_features(body, EventSchema(max_bytes=len(body)), "m").id == "e"
    assert reason_of(decode_features, body, EventSchema(max_bytes=len(body) - 1)) == "oversized"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 400])
def test_non_finite_numbers_on_the_wire(literal):
    """orjson refuses NaN/Infinity (which Python's json.dumps writes) and numbers that
    overflow a double; the decoder names that case instead of calling it malformed."""
    value = b'{"id": "e", "features": {"a": ' + literal + b"}}"
    assert reason_of(decode_features, value, FREE) == "non_finite_number"
    assert reason_of(decode_label, b'{"id": "e", "label": ' + literal + b"}", REGRESSION) == "non_finite_number"


@pytest.mark.parametrize("value", [b'{"id": "BaNaNa", "features": {', b'{"id": "e", "label": "Infinity" oops}'])
def test_malformed_json_mentioning_nan_is_still_malformed(value):
    # regression: the reason was once guessed from b"NaN" appearing anywhere in the bytes
    assert reason_of(decode_features, value, FREE) == "malformed_json"


def test_reason_and_detail_are_exposed():
    with pytest.raises(BadEventError) as info:
        decode_features(b'{"id": "e", "features": {"x": 1}}', NUM_CAT, "m")
    assert info.value.reason == "missing_feature" and "day" in info.value.detail
    assert str(info.value).startswith("missing_feature: ")


@pytest.mark.parametrize(("label", "classes"), [(b"true", (0, 1)), (b"1", (False, True))])
def test_label_type_must_match_the_classes(label, classes):
    # regression: membership was tested with ==, and True == 1 in Python
    assert reason_of(decode_label, b'{"id": "e", "label": ' + label + b"}", EventSchema(classes=classes)) in (
        "unknown_class", "mistyped_label")


# -- property: decoding never raises anything but BadEventError --------------------------

SCHEMAS = st.sampled_from([FREE, NUM_CAT, BINARY, REGRESSION, EventSchema(max_bytes=64)])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
FIELDS = st.fixed_dictionaries(
    {}, optional={"id": JSON | st.just("e1"), "model": st.sampled_from(["m", "x"]) | JSON,
                  "label": JSON, "features": JSON | st.dictionaries(st.sampled_from(["x", "day", "z"]), JSON)},
)


def _decode_or_bad(value: bytes, schema: EventSchema) -> None:
    for decode, event_type in ((decode_features, FeatureEvent), (decode_label, LabelEvent)):
        try:
            event = decode(value, schema, "m")
        except BadEventError as exc:
            assert exc.reason and isinstance(exc.reason, str)
        else:
            assert isinstance(event, event_type) and isinstance(event.id, str) and event.id


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=200), schema=SCHEMAS)
def test_arbitrary_bytes_decode_or_raise_bad_event(value, schema):
    _decode_or_bad(value, schema)


@settings(max_examples=300, deadline=None)
@given(body=FIELDS | JSON, schema=SCHEMAS)
def test_arbitrary_json_decode_or_raise_bad_event(body, schema):
    _decode_or_bad(json.dumps(body).encode(), schema)  # stdlib json: also writes ints beyond 64 bits


@pytest.mark.parametrize("value", [b"1e300", b"-1e13", b"9000000000000000000"])
def test_absurd_magnitudes_are_out_of_range(value):
    body = b'{"id": "e", "features": {"x": ' + value + b"}}"
    with pytest.raises(BadEventError) as caught:
        decode_features(body, EventSchema(max_abs_value=1e12), "m")
    assert caught.value.reason == "out_of_range"


def test_values_at_the_limit_are_accepted():
    body = orjson.dumps({"id": "e", "features": {"x": 1e12, "y": -1e12, "s": "text"}})
    assert decode_features(body, EventSchema(max_abs_value=1e12), "m").features["x"] == 1e12


def test_large_integer_categories_are_not_magnitudes():
    body = b'{"id": "e", "features": {"c": 18446744073709551615}}'
    event = decode_features(body, EventSchema(features={"c": "cat"}, max_abs_value=1e12), "m")
    assert event.features["c"] == 2**64 - 1
