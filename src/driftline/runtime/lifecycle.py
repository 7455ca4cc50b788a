"""The processor's lifecycle side: commands between batches, the registry, retention,
shadow predictions and lifecycle events on Kafka, and range replays for rollbacks.

Every command that changes the serving state is applied between two transactions, to a
copy of the engine, and followed at once by a version cut (trigger ``promote``,
``rollback`` or ``manual``). A command takes effect completely or not at all: the version
is stored, then announced together with the command's lifecycle event in one
transaction; only after that commits is the copy served and are the registry rows, the
aliases and the history written. A failure aborts the transaction and deletes the stored
version, so the error is all it leaves. The command is acknowledged only then, so
recovery never re-applies it. (A crash between the store write and the commit leaves the
stored version, which a restart serves as the latest: the window is one commit long.)
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import KafkaError, KafkaException, TopicPartition

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
    """What a version records for the serving history (stream time, traffic split) and of
    the serving model: after a promotion its own examples, not the stream's."""
    arena = engine.arena
    variants = [[m.name, m.share] for m in arena.members.values() if m.share] if arena is not None else []
    challengers = [m.summary() for m in arena.members.values()] if arena is not None else []
    return {"stream_time": engine.stream_time, "variants": variants, "challengers": challengers,
            "champion": getattr(engine, "champion_origin", None), "examples_seen": engine.model_examples}


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
        self._held: list[dict[str, Any]] | None = None  # versions cut by a command, indexed after its commit

    # -- outputs of the engine -----------------------------------------------------------

    def emit(self, output: ShadowPrediction | LifecycleEvent, now_ms: int, record: bool = True) -> None:
        """Publish inside the processor's current transaction; ``record`` a lifecycle event
        in the registry at once (a command records it only after its commit)."""
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
        if record:
            self.registry.record_event(body)
            log.info("lifecycle event", extra={"fields": {k: body[k] for k in ("id", "action", "actor")}})

    def publish(self, event: LifecycleEvent) -> None:
        """Publish a lifecycle event in a transaction of its own (between batches), then
        record it; nothing is recorded when the transaction fails."""
        self._transaction(lambda: self.emit(event, event.at, record=False))
        self._recorded(event)

    def _recorded(self, event: LifecycleEvent) -> None:
        body = event.body()
        self.registry.record_event(body)
        log.info("lifecycle event", extra={"fields": {k: body[k] for k in ("id", "action", "actor")}})

    def _transaction(self, produce: Any) -> None:
        """``produce`` into one transaction and commit it; on failure abort it and raise."""
        p = self.processor
        try:
            if not p._in_txn:
                p._begin()
            produce()
            if not p.exactly_once:  # outputs leave at once: surface a failed delivery now
                p._producer.flush(30)
            p._commit()
        except Exception:
            self._abort()
            raise

    def _abort(self) -> None:
        p = self.processor
        if p._in_txn and p.exactly_once:
            try:
                p._producer.abort_transaction(10)
            except KafkaException as exc:  # fenced: the broker aborts it for us
                log.warning("abort failed", extra={"fields": {"error": str(exc)}})
        p._in_txn = False

    # -- versions ------------------------------------------------------------------------

    def on_version(self, stored: dict[str, Any]) -> None:
        """Index a version just cut; move ``champion`` to it (the newest version is what
        serves); tag promotions; apply retention. During a command's cut this waits for
        the command's commit (see :meth:`_cut`)."""
        if self._held is not None:
            self._held.append(stored)
            return
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

    def _event(self, action: str, actor: str, reason: str, details: dict[str, Any],
               version: int | None = None) -> LifecycleEvent:
        engine = self.processor.engine
        if version is None:
            version = engine.version if engine else 0
        return LifecycleEvent(
            id=f"{self.config.name}-{action}-{uuid.uuid4().hex[:12]}", model=self.config.name, action=action,
            actor=actor, reason=reason, model_version=version, details=details, at=_now_ms(),
        )

    # -- commands --------------------------------------------------------------------------

    def run_commands(self) -> None:
        """Apply every queued command (called between batches, outside any transaction).

        A command that found this processor fenced is answered, then the processor stops
        (the fencing error goes on to :meth:`Processor.run`)."""
        from driftline.runtime.processor import _fenced  # the processor imports this module

        while (command := self.queue.pop()) is not None:
            fenced = None
            try:
                command.result = self._apply(command)
            except DriftlineError as exc:
                command.error = exc if isinstance(exc, LifecycleError) else LifecycleError(str(exc))
                cause = exc.__cause__
                fenced = cause if isinstance(cause, KafkaException) and _fenced(cause) else None
            except Exception as exc:  # noqa: BLE001 - report it to the caller, keep the stream going
                log.exception("command failed")
                command.error = LifecycleError(f"{command.action} failed: {exc!r}", status=500)
            finally:
                command.done.set()
            if fenced is not None:
                raise fenced

    def _cut(self, trigger: str, candidate: Engine, event: LifecycleEvent,
             tags: tuple[tuple[int | None, str, str], ...] = ()) -> dict[str, Any]:
        """Serve ``candidate`` under a new version, all or nothing.

        The version is stored, then announced on ``.versions`` together with ``event`` on
        ``.lifecycle`` in one transaction; only once that commits do the registry rows, the
        ``champion`` alias, ``tags`` (version ``None``: the new one) and the event's history
        row follow, and does ``candidate`` serve. Any failure before the commit aborts the
        transaction, deletes the stored version (its number is not reused), and leaves the
        engine that served before in place: the error is the only trace.
        """
        p = self.processor
        before = p.engine
        saved = (p._range_start, p._time_range, p._ckpt_learned, p._ckpt_time)
        if p.saver.busy:  # a periodic version still being written lands (and is indexed) first
            p._saved(p.saver.wait())
        candidate.checkpoint_due = None
        stored = None
        self._held = []
        try:
            p.engine = candidate
            stored = p._checkpoint(trigger, commit=False)
            if stored is None:
                raise LifecycleError(f"{event.action} failed: the version could not be stored; nothing changed",
                                     status=500)
            event = dataclasses.replace(event, details={**event.details, "version": stored["version"]})
            self._transaction(lambda: self.emit(event, event.at, record=False))
        except Exception as exc:
            held, self._held = self._held, None
            self._undo(before, saved, stored)
            if isinstance(exc, LifecycleError):
                raise
            raise LifecycleError(f"{event.action} failed, nothing changed: {exc}", status=500) from exc
        held, self._held = self._held, None
        for version in held:
            self.on_version(version)
        for version, key, value in tags:
            self.registry.set_tag(self.config.name, stored["version"] if version is None else version, key, value)
        self._recorded(event)
        return {"version": stored["version"], "event": event.body()}

    def _undo(self, before: Engine | None, saved: tuple[Any, ...], stored: dict[str, Any] | None) -> None:
        p = self.processor
        self._abort()
        p.engine = before
        p._range_start, p._time_range, p._ckpt_learned, p._ckpt_time = saved
        if stored is not None:
            p._failed_version = max(p._failed_version, stored["version"])
            log.warning("command failed: its version is deleted, the previous model serves on",
                        extra={"fields": {"version": stored["version"], "serving": before.version if before else 0}})
            try:
                p.store.delete(stored["version"])
            except DriftlineError as exc:
                log.error("could not delete the version of a failed command",
                          extra={"fields": {"version": stored["version"], "error": str(exc)}})

    def _apply(self, cmd: Command) -> Any:
        p, params, engine = self.processor, cmd.params, self.processor.engine
        assert engine is not None
        if cmd.action == "predict":
            event = decode_features(orjson.dumps({"id": "predict", "features": params.get("features")}),
                                    engine.schema, self.config.name)
            prediction, proba = engine.predict(event.features)
            return {"prediction": prediction, "proba": proba, "model_version": engine.version,
                    "model_examples": engine.n_learned, "variant": "champion"}
        if cmd.action == "alias" and params.get("alias", "champion") != "champion":
            version = self.registry.resolve(self.config.name, params["version"])
            self.registry.get(self.config.name, version)
            event = self._event("alias", cmd.actor, cmd.reason, {"alias": params["alias"], "version": version})
            try:
                self._transaction(lambda: self.emit(event, event.at, record=False))
            except Exception as exc:
                raise LifecycleError(f"alias failed, nothing changed: {exc}", status=500) from exc
            self.registry.set_alias(self.config.name, params["alias"], version)
            self._recorded(event)
            return {"version": version, "event": event.body()}
        if cmd.action == "rollback":
            return self._rollback(cmd)
        if cmd.action not in ("promote", "alias", "add_challenger", "remove_challenger", "reset"):
            raise LifecycleError(f"cannot apply {cmd.action!r} with {sorted(params)}")
        # The command changes a copy: the engine that serves now goes on serving if it fails.
        candidate: Engine = pickle.loads(pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL))
        if cmd.action == "promote" and params.get("challenger"):
            if candidate.arena is None or params["challenger"] not in candidate.arena.members:
                raise LifecycleError(f"no challenger named {params['challenger']!r}", status=404)
            event = candidate.arena.promote(candidate, params["challenger"], cmd.actor, cmd.reason, {}, _now_ms())
            return self._cut("promote", candidate, event)
        if cmd.action in ("promote", "alias"):  # the champion alias: a blue/green swap
            if params.get("alias", "champion") != "champion" or "version" not in params:
                raise LifecycleError(f"cannot apply {cmd.action!r} with {sorted(params)}")
            version = self.registry.resolve(self.config.name, params["version"])
            _, state = p.store.load(version)
            source: Engine = state["engine"]
            candidate.install_champion(source.model, source.scores, source.model_examples)  # its own record
            candidate.champion_origin = {"name": f"v{version}", "origin": "blue_green", "from_version": version}
            event = self._event("promote", cmd.actor, cmd.reason,
                                {"from_version": version, "kind": "blue_green", "alias": "champion"})
            return self._cut("promote", candidate, event, tags=((None, "promoted_from", str(version)),))
        if cmd.action == "add_challenger":
            return self._add_challenger(cmd, candidate)
        if cmd.action == "remove_challenger":
            if candidate.arena is None or params["name"] not in candidate.arena.members:
                raise LifecycleError(f"no challenger named {params['name']!r}", status=404)
            candidate.arena.remove(params["name"])
            if not candidate.arena.members:
                candidate.arena = None
            return self._cut("manual", candidate,
                             self._event("remove_challenger", cmd.actor, cmd.reason, {"name": params["name"]}))
        candidate.install_champion(candidate.model.clone())  # reset
        return self._cut("manual", candidate, self._event("reset", cmd.actor, cmd.reason, {}))

    def _add_challenger(self, cmd: Command, candidate: Engine) -> Any:
        from driftline.config import ChallengerSpec, ModelConfig
        from driftline.core.arena import Arena, challenger_model

        p, params = self.processor, cmd.params
        start = str(params.get("start", "cold"))
        spec = ChallengerSpec(name=params["name"], share=float(params.get("share", 0.0)),
                              start="warm" if start == "warm" else "cold",
                              model=ModelConfig(**params["model"]) if params.get("model") else None)
        learned = None
        if start.startswith("version:"):
            meta, state = p.store.load(self.registry.resolve(self.config.name, start.split(":", 1)[1]))
            model, learned = state["engine"].model, state["engine"].model_examples
        else:
            model = challenger_model(candidate, spec)
        if candidate.arena is None:
            lc = self.config.lifecycle
            candidate.arena = Arena(lc.promotion, self.config.join.max_pending, self.config.join.max_age_ms)
        candidate.arena.add(candidate, spec.name, model, spec.share, start, learned)
        event = self._event("add_challenger", cmd.actor, cmd.reason,
                            {"name": spec.name, "start": start, "share": spec.share,
                             "model_class": type(model).__name__})
        result = self._cut("manual", candidate, event)
        self.registry.set_alias(self.config.name, spec.name, result["version"])
        return result

    def _rollback(self, cmd: Command) -> Any:
        p, params, name = self.processor, cmd.params, self.config.name
        target = self.registry.resolve(name, params["to"])
        replaced = p.engine.version
        _, state = p.store.load(target)
        restored: Engine = state["engine"]  # its version is the target: the cut has it as parent
        counts: dict[str, int] = {}
        skip = SkipWindow(**params["skip"]) if params.get("skip") else None
        if params.get("replay"):
            start = {tuple(k) if not isinstance(k, str) else k: v for k, v in state["positions"].items()}
            restored, counts = replay_range(self.config, restored, start, dict(p.positions), skip)
        event = self._event("rollback", cmd.actor, cmd.reason, version=restored.version, details={
            "to": target, "replaced": replaced, "replay": bool(params.get("replay")),
            "skip": skip.as_dict() if skip else None, **counts,
            "examples_seen": restored.model_examples,
        })
        keep = f"rollback by {cmd.actor}"
        return self._cut("rollback", restored, event, tags=tuple((v, "keep", keep) for v in (target, replaced) if v))
