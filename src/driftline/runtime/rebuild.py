"""Rebuild a registry from the deployment's compacted topics, on any instance.

Every fact the registry indexes is also on Kafka: a single-mode version's metadata on
``.versions`` (key = version), a keyed task's latest version as a pointer on
``.checkpoints`` (key = task, naming the task's store), the audit trail on ``.lifecycle``
(key = event id). A worker on another machine, or one whose local registry is gone,
reads the three topics and indexes what they name; the snapshots themselves stay in the
shared version store. Registering is idempotent, so rebuilding into a registry that
already holds some rows only adds the missing ones.

In global mode ``.versions`` holds the trainer's releases and heartbeats instead: they are
not registry versions (the trainer's recovery versions are its ``.checkpoints`` pointer,
key ``trainer``), so they are skipped.

Not rebuilt: aliases and tags (set by lifecycle commands on the registry only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from driftline.config import DeploymentConfig
from driftline.runtime.tail import read_committed
from driftline.versions.store import VersionStore

__all__ = ["Rebuilt", "rebuild_registry"]


@dataclass(frozen=True)
class Rebuilt:
    """What a rebuild added (rows already present are not counted)."""

    versions: int
    task_versions: int
    lifecycle_events: int


def _latest_by_key(config: DeploymentConfig, topic: str, idle_s: float) -> dict[bytes, dict[str, Any]]:
    """The compacted view of ``topic``: the last committed body per key (tombstones drop it)."""
    out: dict[bytes, dict[str, Any]] = {}
    for m in read_committed(config, topic, idle_s=idle_s):
        if m.value() is None:
            out.pop(m.key(), None)
        else:
            out[m.key()] = orjson.loads(m.value())
    return out


def rebuild_registry(config: DeploymentConfig, registry: Any, idle_s: float = 2.0) -> Rebuilt:
    """Index into ``registry`` every version and lifecycle event the topics name."""
    url = config.checkpoint.store_url
    versions = 0
    store = VersionStore(url, config.name, key=b"")
    for meta in _latest_by_key(config, config.topics.versions, idle_s).values():
        if meta.get("heartbeat") is True or "watermark" in meta:  # global mode's releases and heartbeats
            continue
        versions += registry.register(meta, source=store.uri(int(meta["version"])))
    task_versions = 0
    for pointer in _latest_by_key(config, config.topics.checkpoints, idle_s).values():
        # The pointer names the task's store and its latest version; the store holds the
        # versions before it too (each with its metadata), so the task's history is indexed.
        task_versions += len(registry.sync(VersionStore(url, pointer["store"], key=b"")))
    events = 0
    for body in _latest_by_key(config, config.topics.lifecycle, idle_s).values():
        events += registry.record_event(body)
    return Rebuilt(versions, task_versions, events)
