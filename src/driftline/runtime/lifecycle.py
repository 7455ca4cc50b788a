"""The processor's lifecycle side: commands between batches, the registry, retention,
shadow predictions and lifecycle events on Kafka (a rollback's range replay is in
runtime/range_replay.py).

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
from collections.abc import Callable
from typing import Any

import orjson

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import decode_features
from driftline.core.fairness.switch import mitigation_event
from driftline.core.ordering import Source
from driftline.core.outputs import LifecycleEvent
from driftline.exceptions import DriftlineError, LifecycleError
from driftline.lifecycle.commands import Command, CommandQueue, SkipWindow
from driftline.lifecycle.registry import Registry, registry_path
from driftline.runtime.checkpointer import Checkpointer
from driftline.runtime.collector import OutputCollector, ce_headers
from driftline.runtime.erasure import erasable, erased_before
from driftline.runtime.range_replay import replay_range
from driftline.runtime.unit_of_work import UnitOfWork, fenced
from driftline.versions.store import VersionStore

__all__ = ["LifecycleRuntime"]

log = logging.getLogger("driftline.lifecycle")


def _now_ms() -> int:
    return int(time.time() * 1000)


class LifecycleRuntime:
    """The registry and the command queue of one running deployment.

    It is handed the runtime's parts (the version store, the output collector, the unit
    of work and the checkpointer) and never reaches into the processor: commands get the
    serving engine and return the engine that serves next (a copy they changed, or the
    one that served before when they failed).
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
        collector.on_lifecycle_sent = self._audited
        collector.on_drift_sent = self._audited_drift
        work.on_abort = self._void_chain
        checkpointer.on_version = self.on_version
        self._audit = None  # the audit chain's head, read from .audit at the first entry
        self._positions: dict[Source, int] = {}
        self._order_offset = 0
        self._held: list[dict[str, Any]] | None = None  # versions cut by a command, indexed after its commit

    def _audited(self, event: LifecycleEvent, body: dict[str, Any]) -> None:
        """A lifecycle event's audit entry, in the same unit of work as the event."""
        if not self.config.governance.audit.enabled:
            return
        entry_id, value = self.audit_entry("lifecycle", event.id, body, event.at)
        self.work.produce(self.config.topics.audit, entry_id.encode(), value,
                          ce_headers("audit", entry_id, self.config.name, event.model_version, event.at))

    def _audited_drift(self, event: Any, body: dict[str, Any]) -> None:
        """An audit entry for a fairness state change, and for a drift event on which the drift
        policy changed the serving model, in the unit of work that sends the event."""
        if not self.config.governance.audit.enabled:
            return
        kind = "fairness" if event.drift_kind == "fairness" else "drift" if event.action != "none" else None
        if kind is None:
            return
        entry_id, value = self.audit_entry(kind, event.id, body, event.detected_at)
        self.work.produce(self.config.topics.audit, entry_id.encode(), value,
                          ce_headers("audit", entry_id, self.config.name, event.model_version, event.detected_at))

    def mitigation_switched(self, engine: Engine, before: str, after: str) -> None:
        """A fairness mitigation was switched on or off by the config: its lifecycle event (and
        audit entry) in the open unit of work, and a version cut with the new policy soon
        (until then a restart repeats the event under the same id)."""
        event = mitigation_event(engine, self.config, before, after, _now_ms())
        self.work.ensure_open()
        self.collector.lifecycle(event)
        engine.checkpoint_due = engine.checkpoint_due or "manual"

    def _void_chain(self) -> None:
        """An aborted unit of work took its audit entries with it: resume from the topic."""
        self._audit = None

    def audit_entry(self, kind: str, subject: str, record: dict[str, Any], at: int) -> tuple[str, bytes]:
        """The next entry of the audit chain (runtime/audit.py resumes it from the topic once)."""
        if self._audit is None:
            from driftline.runtime.audit import open_chain

            self._audit = open_chain(self.config, self.store.signing_key)
        entry_id = f"audit-{self._audit.seq}"
        return entry_id, self._audit.append(kind, subject, record, at)

    def audit_policy(self, engine: Engine) -> dict[str, Any] | None:
        """At start, before any record is processed: a ``policy`` audit entry, in a unit of
        work of its own, when the governed config (core/policy_change.py) differs from what
        the newest ``policy`` entry recorded; the entry's record, or None (nothing changed).
        A restart with the same config finds its entry and writes none."""
        if not self.config.governance.audit.enabled:
            return None
        from driftline.core.policy_change import governed, policy_change
        from driftline.runtime.audit import last_policy

        privacy = getattr(engine, "privacy", None)
        flat = governed(self.config, getattr(privacy, "key_id", None))
        last, first = last_policy(self.config)
        record = policy_change(flat, last, first)
        if record is None:
            return None
        at = _now_ms()
        record = {"model": self.config.name, "model_version": engine.version, **record}
        subject = f"{self.config.name}-policy-{record['digest'][:16]}"

        def produce() -> None:
            entry_id, value = self.audit_entry("policy", subject, record, at)
            self.work.produce(self.config.topics.audit, entry_id.encode(), value,
                              ce_headers("audit", entry_id, self.config.name, engine.version, at))

        self._transaction(produce)
        log.info("policy change audited", extra={"fields": {
            "model": self.config.name, "digest": record["digest"], "previous": record["previous"],
            "reason": record["reason"], "changed": len(record["changed"])}})
        return record

    def publish(self, event: LifecycleEvent) -> None:
        """Publish a lifecycle event in a unit of work of its own (between batches), then
        record it; nothing is recorded when the transaction fails."""
        self._transaction(lambda: self.collector.lifecycle(event, record=False))
        self.collector.recorded(event)

    def _transaction(self, produce: Callable[[], None]) -> None:
        """``produce`` into one unit of work and commit it; on failure abort it and raise."""
        work = self.work
        try:
            work.ensure_open()
            produce()
            if not work.exactly_once:  # outputs leave at once: surface a failed delivery now
                work.flush(30)
            self.checkpointer.commit()
        except Exception as exc:
            cause = work.abort()
            self._audit = None  # its entry was aborted too: resume the chain from the topic
            if cause is not None and fenced(cause) and not fenced(exc):
                raise cause from exc  # "fenced", not the bare "Fatal error" of a later produce()
            raise

    # -- versions ------------------------------------------------------------------------

    def on_version(self, stored: dict[str, Any]) -> None:
        """Index a version just cut; move ``champion`` to it (the newest version is what
        serves); tag promotions; apply retention. During a command's cut this waits for
        the command's commit (see :meth:`_cut`)."""
        if self._held is not None:
            self._held.append(stored)
            return
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
        return the engine that serves next.

        A command that found this processor fenced is answered, then the fencing error goes
        on (the processor stops)."""
        self.at(positions, order_offset)
        serving = [engine]

        def apply(command: Command) -> Any:
            serving[0], result = self._apply(command, serving[0])
            return result

        self.queue.answer_each(apply, fatal=fenced)
        return serving[0]

    def at(self, positions: dict[Source, int], order_offset: int) -> None:
        """Where the next command's version is cut: the task's positions and order log offset."""
        self._positions, self._order_offset = positions, order_offset

    def _cut(self, trigger: str, before: Engine, candidate: Engine, event: LifecycleEvent,
             tags: tuple[tuple[int | None, str, str], ...] = (),
             extra: Callable[[], None] | None = None,
             checkpointer: Checkpointer | None = None) -> tuple[Engine, dict[str, Any]]:
        """Serve ``candidate`` under a new version, all or nothing.

        The version is stored, then announced on ``.versions`` together with ``event`` on
        ``.lifecycle`` in one transaction; only once that commits do the registry rows, the
        ``champion`` alias, ``tags`` (version ``None``: the new one) and the event's history
        row follow, and does ``candidate`` serve. Any failure before the commit aborts the
        transaction, deletes the stored version (its number is not reused), and leaves
        ``before`` serving: the error is the only trace. ``extra`` produces more records
        into the same transaction (an erasure's tombstones). ``checkpointer`` cuts a keyed
        task's version (runtime/keyed_commands.py; default: the deployment's).
        """
        checkpointer = checkpointer or self.checkpointer
        if checkpointer.saver.busy:  # a periodic version still being written lands (and is indexed) first
            checkpointer.saved(before, checkpointer.saver.wait())
        cadence = checkpointer.cadence()
        candidate.checkpoint_due = None
        stored = None
        self._held = []
        try:
            stored = checkpointer.cut(candidate, self._positions, self._order_offset, trigger, commit=False)
            if stored is None:
                raise LifecycleError(f"{event.action} failed: the version could not be stored; nothing changed",
                                     status=500)
            event = dataclasses.replace(event, details={**event.details, "version": stored["version"]})
            self._transaction(lambda: (self.collector.lifecycle(event, record=False), extra and extra()))
        except Exception as failure:
            self._held = None
            cause = self.work.abort()
            self._audit = None  # resume the audit chain from the topic
            # A producer in a fatal state says why (fenced) at the abort, not at a produce().
            exc = cause if cause is not None and fenced(cause) and not fenced(failure) else failure
            if stored is not None:
                log.warning("command failed: its version is deleted, the previous model serves on",
                            extra={"fields": {"version": stored["version"], "serving": before.version}})
            try:
                checkpointer.undo(cadence, stored)
            except DriftlineError as undo_exc:
                log.error("could not delete the version of a failed command",
                          extra={"fields": {"error": str(undo_exc)}})
            if isinstance(exc, LifecycleError):
                raise
            raise LifecycleError(f"{event.action} failed, nothing changed: {exc}", status=500) from exc
        held, self._held = self._held, None
        for version in held:
            self.on_version(version)
        for version, key, value in tags:
            self.registry.set_tag(self.config.name, stored["version"] if version is None else version, key, value)
        self.collector.recorded(event)
        return candidate, {"version": stored["version"], "event": event.body()}

    def _apply(self, cmd: Command, engine: Engine) -> tuple[Engine, Any]:
        params = cmd.params
        if cmd.action in ("reset", "rollback") and params.get("key") is not None:
            raise LifecycleError(f"{cmd.action} of one key is for keyed mode; this deployment runs one model",
                                 status=409)
        if cmd.action == "predict":
            event = decode_features(orjson.dumps({"id": "predict", "features": params.get("features")}),
                                    engine.schema, self.config.name, getattr(engine, "privacy", None))
            prediction, proba = engine.predict(event.features)
            answer = {"prediction": prediction, "proba": proba, "model_version": engine.version,
                      "model_examples": engine.n_learned, "variant": "champion"}
            if engine.explainer is not None:  # [governance.explain]
                answer["explanation"] = engine.explain(event.features, prediction)
            return engine, answer
        if cmd.action == "alias" and params.get("alias", "champion") != "champion":
            version = self.registry.resolve(self.config.name, params["version"])
            self.registry.get(self.config.name, version)
            event = self._event("alias", cmd.actor, cmd.reason, {"alias": params["alias"], "version": version},
                                engine.version)
            try:
                self._transaction(lambda: self.collector.lifecycle(event, record=False))
            except Exception as exc:
                raise LifecycleError(f"alias failed, nothing changed: {exc}", status=500) from exc
            self.registry.set_alias(self.config.name, params["alias"], version)
            self.collector.recorded(event)
            return engine, {"version": version, "event": event.body()}
        if cmd.action == "rollback":
            return self._rollback(cmd, engine)
        if cmd.action == "erase":  # exact unlearning of one subject (runtime/erasure.py)
            from driftline.runtime.erasure import erase

            return erase(self, cmd, engine)
        if cmd.action not in ("promote", "alias", "add_challenger", "remove_challenger", "reset"):
            raise LifecycleError(f"cannot apply {cmd.action!r} with {sorted(params)}")
        # The command changes a copy: the engine that serves now goes on serving if it fails.
        candidate: Engine = pickle.loads(pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL))
        if cmd.action == "promote" and params.get("challenger"):
            if candidate.arena is None or params["challenger"] not in candidate.arena.members:
                raise LifecycleError(f"no challenger named {params['challenger']!r}", status=404)
            event = candidate.arena.promote(candidate, params["challenger"], cmd.actor, cmd.reason, {}, _now_ms())
            return self._cut("promote", engine, candidate, event)
        if cmd.action in ("promote", "alias"):  # the champion alias: a blue/green swap
            if params.get("alias", "champion") != "champion" or "version" not in params:
                raise LifecycleError(f"cannot apply {cmd.action!r} with {sorted(params)}")
            version = erasable(self.registry, self.config.name, params["version"])
            _, state = self.store.load(version)
            source: Engine = state["engine"]
            candidate.install_champion(source.model, source.scores, source.model_examples)  # its own record
            candidate.champion_origin = {"name": f"v{version}", "origin": "blue_green", "from_version": version}
            event = self._event("promote", cmd.actor, cmd.reason,
                                {"from_version": version, "kind": "blue_green", "alias": "champion"},
                                engine.version)
            return self._cut("promote", engine, candidate, event, tags=((None, "promoted_from", str(version)),))
        if cmd.action == "add_challenger":
            return self._add_challenger(cmd, engine, candidate)
        if cmd.action == "remove_challenger":
            if candidate.arena is None or params["name"] not in candidate.arena.members:
                raise LifecycleError(f"no challenger named {params['name']!r}", status=404)
            candidate.arena.remove(params["name"])
            if not candidate.arena.members:
                candidate.arena = None
            return self._cut("manual", engine, candidate, self._event("remove_challenger", cmd.actor, cmd.reason,
                                                                      {"name": params["name"]}, engine.version))
        candidate.install_champion(candidate.model.clone())  # reset
        return self._cut("manual", engine, candidate, self._event("reset", cmd.actor, cmd.reason, {},
                                                                  engine.version))

    def _add_challenger(self, cmd: Command, engine: Engine, candidate: Engine) -> tuple[Engine, Any]:
        from driftline.config import ChallengerSpec, ModelConfig
        from driftline.core.arena import Arena, challenger_model

        params = cmd.params
        start = str(params.get("start", "cold"))
        spec = ChallengerSpec(name=params["name"], share=float(params.get("share", 0.0)),
                              start="warm" if start == "warm" else "cold",
                              model=ModelConfig(**params["model"]) if params.get("model") else None)
        learned = None
        if start.startswith("version:"):
            _, state = self.store.load(erasable(self.registry, self.config.name, start.split(":", 1)[1]))
            model, learned = state["engine"].model, state["engine"].model_examples
        else:
            model = challenger_model(candidate, spec)
        if candidate.arena is None:
            lc = self.config.lifecycle
            candidate.arena = Arena(lc.promotion, self.config.join.max_pending, self.config.join.max_age_ms)
        candidate.arena.add(candidate, spec.name, model, spec.share, start, learned)
        event = self._event("add_challenger", cmd.actor, cmd.reason,
                            {"name": spec.name, "start": start, "share": spec.share,
                             "model_class": type(model).__name__}, engine.version)
        serving, result = self._cut("manual", engine, candidate, event)
        self.registry.set_alias(self.config.name, spec.name, result["version"])
        return serving, result

    def _rollback(self, cmd: Command, engine: Engine) -> tuple[Engine, Any]:
        params, name = cmd.params, self.config.name
        target = erasable(self.registry, name, params["to"])
        replaced = engine.version
        _, state = self.store.load(target)
        restored: Engine = state["engine"]  # its version is the target: the cut has it as parent
        counts: dict[str, int] = {}
        skip = SkipWindow(**params["skip"]) if params.get("skip") else None
        if params.get("replay"):
            start = {tuple(k) if not isinstance(k, str) else k: v for k, v in state["positions"].items()}
            restored, counts = replay_range(self.config, restored, start, dict(self._positions), skip,
                                            erased=erased_before(self.registry.events(name)))
        event = self._event("rollback", cmd.actor, cmd.reason, {
            "to": target, "replaced": replaced, "replay": bool(params.get("replay")),
            "skip": skip.as_dict() if skip else None, **counts,
            "examples_seen": restored.model_examples,
        }, restored.version)
        keep = f"rollback by {cmd.actor}"
        return self._cut("rollback", engine, restored, event, tags=tuple((v, "keep", keep) for v in (target, replaced) if v))
