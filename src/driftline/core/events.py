"""Input records and the events decoded from them; validation that routes bad input.

Decoding never raises anything but :class:`~driftline.exceptions.BadEventError`, whose
``reason`` is the code written on the dead-letter record.

>>> schema = EventSchema(features={"x": "num", "day": "cat"})
>>> ev = decode_features(b'{"id": "e1", "features": {"x": 1.5, "day": "mon"}}', schema, "m")
>>> ev.id, ev.features
('e1', {'x': 1.5, 'day': 'mon'})
>>> decode_features(b'{"id": "e1", "features": {"x": "a", "day": "mon"}}', schema, "m")
Traceback (most recent call last):
...
driftline.exceptions.BadEventError: mistyped_feature: feature 'x' must be a number, got str
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from driftline.exceptions import BadEventError

__all__ = [
    "InputRecord",
    "FeatureEvent",
    "LabelEvent",
    "EventSchema",
    "decode_features",
    "decode_label",
    "decode_protected",
]

Kind = Literal["features", "labels", "protected"]


@dataclass(slots=True)  # not frozen: a frozen init costs 4x, and these are made per event
class InputRecord:
    """One message read from a features, labels or protected partition (no Kafka types)."""

    kind: Kind
    partition: int
    offset: int
    timestamp: int  # event time, epoch milliseconds
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class FeatureEvent:
    id: str
    features: dict[str, Any]
    # The fields [governance.privacy] marks ``protected`` (core/privacy.py): kept from the model,
    # read by fairness only. None when the event has none (or no policy applies).
    protected: dict[str, Any] | None = None


@dataclass(slots=True)
class LabelEvent:
    id: str
    label: Any


@dataclass(frozen=True)
class EventSchema:
    """What a valid event looks like for one deployment.

    ``features`` maps a name to ``"num"`` or ``"cat"``; empty means schema-less (any
    finite number or string). ``classes`` restricts classification labels when set.
    """

    features: dict[str, str] = field(default_factory=dict)
    classes: tuple[Any, ...] = ()
    task: str = "classification"
    max_bytes: int = 256 * 1024
    max_abs_value: float = 1e12


def _load(value: bytes | None, schema: EventSchema, model: str) -> tuple[str, dict[str, Any]]:
    """The event's id and its parsed body, once the envelope (size, JSON, id, model) is valid."""
    if value is None:
        raise BadEventError("empty_payload", "message has no value")
    if len(value) > schema.max_bytes:
        raise BadEventError("oversized", f"{len(value)} bytes > limit of {schema.max_bytes}")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        # Python's json.dumps writes NaN/Infinity by default; name that case precisely.
        rest = value[exc.pos :].lstrip(b"-") if exc.pos is not None else b""
        if "infinity" in str(exc) or rest.startswith((b"NaN", b"Infinity")):
            raise BadEventError("non_finite_number", f"NaN or infinite number: {exc}") from None
        raise BadEventError("malformed_json", str(exc)) from None
    if type(body) is not dict:
        raise BadEventError("malformed_event", f"expected a JSON object, got {type(body).__name__}")
    event_id = body.get("id")
    if type(event_id) is not str or not event_id:
        raise BadEventError("missing_id", "'id' must be a non-empty string")
    named = body.get("model")
    if named is not None and named != model:
        raise BadEventError("unknown_model", f"event names model {named!r}, this is {model!r}")
    return event_id, body


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Exact types accepted per declared kind. orjson only ever yields these (and never NaN or
# infinity: it rejects them), so a ``type(v) in ...`` test is a complete check.
_ACCEPTED = {"num": (int, float), "cat": (str, int), None: (int, float, str)}
_EXPECTED = {"num": "a number", "cat": "a category", None: "a number or a string"}


def _reject(name: str, value: Any, kind: str | None) -> BadEventError:
    got = "null" if value is None else type(value).__name__
    return BadEventError("mistyped_feature", f"feature {name!r} must be {_EXPECTED[kind]}, got {got}")


def decode_features(value: bytes | None, schema: EventSchema, model: str, policy: Any = None) -> FeatureEvent:
    """Parse and validate a feature event.

    ``policy``: the deployment's privacy :class:`~driftline.core.privacy.FieldPolicy`, applied
    before validation (a dropped or protected field is not a feature of the model).
    """
    event_id, body = _load(value, schema, model)
    features = body.get("features")
    if type(features) is not dict:
        raise BadEventError("missing_features", "'features' must be a JSON object")
    protected = None
    if policy is not None:
        features, protected = policy.apply(features)
    # One pass checks types and magnitudes. A mistyped feature anywhere wins over a value out
    # of range (the dead-letter reason does not depend on the order of the features).
    # One absurd magnitude (1e300) drives a linear model's weights to NaN for good; refuse it.
    # (Categories may be large integers: they are labels, not magnitudes.)
    limit = schema.max_abs_value
    too_large: str | None = None
    declared = schema.features
    if declared:
        if features.keys() != declared.keys():
            missing = [name for name in declared if name not in features]
            if missing:
                raise BadEventError("missing_feature", f"missing {', '.join(sorted(missing))}")
            extra = [name for name in features if name not in declared]
            raise BadEventError("unknown_feature", f"unexpected {', '.join(sorted(extra))}")
        for name, feature in features.items():
            kind = declared[name]
            if type(feature) not in _ACCEPTED[kind]:
                raise _reject(name, feature, kind)
            if kind == "num" and too_large is None and not -limit <= feature <= limit:
                too_large = name
    else:
        for name, feature in features.items():
            kind = type(feature)
            if kind is str:
                continue
            if kind is not float and kind is not int:
                raise _reject(name, feature, None)
            if too_large is None and not -limit <= feature <= limit:
                too_large = name
    if too_large is not None:
        raise BadEventError("out_of_range", f"feature {too_large!r} = {features[too_large]!r} exceeds +/-{limit:g}")
    return FeatureEvent(event_id, features, protected)


def decode_label(value: bytes | None, schema: EventSchema, model: str) -> LabelEvent:
    """Parse and validate a label event.

    >>> decode_label(b'{"id": "e1", "label": true}', EventSchema(), "m").label
    True
    >>> decode_label(b'{"id": "e1", "label": 2}', EventSchema(classes=(0, 1)), "m")
    Traceback (most recent call last):
    ...
    driftline.exceptions.BadEventError: unknown_class: label 2 is not one of [0, 1]
    """
    event_id, body = _load(value, schema, model)
    if "label" not in body:
        raise BadEventError("missing_label", "'label' is required")
    label = body["label"]
    if schema.task == "regression":
        if not _is_number(label) or not math.isfinite(label):
            raise BadEventError("mistyped_label", f"label must be a finite number, got {label!r}")
    else:
        if not isinstance(label, (str, int, bool)):
            raise BadEventError(
                "mistyped_label", f"label must be a string, integer or boolean, got {label!r}"
            )
        if schema.classes and not any(label == c and type(label) is type(c) for c in schema.classes):
            raise BadEventError("unknown_class", f"label {label!r} is not one of {list(schema.classes)}")
    return LabelEvent(event_id, label)


_ATTRIBUTE_TYPES = (str, int, float, bool, type(None))


def decode_protected(value: bytes | None, schema: EventSchema, model: str) -> tuple[str, dict[str, Any]]:
    """Parse and validate a record of the protected side topic: its event id and attributes.

    >>> decode_protected(b'{"id": "e1", "attributes": {"sex": "f", "age": 34}}', EventSchema(), "m")
    ('e1', {'sex': 'f', 'age': 34})
    >>> decode_protected(b'{"id": "e1", "attributes": {"sex": ["f"]}}', EventSchema(), "m")
    Traceback (most recent call last):
    ...
    driftline.exceptions.BadEventError: mistyped_attribute: attribute 'sex' must be a string, number, boolean or null
    """
    event_id, body = _load(value, schema, model)
    attributes = body.get("attributes")
    if type(attributes) is not dict:
        raise BadEventError("missing_attributes", "'attributes' must be a JSON object")
    for name, attribute in attributes.items():
        if type(attribute) not in _ATTRIBUTE_TYPES:
            raise BadEventError("mistyped_attribute",
                                f"attribute {name!r} must be a string, number, boolean or null")
    return event_id, attributes
