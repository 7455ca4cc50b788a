"""Global mode's trainer: the single-mode processor, releasing model versions instead of
predictions (docs/scaling.md, "Global mode").

It is a :class:`~driftline.runtime.processor.Processor` over every partition with a
:class:`~driftline.core.trainer.TrainerEngine`: the same event-time merge, join, learning,
metrics, drift detection, recovery and fencing. What changes:

* no predictions are published (the engine still predicts each event for its metrics);
* each :class:`~driftline.core.trainer.ModelRelease` goes out inside the transaction of the
  input that made it: the serving model is sealed (signed, versions/signing.py) and either
  rides inline in its ``.versions`` message or is written to the release store first
  (``<model>.global`` in the version store) and the message names it;
* between releases the watermark goes out as a heartbeat (key ``heartbeat``, signed with
  the releases' key) at most every ``heartbeat_ms``, so predictors know time moved on: it
  opens the next unit of work, and commits with the records processed after it (a transaction commit costs a broker round
  trip; a commit of its own per heartbeat took 7% of the trainer's time in a profile of
  20,000 pre-loaded events);
* the processor's own recovery versions are announced on ``.checkpoints`` (key
  ``trainer``), so ``.versions`` holds only what predictors serve.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from typing import Any

import orjson
from prometheus_client import REGISTRY, CollectorRegistry

from driftline.config import DeploymentConfig
from driftline.core.trainer import ModelRelease, TrainerEngine
from driftline.exceptions import ConfigError, SnapshotError
from driftline.observability.global_metrics import GlobalMetrics
from driftline.runtime.checkpointer import Checkpointer, source_key
from driftline.runtime.collector import ce_headers
from driftline.runtime.processor import Processor
from driftline.versions.signing import seal, sign_heartbeat
from driftline.versions.store import VersionStore

__all__ = ["Trainer", "release_store", "HEARTBEAT_KEY"]

log = logging.getLogger("driftline.trainer")

HEARTBEAT_KEY = b"heartbeat"


def release_store(config: DeploymentConfig, signing_key: bytes) -> VersionStore:
    """Where released models too large to ride inline are kept."""
    return VersionStore(config.checkpoint.store_url, f"{config.name}.global", signing_key)


class Trainer(Processor):
    """The one learner of a global deployment."""

    def __init__(self, config: DeploymentConfig, signing_key: bytes, registry: CollectorRegistry = REGISTRY,
                 **kwargs: Any) -> None:
        if config.scale.mode != "global":
            raise ConfigError("the trainer role needs [scale] mode = \"global\"")
        self._announced: float = float("-inf")  # highest watermark published (release or heartbeat)
        self._last_beat = 0.0
        super().__init__(config, signing_key, registry, engine_factory=TrainerEngine, **kwargs)
        self.releases = release_store(config, signing_key)
        self.global_metrics = GlobalMetrics(config.name, registry)
        self.collector.handlers[ModelRelease] = self._release

    def _checkpointer(self, store: VersionStore, index: int | None) -> Checkpointer:
        checkpointer = super()._checkpointer(store, index)
        checkpointer.announce_to = self._recovery_pointer
        cut_if_due = checkpointer.maybe

        def maybe(engine, positions, order_offset, now) -> None:
            cut_if_due(engine, positions, order_offset, now)
            self._heartbeat(engine)

        checkpointer.maybe = maybe
        return checkpointer

    @property
    def released(self) -> int:
        """The latest version released."""
        engine = self.engine
        return engine.release if engine is not None else 0

    # -- outputs -------------------------------------------------------------------------

    def _release(self, release: ModelRelease, now_ms: int) -> None:
        """Seal the model and publish version n in the open unit of work."""
        cfg, name = self.config, self.config.name
        meta = {"version": release.version, "watermark": release.watermark, "examples": release.examples,
                "model_class": type(release.model).__name__}
        blob = seal(meta, release.model, self._signing_key)
        body: dict[str, Any] = {
            "model": name, **meta, "metrics": release.metrics,
            "position": {"source": source_key(release.source), "offset": release.offset},
            "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob), "created_at": now_ms,
        }
        if len(blob) <= cfg.scale.inline_version_bytes:
            body["inline"] = base64.b64encode(blob).decode()
        else:
            self._store(release.version, blob)
            body["store"] = self.releases.uri(release.version)
        headers = ce_headers("version", f"{name}/global/v{release.version}", name, release.version, now_ms)
        self.work.produce(self.topics.versions, str(release.version).encode(), orjson.dumps(body), headers)
        self._announced = max(self._announced, release.watermark)
        self.global_metrics.releases.inc()
        self.global_metrics.watermark.set(release.watermark)

    def _store(self, version: int, blob: bytes) -> None:
        """Write a release to the store; a restarted trainer finds the same bytes there."""
        try:
            self.releases.put(version, blob)
        except SnapshotError:
            try:
                same = self.releases.read(version) == blob
            except SnapshotError:
                same = False
            if not same:
                raise

    def _heartbeat(self, engine: TrainerEngine) -> None:
        """The watermark, when it moved past the last one published (at the start of a unit of work)."""
        watermark = engine.stream_time
        now = time.monotonic()
        if watermark <= self._announced or now - self._last_beat < self.config.scale.heartbeat_ms / 1000:
            return
        now_ms = self.clock()
        name = self.config.name
        body = {"model": name, "heartbeat": True, "watermark": watermark, "version": engine.release,
                "created_at": now_ms, "signature": sign_heartbeat(name, watermark, engine.release, self._signing_key)}
        headers = ce_headers("heartbeat", f"{name}/heartbeat/{watermark}", name, engine.release, now_ms)
        self.work.ensure_open()  # the loop commits it, with the records that follow (one commit, not two)
        self.work.produce(self.topics.versions, HEARTBEAT_KEY, orjson.dumps(body), headers)
        self._announced, self._last_beat = watermark, now
        self.global_metrics.heartbeats.inc()
        self.global_metrics.watermark.set(watermark)

    def _recovery_pointer(self, meta: dict[str, Any], now_ms: int) -> None:
        body = {"task": "trainer", "version": meta["version"], "store": self.store.model,
                "positions": meta["positions"], "examples_seen": meta["examples_seen"],
                "created_at": meta["created_at"]}
        headers = ce_headers("checkpoint", f"{self.config.name}/trainer/v{meta['version']}", self.config.name,
                             meta["version"], now_ms)
        self.work.produce(self.topics.checkpoints, b"trainer", orjson.dumps(body), headers)
