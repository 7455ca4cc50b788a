"""The processor's lifecycle side: commands between batches, the registry, retention,
shadow predictions and lifecycle events on Kafka, and range replays for rollbacks.

Every command that changes the serving state is applied between two transactions and
followed at once by a version cut (trigger ``promote``, ``rollback`` or ``manual``); it is
acknowledged only after that version is stored, so recovery never re-applies it.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import KafkaError, TopicPartition

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord, decode_features
from driftline.core.ordering import EventTimeMerger, Source
from driftline.core.outputs import LifecycleEvent
from driftline.exceptions import DriftlineError, LifecycleError
from driftline.lifecycle.commands import Command, CommandQueue, SkipWindow
from driftline.lifecycle.registry import Registry, registry_path
from driftline.runtime.checkpointer import Checkpointer
from driftline.runtime.clients import make_consumer
from driftline.runtime.collector import OutputCollector
from driftline.runtime.unit_of_work import UnitOfWork
from driftline.versions.store import VersionStore

__all__ = ["LifecycleRuntime", "replay_range", "lifecycle_meta"]

log = logging.getLogger("driftline.lifecycle")


def _now_ms() -> int:
    return int(time.time() * 1000)


def lifecycle_meta(engine: Engine) -> dict[str, Any]:
    """What a version records for the serving history: stream time and traffic split."""
    arena = engine.arena
    variants = [[m.name, m.share] for m in arena.members.values() if m.share] if arena is not None else []
    challengers = [m.summary() for m in arena.members.values()] if arena is not None else []
    return {"stream_time": engine.stream_time, "variants": variants, "challengers": challengers,
            "champion": getattr(engine, "champion_origin", None)}


def replay_range(
    config: DeploymentConfig,
    engine: Engine,
    start: dict[Source, int],
    end: dict[Source, int],
    skip: SkipWindow | None = None,
    timeout_s: float = 120.0,
) -> tuple[Engine, dict[str, int]]:
    """Feed ``engine`` the input records in ``[start, end)`` per partition, in event-time
    order, leaving out the labels ``skip`` names; outputs are discarded. Returns the engine
    and counts (records replayed, labels skipped)."""
    topic_of = {"features": config.topics.features, "labels": config.topics.labels}
    kind_of = {v: k for k, v in topic_of.items()}
    sources = [s for s in end if end[s] > start.get(s, 0)]
    counts = {"replayed": 0, "skipped_labels": 0}
    if not sources:
        return engine, counts
    consumer = make_consumer(config, group_id=f"{config.group_id}.replay-{uuid.uuid4().hex[:8]}")
    merger = EventTimeMerger(list(end), max_idle_ms=0)  # the input is complete: nothing to wait for
    try:
        consumer.assign([TopicPartition(topic_of[k], p, start.get((k, p), 0)) for k, p in sources])
        remaining = set(sources)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise LifecycleError(f"replay timed out; still missing {sorted(remaining)}", status=504)
            for msg in consumer.consume(1000, timeout=0.2):
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise LifecycleError(f"replay: {msg.error().str()}", status=502)
                    continue
                source = (kind_of[msg.topic()], msg.partition())
                if source not in remaining or msg.offset() >= end[source]:
                    continue
                merger.push(InputRecord(source[0], source[1], msg.offset(), msg.timestamp()[1], msg.key(), msg.value()))
                if msg.offset() + 1 >= end[source]:
                    remaining.discard(source)
                    consumer.pause([TopicPartition(msg.topic(), msg.partition())])
    finally:
        consumer.close()
    while (record := merger.pop(lambda _s: 0, 0)) is not None:
        if skip is not None and skip.skips(record):
            counts["skipped_labels"] += 1
            continue
        engine.process(record, 0)
        counts["replayed"] += 1
    return engine, counts


class LifecycleRuntime:
    """The registry and the command queue of one running deployment.

    It is handed the runtime's parts (the version store, the output collector, the unit
    of work and the checkpointer) and never reaches into the processor: commands get the
    serving engine and return the engine that serves next (a rollback returns another).
    """

    def __init__(self, config: DeploymentConfig, store: VersionStore, collector: OutputCollector,
                 work: UnitOfWork, checkpointer: Checkpointer) -> None:
        self.config = config
        self.store = store
        self.collector = collector
        self.work = work
        self.checkpointer = checkpointer
        self.registry = Registry(registry_path(config))
        self.queue = CommandQueue()
        collector.on_lifecycle = self.registry.record_event
        checkpointer.on_version = self.on_version
        self._positions: dict[Source, int] = {}
        self._order_offset = 0

    def publish(self, event: LifecycleEvent) -> None:
        """Publish a lifecycle event in a unit of work of its own (between batches)."""
        self.work.begin()
        self.collector.lifecycle(event)
        self.checkpointer.commit()

    # -- versions ------------------------------------------------------------------------

    def on_version(self, stored: dict[str, Any]) -> None:
        """Index a version just cut; move ``champion`` to it (the newest version is what
        serves); tag promotions; apply retention."""
        store, name = self.store, self.config.name
        try:
            self.registry.sync(store)
            version = stored["version"]
            previous = [v for v in self.registry.versions(name) if v["version"] < version]
            changed = bool(previous) and previous[-1]["champion"] != stored.get("champion")
            if changed:  # promoted (by the policy or a command), swapped or rolled back
                self.registry.set_tag(name, version, "promoted", orjson.dumps(stored.get("champion")).decode())
            if self.registry.aliases(name).get("champion", 0) <= version:  # saves land in order
                self.registry.set_alias(name, "champion", version)
            keep = self.config.lifecycle.keep_last
            if keep:
                for old in self.registry.retention_candidates(name, keep):
                    store.delete(old)
                    self.registry.mark_deleted(name, old)
                    self.publish(self._event("retention_delete", "policy:retention", f"keep_last={keep}",
                                             {"version": old}, version))
        except DriftlineError as exc:  # the registry is an index: never stop the stream for it
            log.error("registry update failed", extra={"fields": {"error": str(exc)}})

    def _event(self, action: str, actor: str, reason: str, details: dict[str, Any],
               model_version: int) -> LifecycleEvent:
        return LifecycleEvent(
            id=f"{self.config.name}-{action}-{uuid.uuid4().hex[:12]}", model=self.config.name, action=action,
            actor=actor, reason=reason, model_version=model_version, details=details, at=_now_ms(),
        )

    # -- commands --------------------------------------------------------------------------

    def run_commands(self, engine: Engine, positions: dict[Source, int], order_offset: int) -> Engine:
        """Apply every queued command (between units of work) to ``engine`` at ``positions``;
        return the engine that serves next."""
        self._positions, self._order_offset = positions, order_offset
        while (command := self.queue.pop()) is not None:
            try:
                engine, command.result = self._apply(command, engine)
            except DriftlineError as exc:
                command.error = exc if isinstance(exc, LifecycleError) else LifecycleError(str(exc))
            except Exception as exc:  # noqa: BLE001 - report it to the caller, keep the stream going
                log.exception("command failed")
                command.error = LifecycleError(f"{command.action} failed: {exc!r}", status=500)
            finally:
                command.done.set()
        return engine

    def _cut(self, engine: Engine, trigger: str, event: LifecycleEvent) -> dict[str, Any]:
        engine.checkpoint_due = None
        stored = self.checkpointer.cut(engine, self._positions, self._order_offset, trigger)
        if stored is None:
            raise LifecycleError("the version could not be stored; nothing acknowledged", status=500)
        details = {**event.details, "version": stored["version"]}
        event = LifecycleEvent(event.id, event.model, event.action, event.actor, event.reason,
                               event.model_version, details, event.at)
        self.publish(event)
        return {"version": stored["version"], "event": event.body()}

    def _apply(self, cmd: Command, engine: Engine) -> tuple[Engine, Any]:
        params = cmd.params
        if cmd.action == "predict":
            event = decode_features(orjson.dumps({"id": "predict", "features": params.get("features")}),
                                    engine.schema, self.config.name)
            prediction, proba = engine.predict(event.features)
            return engine, {"prediction": prediction, "proba": proba, "model_version": engine.version,
                            "model_examples": engine.n_learned, "variant": "champion"}
        if cmd.action == "promote" and params.get("challenger"):
            if engine.arena is None or params["challenger"] not in engine.arena.members:
                raise LifecycleError(f"no challenger named {params['challenger']!r}", status=404)
            event = engine.arena.promote(engine, params["challenger"], cmd.actor, cmd.reason, {}, _now_ms())
            return engine, self._cut(engine, "promote", event)
        if cmd.action in ("promote", "alias") and params.get("alias", "champion") == "champion":
            version = self.registry.resolve(self.config.name, params["version"])
            _, state = self.store.load(version)
            engine.install_champion(state["engine"].model)
            engine.champion_origin = {"name": f"v{version}", "origin": "blue_green", "from_version": version}
            event = self._event("promote", cmd.actor, cmd.reason,
                                {"from_version": version, "kind": "blue_green", "alias": "champion"},
                                engine.version)
            result = self._cut(engine, "promote", event)
            self.registry.set_tag(self.config.name, result["version"], "promoted_from", str(version))
            return engine, result
        if cmd.action == "alias":
            version = self.registry.resolve(self.config.name, params["version"])
            self.registry.get(self.config.name, version)
            self.registry.set_alias(self.config.name, params["alias"], version)
            event = self._event("alias", cmd.actor, cmd.reason, {"alias": params["alias"], "version": version},
                                engine.version)
            self.publish(event)
            return engine, {"version": version, "event": event.body()}
        if cmd.action == "add_challenger":
            return engine, self._add_challenger(cmd, engine)
        if cmd.action == "remove_challenger":
            if engine.arena is None:
                raise LifecycleError(f"no challenger named {params['name']!r}", status=404)
            engine.arena.remove(params["name"])
            if not engine.arena.members:
                engine.arena = None
            return engine, self._cut(engine, "manual", self._event("remove_challenger", cmd.actor, cmd.reason,
                                                                   {"name": params["name"]}, engine.version))
        if cmd.action == "reset":
            engine.install_champion(engine.model.clone())
            return engine, self._cut(engine, "manual", self._event("reset", cmd.actor, cmd.reason, {},
                                                                   engine.version))
        if cmd.action == "rollback":
            return self._rollback(cmd, engine)
        raise LifecycleError(f"cannot apply {cmd.action!r} with {sorted(params)}")

    def _add_challenger(self, cmd: Command, engine: Engine) -> Any:
        from driftline.config import ChallengerSpec, ModelConfig
        from driftline.core.arena import Arena, challenger_model

        params = cmd.params
        start = str(params.get("start", "cold"))
        spec = ChallengerSpec(name=params["name"], share=float(params.get("share", 0.0)),
                              start="warm" if start == "warm" else "cold",
                              model=ModelConfig(**params["model"]) if params.get("model") else None)
        if start.startswith("version:"):
            _, state = self.store.load(self.registry.resolve(self.config.name, start.split(":", 1)[1]))
            model = state["engine"].model
        else:
            model = challenger_model(engine, spec)
        if engine.arena is None:
            lc = self.config.lifecycle
            engine.arena = Arena(lc.promotion, self.config.join.max_pending, self.config.join.max_age_ms)
        engine.arena.add(engine, spec.name, model, spec.share, start)
        result = self._cut(engine, "manual", self._event("add_challenger", cmd.actor, cmd.reason,
                                                          {"name": spec.name, "start": start, "share": spec.share,
                                                           "model_class": type(model).__name__}, engine.version))
        self.registry.set_alias(self.config.name, spec.name, result["version"])
        return result

    def _rollback(self, cmd: Command, engine: Engine) -> tuple[Engine, Any]:
        params, name = cmd.params, self.config.name
        target = self.registry.resolve(name, params["to"])
        replaced = engine.version
        _, state = self.store.load(target)
        restored: Engine = state["engine"]
        counts: dict[str, int] = {}
        skip = SkipWindow(**params["skip"]) if params.get("skip") else None
        if params.get("replay"):
            start = {tuple(k) if not isinstance(k, str) else k: v for k, v in state["positions"].items()}
            restored, counts = replay_range(self.config, restored, start, dict(self._positions), skip)
        # The restored engine serves from here; its version is the target, so the cut below
        # has it as parent.
        for version in (target, replaced):
            if version:
                self.registry.set_tag(name, version, "keep", f"rollback by {cmd.actor}")
        event = self._event("rollback", cmd.actor, cmd.reason, {
            "to": target, "replaced": replaced, "replay": bool(params.get("replay")),
            "skip": skip.as_dict() if skip else None, **counts,
            "examples_seen": restored.n_learned,
        }, restored.version)
        return restored, self._cut(restored, "rollback", event)
