"""Model versions: signed snapshots in a store, loaded only after their HMAC verifies."""

from driftline.versions.store import VersionStore

__all__ = ["VersionStore"]
