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
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import KafkaError, TopicPartition

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord, decode_features
from driftline.core.ordering import EventTimeMerger, Source
from driftline.core.outputs import LifecycleEvent, ShadowPrediction
from driftline.exceptions import DriftlineError, LifecycleError
from driftline.lifecycle.commands import Command, CommandQueue, SkipWindow
from driftline.lifecycle.registry import Registry, registry_path
from driftline.runtime.clients import make_consumer

if TYPE_CHECKING:
    from driftline.runtime.processor import Processor

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
    """Attached to one :class:`Processor`; holds the command queue and the registry."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor
        self.config = processor.config
        self.registry = Registry(registry_path(processor.config))
        self.queue = CommandQueue()
        self._pending_events: list[dict[str, Any]] = []
        self._audit = None  # the audit chain's head, read from .audit at the first entry

    # -- outputs of the engine -----------------------------------------------------------

    def emit(self, output: ShadowPrediction | LifecycleEvent, now_ms: int) -> None:
        """Publish inside the processor's current transaction."""
        from driftline.runtime.processor import _ce_headers  # the processor imports this module

        p, model = self.processor, self.config.name
        if type(output) is ShadowPrediction:
            pred = output.prediction
            headers = _ce_headers("shadow", f"{pred.id}/{pred.variant}", model, pred.model_version, pred.predicted_at)
            headers.insert(-1, ("dl_variant", pred.variant.encode()))  # dl_model_version stays last
            p._produce(self.config.topics.shadow, pred.id.encode(), orjson.dumps(pred.body()), headers)
            return
        body = output.body()
        p._produce(self.config.topics.lifecycle, output.id.encode(), orjson.dumps(body, default=str),
                   _ce_headers("lifecycle", output.id, model, output.model_version, output.at))
        if self.config.governance.audit.enabled:  # its audit entry, in the same transaction
            entry_id, value = self.audit_entry("lifecycle", output.id, body, output.at)
            p._produce(self.config.topics.audit, entry_id.encode(), value,
                       _ce_headers("audit", entry_id, model, output.model_version, output.at))
        self.registry.record_event(body)
        log.info("lifecycle event", extra={"fields": {k: body[k] for k in ("id", "action", "actor")}})

    def audit_entry(self, kind: str, subject: str, record: dict[str, Any], at: int) -> tuple[str, bytes]:
        """The next entry of the audit chain (runtime/audit.py resumes it from the topic once)."""
        if self._audit is None:
            from driftline.runtime.audit import open_chain

            self._audit = open_chain(self.config, self.processor.store.signing_key)
        entry_id = f"audit-{self._audit.seq}"
        return entry_id, self._audit.append(kind, subject, record, at)

    def publish(self, event: LifecycleEvent) -> None:
        """Publish a lifecycle event in a transaction of its own (between batches)."""
        p = self.processor
        p._begin()
        self.emit(event, event.at)
        p._commit()

    # -- versions ------------------------------------------------------------------------

    def on_version(self, stored: dict[str, Any]) -> None:
        """Index a version just cut; move ``champion`` to it (the newest version is what
        serves); tag promotions; apply retention."""
        store, name = self.processor.store, self.config.name
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
                for version in self.registry.retention_candidates(name, keep):
                    store.delete(version)
                    self.registry.mark_deleted(name, version)
                    self.publish(self._event("retention_delete", "policy:retention", f"keep_last={keep}",
                                             {"version": version}))
        except DriftlineError as exc:  # the registry is an index: never stop the stream for it
            log.error("registry update failed", extra={"fields": {"error": str(exc)}})

    def _event(self, action: str, actor: str, reason: str, details: dict[str, Any]) -> LifecycleEvent:
        engine = self.processor.engine
        return LifecycleEvent(
            id=f"{self.config.name}-{action}-{uuid.uuid4().hex[:12]}", model=self.config.name, action=action,
            actor=actor, reason=reason, model_version=engine.version if engine else 0, details=details,
            at=_now_ms(),
        )

    # -- commands --------------------------------------------------------------------------

    def run_commands(self) -> None:
        """Apply every queued command (called between batches, outside any transaction)."""
        while (command := self.queue.pop()) is not None:
            try:
                command.result = self._apply(command)
            except DriftlineError as exc:
                command.error = exc if isinstance(exc, LifecycleError) else LifecycleError(str(exc))
            except Exception as exc:  # noqa: BLE001 - report it to the caller, keep the stream going
                log.exception("command failed")
                command.error = LifecycleError(f"{command.action} failed: {exc!r}", status=500)
            finally:
                command.done.set()

    def _cut(self, trigger: str, event: LifecycleEvent) -> dict[str, Any]:
        p = self.processor
        p.engine.checkpoint_due = None
        stored = p._checkpoint(trigger)
        if stored is None:
            raise LifecycleError("the version could not be stored; nothing acknowledged", status=500)
        details = {**event.details, "version": stored["version"]}
        event = LifecycleEvent(event.id, event.model, event.action, event.actor, event.reason,
                               event.model_version, details, event.at)
        self.publish(event)
        return {"version": stored["version"], "event": event.body()}

    def _apply(self, cmd: Command) -> Any:
        p, params, engine = self.processor, cmd.params, self.processor.engine
        assert engine is not None
        if cmd.action == "predict":
            event = decode_features(orjson.dumps({"id": "predict", "features": params.get("features")}),
                                    engine.schema, self.config.name)
            prediction, proba = engine.predict(event.features)
            answer = {"prediction": prediction, "proba": proba, "model_version": engine.version,
                      "model_examples": engine.n_learned, "variant": "champion"}
            if engine.explainer is not None:  # [governance.explain]
                answer["explanation"] = engine.explain(event.features, prediction)
            return answer
        if cmd.action == "promote" and params.get("challenger"):
            if engine.arena is None or params["challenger"] not in engine.arena.members:
                raise LifecycleError(f"no challenger named {params['challenger']!r}", status=404)
            event = engine.arena.promote(engine, params["challenger"], cmd.actor, cmd.reason, {}, _now_ms())
            return self._cut("promote", event)
        if cmd.action in ("promote", "alias") and params.get("alias", "champion") == "champion":
            version = self.registry.resolve(self.config.name, params["version"])
            _, state = p.store.load(version)
            engine.install_champion(state["engine"].model)
            engine.champion_origin = {"name": f"v{version}", "origin": "blue_green", "from_version": version}
            event = self._event("promote", cmd.actor, cmd.reason,
                                {"from_version": version, "kind": "blue_green", "alias": "champion"})
            result = self._cut("promote", event)
            self.registry.set_tag(self.config.name, result["version"], "promoted_from", str(version))
            return result
        if cmd.action == "alias":
            version = self.registry.resolve(self.config.name, params["version"])
            self.registry.get(self.config.name, version)
            self.registry.set_alias(self.config.name, params["alias"], version)
            event = self._event("alias", cmd.actor, cmd.reason, {"alias": params["alias"], "version": version})
            self.publish(event)
            return {"version": version, "event": event.body()}
        if cmd.action == "add_challenger":
            return self._add_challenger(cmd)
        if cmd.action == "remove_challenger":
            if engine.arena is None:
                raise LifecycleError(f"no challenger named {params['name']!r}", status=404)
            engine.arena.remove(params["name"])
            if not engine.arena.members:
                engine.arena = None
            return self._cut("manual", self._event("remove_challenger", cmd.actor, cmd.reason, {"name": params["name"]}))
        if cmd.action == "reset":
            engine.install_champion(engine.model.clone())
            return self._cut("manual", self._event("reset", cmd.actor, cmd.reason, {}))
        if cmd.action == "rollback":
            return self._rollback(cmd)
        raise LifecycleError(f"cannot apply {cmd.action!r} with {sorted(params)}")

    def _add_challenger(self, cmd: Command) -> Any:
        from driftline.config import ChallengerSpec, ModelConfig
        from driftline.core.arena import Arena, challenger_model

        p, params, engine = self.processor, cmd.params, self.processor.engine
        start = str(params.get("start", "cold"))
        spec = ChallengerSpec(name=params["name"], share=float(params.get("share", 0.0)),
                              start="warm" if start == "warm" else "cold",
                              model=ModelConfig(**params["model"]) if params.get("model") else None)
        if start.startswith("version:"):
            _, state = p.store.load(self.registry.resolve(self.config.name, start.split(":", 1)[1]))
            model = state["engine"].model
        else:
            model = challenger_model(engine, spec)
        if engine.arena is None:
            lc = self.config.lifecycle
            engine.arena = Arena(lc.promotion, self.config.join.max_pending, self.config.join.max_age_ms)
        engine.arena.add(engine, spec.name, model, spec.share, start)
        result = self._cut("manual", self._event("add_challenger", cmd.actor, cmd.reason,
                                                  {"name": spec.name, "start": start, "share": spec.share,
                                                   "model_class": type(model).__name__}))
        self.registry.set_alias(self.config.name, spec.name, result["version"])
        return result

    def _rollback(self, cmd: Command) -> Any:
        p, params, name = self.processor, cmd.params, self.config.name
        target = self.registry.resolve(name, params["to"])
        replaced = p.engine.version
        _, state = p.store.load(target)
        restored: Engine = state["engine"]
        counts: dict[str, int] = {}
        skip = SkipWindow(**params["skip"]) if params.get("skip") else None
        if params.get("replay"):
            start = {tuple(k) if not isinstance(k, str) else k: v for k, v in state["positions"].items()}
            restored, counts = replay_range(self.config, restored, start, dict(p.positions), skip)
        p.engine = restored  # its version is the target: the cut below has it as parent
        for version in (target, replaced):
            if version:
                self.registry.set_tag(name, version, "keep", f"rollback by {cmd.actor}")
        event = self._event("rollback", cmd.actor, cmd.reason, {
            "to": target, "replaced": replaced, "replay": bool(params.get("replay")),
            "skip": skip.as_dict() if skip else None, **counts,
            "examples_seen": restored.n_learned,
        })
        return self._cut("rollback", event)
