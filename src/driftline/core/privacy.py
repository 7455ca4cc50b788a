"""The privacy field policy, applied at ingress before anything is buffered (no I/O).

``[governance.privacy]`` gives each feature (inside ``features``) and each other body
member a policy: ``allow`` (the default), ``drop``, ``hmac`` or ``protected``. The engine
applies it while decoding a feature event, before the event is validated, predicted on,
buffered for its label or pickled with a snapshot:

- ``drop``: the field is removed;
- ``hmac``: the value becomes ``"hmac:<key id>:<hex HMAC-SHA256>"`` under the key from the
  environment (``key_env``); the key id is the first 8 hex digits of the key's sha256 (as the
  audit log names its key), so a rotation shows in the values themselves;
- ``protected``: the field is removed from what the model sees; the decoded event hands it to
  fairness (:attr:`~driftline.core.events.FeatureEvent.protected`), which keeps only the
  attribute's group (its bin or category) for the join and its counts.

Dead letters get :meth:`FieldPolicy.redact`: the same policy on the raw bytes (``protected``
removed, like ``drop``), unless ``dlq_raw``.

The key is never pickled. A policy pickled inside an engine comes back as the policy
currently in force for its deployment in this process (the one :func:`policy_for` built
from the running config last), so a restored or copied engine applies today's policy and
today's key, not the ones it was saved with.

>>> from driftline.config import PrivacyConfig
>>> policy = FieldPolicy(PrivacyConfig(features={"name": "drop", "ssn": "hmac", "sex": "protected"}),
...                      b"0123456789abcdef0123", "doc")
>>> features, protected = policy.apply({"x": 1.0, "name": "Ann", "ssn": "123-45-6789", "sex": "f"})
>>> sorted(features), protected
(['ssn', 'x'], {'sex': 'f'})
>>> features["ssn"][:14], len(features["ssn"])
('hmac:1bd8fd47:', 78)
>>> policy.redact(b'{"id": "e1", "features": {"x": "oops", "name": "Ann"}}')
(b'{"id":"e1","features":{"x":"oops"}}', ['features.name'])
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from driftline.config import DeploymentConfig, PrivacyConfig
from driftline.core.audit import key_id
from driftline.exceptions import ConfigError

__all__ = ["FieldPolicy", "policy_for", "UNPARSED"]

# The dead letter's redaction note when the body could not be read (nothing of it is kept).
UNPARSED = "<unparsed body withheld>"
_HEX = 64  # hex digits of an HMAC-SHA256

# Deployment name -> the policy built from the running config (None: no policy). See the
# module docstring: it is what an unpickled policy becomes, so the key never travels.
_ACTIVE: dict[str, FieldPolicy | None] = {}


def policy_for(config: DeploymentConfig) -> FieldPolicy | None:
    """The deployment's policy (None when every field is ``allow``), now the one in force.

    Reads the HMAC key: a missing or short key is a one-line :class:`ConfigError` here,
    at startup.
    """
    privacy = config.governance.privacy
    policy = FieldPolicy(privacy, privacy.hmac_key(), config.name) if privacy.active else None
    _ACTIVE[config.name] = policy
    return policy


def _restored(deployment: str, config: PrivacyConfig) -> FieldPolicy | None:
    if deployment in _ACTIVE:
        return _ACTIVE[deployment]
    return FieldPolicy(config, None, deployment)  # hmac fields then fail loudly, never pass through


class FieldPolicy:
    """One deployment's field policy with its HMAC key (see the module docstring)."""

    def __init__(self, config: PrivacyConfig, key: bytes | None, deployment: str = "",
                 check_only: bool = False) -> None:
        self.config = config
        # check_only: no key; hmac values become a fixed placeholder (a producer checking its
        # events against the deployment's schema, runtime/publisher.py).
        self.check_only = check_only
        self.deployment = deployment
        self._key = key
        self.key_id = key_id(key) if key else None
        self._prefix = f"hmac:{self.key_id}:"
        self._features = {n: a for n, a in config.features.items() if a != "allow"}
        self._body = {n: a for n, a in config.body.items() if a != "allow"}

    def __reduce__(self) -> tuple[Any, ...]:
        return _restored, (self.deployment, self.config)

    def pseudonym(self, value: Any) -> str:
        """``hmac:<key id>:<hex>`` of a value (a string as UTF-8, anything else as its JSON).

        A value that already is a pseudonym under this key is kept (redacting twice is a no-op).
        """
        if self._key is None:
            if self.check_only:
                return self._prefix + "0" * _HEX
            raise ConfigError(f"privacy HMAC key not loaded for deployment {self.deployment!r}: "
                              f"set {self.config.key_env} and restart")
        if isinstance(value, str):
            if value.startswith(self._prefix) and len(value) == len(self._prefix) + _HEX:
                return value
            data = value.encode()
        else:
            data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        return self._prefix + hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def _apply(self, fields: dict[str, Any], policy: dict[str, str], prefix: str, seen: list[str] | None,
               protected: dict[str, Any] | None) -> dict[str, Any] | None:
        """Apply ``policy`` to ``fields`` in place; protected values move to ``protected``."""
        for name, action in policy.items():
            if name not in fields:
                continue
            if seen is not None:
                seen.append(prefix + name)
            if action == "hmac":
                fields[name] = self.pseudonym(fields[name])
                continue
            value = fields.pop(name)
            if action == "protected" and protected is not None:
                protected[name] = value
        return protected

    def apply(self, features: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The features the model may see (``features``, changed in place) and the protected
        ones (None when the event has none)."""
        if not self._features:
            return features, None
        protected = self._apply(features, self._features, "", None, {})
        return features, protected or None

    def redact(self, value: bytes | None) -> tuple[bytes | None, list[str]]:
        """A raw event body as a dead letter may keep it, and the fields redacted.

        A body with no field under the policy comes back unchanged (same bytes, no names);
        one that cannot be read as a JSON object is withheld whole (None, [:data:`UNPARSED`]).

        >>> from driftline.config import PrivacyConfig
        >>> FieldPolicy(PrivacyConfig(body={"email": "drop"}), None).redact(b'{"id": 1, "email": ')
        (None, ['<unparsed body withheld>'])
        """
        if value is None:
            return None, []
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None, [UNPARSED]
        if type(body) is not dict:
            return None, [UNPARSED]
        seen: list[str] = []
        self._apply(body, self._body, "", seen, None)
        features = body.get("features")
        if type(features) is dict:
            self._apply(features, self._features, "features.", seen, None)
        if not seen:
            return value, []
        return orjson.dumps(body), seen

    def fairness_groups(self, grouping: Any, protected: dict[str, Any]) -> dict[str, str] | None:
        """The groups of the protected fairness attributes (what the join buffer may keep for
        fairness): ``grouping`` is the fairness monitor's
        :class:`~driftline.core.fairness.counts.Grouping`; None when no attribute is protected."""
        names = [a.name for a in grouping.attributes]
        if not any(n in protected for n in names):
            return None
        keys = grouping.keys(protected)
        return {n: k for n, k in zip(names, keys) if n in protected}
