"""Lifecycle commands in keyed mode: one key's model is predicted with, reset or rolled back.

In keyed mode a task (a partition index) holds the engines of many keys (core/keyed.py), so
a command names its key (``key``). The process looks the key up in the tasks it runs and
applies the command to a copy of that task's keyed engine in which only the key's engine
changed (:meth:`~driftline.core.keyed.KeyedEngine.with_key_engine`); the copy is cut as a
version of the task, announced on ``.checkpoints`` together with the command's lifecycle
event (which names the key and the task) in one transaction, and serves only once that
commits, exactly as a single-mode command (runtime/lifecycle.py). A crash after the commit
restores the cut, so recovery never applies a command twice.

- ``predict`` (``features``, ``key``): the key's model's answer, nothing changes.
- ``reset`` (``key``): the key's model starts again from a fresh model of the configured
  kind; its metrics start over, its join buffer is kept (pending events learn into the new model).
- ``rollback`` (``key``, ``to``): the key's model, metrics and learned count as they were in
  version ``to`` of the key's task (``<model>.task-<p>``, see ``driftline models list
  <model>.task-<p>``); the key's join buffer is kept. A rollback does not re-learn the
  labels since (``replay`` is single mode only).

- ``erase`` (``key``): the data subject is the entity the key names. Its engine learned from
  its records only, so the copy simply drops it (resident or evicted) with its share of the
  aggregates: exact unlearning without a replay. The cut (trigger ``erasure``) goes with a
  receipt on ``.lifecycle`` (action ``erase``, the key and event ids as HMAC digests only,
  the records as offsets), tombstones on the compacted outputs (``.predictions`` and
  ``.shadow`` by event id, dead letters by key), and the task's versions that hold the key
  are tagged ``erased`` (a rollback refuses them) or, with ``[governance.erasure]
  delete_superseded``, deleted. Records of the key that arrive later are a new model's.

A key this process does not hold answers 404 naming the tasks it runs: its task belongs to
another worker (send the command to that worker's admin API) or the key was never seen. A
task still catching up after a restore answers 503. Other actions answer 409.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

import orjson

from driftline.core.engine import Engine
from driftline.core.erasure import ErasedRecords, Subject, event_id, subject_digest
from driftline.core.events import InputRecord, decode_features
from driftline.core.keyed import KeyedEngine
from driftline.exceptions import DriftlineError, LifecycleError
from driftline.lifecycle.commands import Command
from driftline.runtime.erasure import ERASED_TAG, Tombstones, read_range, superseded_versions
from driftline.runtime.lifecycle import LifecycleRuntime
from driftline.runtime.task import Task
from driftline.runtime.unit_of_work import fenced

__all__ = ["run_keyed_commands", "KEYED_ACTIONS"]

log = logging.getLogger("driftline.lifecycle")

KEYED_ACTIONS = ("predict", "reset", "rollback", "erase")


def run_keyed_commands(runtime: LifecycleRuntime, tasks: dict[Any, Task], committed: dict[Any, int]) -> None:
    """Apply every queued command to the task that holds its key (between units of work);
    a command that found this processor fenced is answered, then the fencing error goes on."""
    runtime.queue.answer_each(lambda command: _apply(runtime, command, tasks, committed), fatal=fenced)


def _task_of(key: Any, tasks: dict[Any, Task]) -> Task:
    """The running task whose keyed engine holds ``key``; 404 naming the tasks run here."""
    if not isinstance(key, str) or not key:
        raise LifecycleError("keyed mode: name the key whose model the command is for (key)", status=400)
    for task in tasks.values():
        if isinstance(task.engine, KeyedEngine) and task.engine.key_engine(key) is not None:
            return task
    here = ", ".join(str(t.index) for t in sorted(tasks.values(), key=lambda t: t.index or 0)) or "none yet"
    raise LifecycleError(f"key {key!r} is not held by this instance (tasks {here}): send the command to the "
                         "instance that runs its partition, or check the key", status=404)


def _apply(runtime: LifecycleRuntime, cmd: Command, tasks: dict[Any, Task], committed: dict[Any, int]) -> Any:
    if cmd.action not in KEYED_ACTIONS:
        raise LifecycleError(f"{cmd.action} is not available in keyed mode: a key's model can be reset, "
                             "rolled back or erased (with key), and predicted with", status=409)
    params = cmd.params
    if cmd.action == "erase" and params.get("id"):
        raise LifecycleError("erase: in keyed mode the subject is a key (key), not one event id", status=409)
    key = params.get("key")
    task = _task_of(key, tasks)
    keyed: KeyedEngine = task.engine
    current = keyed.key_engine(key)
    if cmd.action == "predict":
        event = decode_features(orjson.dumps({"id": "predict", "features": params.get("features")}),
                                keyed.schema, runtime.config.name, getattr(current, "privacy", None))
        prediction, proba = current.predict(event.features)
        return {"prediction": prediction, "proba": proba, "model_version": keyed.version,
                "model_examples": current.model_examples, "key": key, "task": task.index}
    if task.replaying(committed):
        raise LifecycleError(f"task {task.index} is still catching up after a restore: try again in a moment",
                             status=503)
    if cmd.action == "erase":
        return _erase(runtime, cmd, task, key)
    # The command changes a copy of the key's engine: the one that serves now goes on if it fails.
    candidate: Engine = pickle.loads(pickle.dumps(current, protocol=pickle.HIGHEST_PROTOCOL))
    details: dict[str, Any] = {"key": key, "task": task.index}
    if cmd.action == "reset":
        candidate.install_champion(candidate.model.clone())
        trigger = "manual"
    else:
        if params.get("replay") or params.get("skip"):
            raise LifecycleError("keyed mode: a rollback restores the key's model from a version of its task; "
                                 "replay is single mode only", status=409)
        source, target = _key_engine_in(runtime, task, key, params.get("to"))
        candidate.install_champion(source.model, source.scores, source.model_examples)
        details.update({"to": target, "replaced": keyed.version, "examples_seen": source.model_examples})
        trigger = "rollback"
    event = runtime._event(cmd.action, cmd.actor, cmd.reason, details, keyed.version)
    runtime.at(task.positions, task.order_next)
    serving, result = runtime._cut(trigger, keyed, keyed.with_key_engine(key, candidate), event,
                                   checkpointer=task.checkpointer)
    task.engine = serving
    try:
        runtime.registry.sync(task.store)
    except DriftlineError as exc:  # the registry is an index: never stop the stream for it
        log.error("registry update failed", extra={"fields": {"error": str(exc)}})
    log.info("keyed command applied", extra={"fields": {"action": cmd.action, "task": task.index,
                                                        "version": result["version"]}})
    return {**result, "key": key, "task": task.index}


def _key_engine_in(runtime: LifecycleRuntime, task: Task, key: str, to: Any) -> tuple[Engine, int]:
    """The key's engine in version ``to`` of its task (verified as every load is)."""
    try:
        target = int(to)
    except (TypeError, ValueError):
        raise LifecycleError(f"rollback: give the version of the key's task to restore (to), got {to!r}",
                             status=400) from None
    if target not in task.store.versions():
        raise LifecycleError(f"task {task.index} has no version {target} (driftline models list "
                             f"{task.store.model})", status=404)
    digest = subject_digest(task.store.signing_key, key)
    for receipt in runtime.registry.events(runtime.config.name):
        d = receipt["details"]
        if (receipt["action"] == "erase" and d.get("task") == task.index and d["subject"]["hmac_sha256"] == digest
                and target in {s["version"] for s in d.get("superseded", [])}):
            raise LifecycleError(f"version {target} holds key {key!r} as it was before its erasure "
                                 f"({receipt['id']}): it cannot serve again; nothing changed", status=409)
    _, state = task.store.load(target)
    source = state["engine"].key_engine(key) if isinstance(state["engine"], KeyedEngine) else None
    if source is None:
        raise LifecycleError(f"key {key!r} has no model in version {target} of task {task.index}", status=404)
    return source, target


def _erase(runtime: LifecycleRuntime, cmd: Command, task: Task, key: str) -> Any:
    """Erase the subject ``key`` from its task; see the module docstring."""
    config, store, registry = runtime.config, task.store, runtime.registry
    keyed: KeyedEngine = task.engine
    subject, found, ids = Subject("key", key), ErasedRecords(), set()

    def match(record: InputRecord) -> None:
        if subject.matches(record):
            found.add(record)
            if (ident := event_id(record)) is not None:
                ids.add(ident)

    read_range(config, {}, dict(task.positions), match)
    registry.sync(store)
    superseded = superseded_versions([store.meta(v) for v in store.versions()], found.first())
    tombstones = Tombstones(config, ids, {key} if found else set())
    gone = keyed.key_engine(key)
    digest = store.signing_key
    delete = config.governance.erasure.delete_superseded
    details = {
        "subject": {"by": "key", "hmac_sha256": subject_digest(digest, key)}, "task": task.index,
        "event_ids_hmac_sha256": sorted(subject_digest(digest, i) for i in ids),
        "removed": {**found.counts(), "join_buffer": gone.join.pending_features + gone.join.pending_labels},
        "examples_unlearned": gone.n_learned,
        "records": found.ranges(), "replaced": keyed.version, "replayed": 0,
        "tombstones": tombstones.counts(), "not_compacted": tombstones.not_compacted,
        "superseded": superseded, "superseded_deleted": delete,
    }
    event = runtime._event("erase", cmd.actor, cmd.reason, details, keyed.version)

    runtime.at(task.positions, task.order_next)
    serving, result = runtime._cut("erasure", keyed, keyed.without_key(key), event,
                                   extra=lambda: tombstones.send(runtime.work.produce), checkpointer=task.checkpointer)
    task.engine = serving
    registry.sync(store)
    for s in superseded:
        try:
            registry.set_tag(store.model, s["version"], ERASED_TAG, event.id)
            if delete:
                store.delete(s["version"])
                registry.mark_deleted(store.model, s["version"])
        except DriftlineError as exc:  # the receipt is committed: say what is left
            log.error("erase: could not tag or delete a superseded version",
                      extra={"fields": {"version": s["version"], "error": str(exc)}})
    log.info("keyed command applied", extra={"fields": {"action": "erase", "task": task.index,
                                                        "version": result["version"]}})
    return {**result, "task": task.index}
