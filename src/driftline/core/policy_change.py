"""Which parts of a deployment's config are its policies, and what changed since the audit
log last recorded them (no I/O; runtime/lifecycle.py writes the ``policy`` entry).

The governed config is every setting that decides what the system does with an event or a
model without an operator command: the drift section (detectors, the drift policy, its
guard, performance rules, data drift), the lifecycle's promotion test, challengers,
alert rules and retention, the join buffer's bounds, and ``[governance]`` (explanations,
audit, fairness and its mitigation, erasure, the privacy field policy and retention), plus
the id of the privacy HMAC key (a rotation is a policy change). It is flattened to dotted
keys (lists stay whole); its ``digest`` is the sha256 of its canonical JSON (sorted keys,
compact), so anyone holding the config file can recompute it. The config holds no secret
values (keys and tokens come from the environment; only the variables' names are here)
and no feature values; the entry carries digests and key names, never values.

>>> from driftline.config import DeploymentConfig
>>> old = governed(DeploymentConfig(name="m"))
>>> new = governed(DeploymentConfig(name="m", drift={"policy": "none"}))
>>> change = policy_change(new, None, first=True)
>>> change["previous"] is None and change["reason"]
'first'
>>> later = policy_change(new, change)
>>> later is None
True
>>> again = policy_change(old, change)
>>> again["changed"], again["previous"] == change["digest"]
(['drift.policy'], True)
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from driftline.config import DeploymentConfig

__all__ = ["GOVERNED", "digest", "governed", "policy_change"]

# Sections (or single settings) of the config that are policies, as dotted paths.
GOVERNED = ("drift", "join", "lifecycle.promotion", "lifecycle.challengers", "lifecycle.alert_rules",
            "lifecycle.keep_last", "governance")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out)
    else:
        out[prefix] = value


def governed(config: DeploymentConfig, privacy_key_id: str | None = None) -> dict[str, Any]:
    """The governed settings as ``{dotted key: value}`` (values as JSON), with the privacy
    HMAC key's id when a field is hashed."""
    dumped = config.model_dump(mode="json")
    out: dict[str, Any] = {}
    for path in GOVERNED:
        value: Any = dumped
        for part in path.split("."):
            value = value[part]
        _flatten(path, value, out)
    if privacy_key_id is not None:
        out["governance.privacy.key_id"] = privacy_key_id
    return out


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def digest(flat: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of the governed settings."""
    return hashlib.sha256(_canonical(flat)).hexdigest()


def _fingerprints(flat: dict[str, Any]) -> dict[str, str]:
    # Tell which keys changed between two entries; they identify a value, they do not hide it.
    return {key: hashlib.sha256(_canonical(value)).hexdigest()[:16] for key, value in flat.items()}


def policy_change(flat: dict[str, Any], last: dict[str, Any] | None, first: bool = False) -> dict[str, Any] | None:
    """The record of a ``policy`` audit entry, or None when ``flat`` is what ``last`` (the
    record of the newest ``policy`` entry, None if the log holds none) recorded.

    ``first``: the log holds no entry before (else an older policy entry may have aged out
    of the topic's retention: the reason says so and ``changed`` lists every key)."""
    new = digest(flat)
    if last is not None and last.get("digest") == new:
        return None
    fingerprints = _fingerprints(flat)
    if last is None:
        reason, previous, changed = ("first" if first else "no earlier policy entry retained"), None, sorted(flat)
    else:
        before = last.get("fields", {})
        reason, previous = "changed", last.get("digest")
        changed = sorted(k for k in set(fingerprints) | set(before) if fingerprints.get(k) != before.get(k))
    return {"action": "policy", "reason": reason, "digest": new, "previous": previous,
            "changed": changed, "fields": fingerprints}
