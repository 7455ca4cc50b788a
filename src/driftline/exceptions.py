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
    "DeliveryError",
    "SchemaMismatchError",
    "RecordFormatError",
    "RegistryError",
    "LifecycleError",
    "FencedError",
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


class DeliveryError(DriftlineError):
    """Messages handed to the producer were not acknowledged by the cluster.

    ``undelivered`` of ``total`` failed or had no delivery report in time.
    """

    def __init__(self, message: str, undelivered: int, total: int) -> None:
        super().__init__(message)
        self.undelivered = undelivered
        self.total = total


class SchemaMismatchError(DriftlineError, ValueError):
    """Data to publish does not match the deployment's declared schema (``[model] features``,
    ``classes``): the processor would dead-letter it."""


class RecordFormatError(DriftlineError, ValueError):
    """A record read from a Driftline topic does not have the shape of its schema
    (``docs/schemas/``): not JSON, or a required member missing."""


class RegistryError(DriftlineError):
    """The model registry cannot be read or written, or has no such version or alias."""


class LifecycleError(DriftlineError):
    """A lifecycle command (promote, rollback, alias move) cannot be carried out.

    ``status`` is the HTTP status the admin API answers with.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class FencedError(DriftlineError):
    """Another instance of the deployment initialised the same transactional.id: this one
    can publish nothing more and stops (exit code ``EXIT_FENCED``)."""
