"""What every configuration class shares: frozen and strict; secrets come from the environment."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

from driftline.exceptions import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Secrets shorter than this are refused: the log redaction (observability/logs.py) replaces a
# secret wherever it appears, and a short one appears everywhere (a key "k" redacts every k).
MIN_SECRET_BYTES = 16


def secret_from_env(env: str, what: str, required: bool = True) -> bytes | None:
    """A secret from the environment variable ``env``: missing (when ``required``) or shorter
    than :data:`MIN_SECRET_BYTES` is a one-line :class:`ConfigError`.

    >>> import os
    >>> os.environ["DOCTEST_SECRET"] = "short"
    >>> secret_from_env("DOCTEST_SECRET", "doctest key")
    Traceback (most recent call last):
    ...
    driftline.exceptions.ConfigError: doctest key in DOCTEST_SECRET is 5 bytes: use at least 16 (e.g. `openssl rand -hex 32`)
    """
    value = os.environ.get(env, "")
    if not value:
        if required:
            raise ConfigError(f"{what} missing: set the {env} environment variable")
        return None
    key = value.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(f"{what} in {env} is {len(key)} bytes: use at least {MIN_SECRET_BYTES} "
                          "(e.g. `openssl rand -hex 32`)")
    return key
