"""Driftline's exception hierarchy: one root, specific leaves.

>>> from driftline.exceptions import DriftlineError, SnapshotIntegrityError
>>> issubclass(SnapshotIntegrityError, DriftlineError)
True
"""

from __future__ import annotations

__all__ = [
    "DriftlineError",
    "ConfigError",
    "BadEventError",
    "SnapshotError",
    "SnapshotIntegrityError",
    "SnapshotNotFoundError",
    "KafkaSetupError",
    "RegistryError",
    "LifecycleError",
]


class DriftlineError(Exception):
    """Root of every error Driftline raises on purpose."""


class ConfigError(DriftlineError, ValueError):
    """The configuration is invalid (unknown preset, bad import path, ...)."""


class BadEventError(DriftlineError):
    """An input message cannot be processed; it goes to the dead-letter topic.

    ``reason`` is a short stable code (``malformed_json``, ``missing_feature``, ...) that
    ops can count and alert on; ``detail`` is a human-readable explanation.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SnapshotError(DriftlineError):
    """A model snapshot could not be written or read."""


class SnapshotIntegrityError(SnapshotError):
    """A snapshot's signature does not verify: it was never unpickled."""


class SnapshotNotFoundError(SnapshotError):
    """The requested version does not exist in the store."""


class KafkaSetupError(DriftlineError):
    """Topics are missing or misconfigured (for example not co-partitioned)."""


class RegistryError(DriftlineError):
    """The model registry cannot be read or written, or has no such version or alias."""


class LifecycleError(DriftlineError):
    """A lifecycle command (promote, rollback, alias move) cannot be carried out.

    ``status`` is the HTTP status the admin API answers with.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
