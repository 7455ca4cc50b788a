"""Keyed models: one :class:`~driftline.core.engine.Engine` per entity key, in bounded memory.

In keyed mode (``[scale] mode = "keyed"``) the Kafka record key of every feature and label
event names an entity (a customer, a sensor). :class:`KeyedEngine` routes each record by
that key to the key's own engine (model, detectors, metrics and join buffer), built from the
deployment's config on the key's first record, and names the key in every output. Each
key's engine sees exactly that key's records in their order, so its predictions and final
model are those of a separate ``Engine`` fed only that key's records (its join window runs
on that key's event time).

At most ``max_keys_in_memory`` engines stay resident; the least recently used one is pickled
into a :class:`~driftline.core.cold.ColdStore` and restored on its key's next record, which
changes nothing in the outputs (a pickled engine continues identically).

The attributes a runtime reads from an ``Engine`` exist here as aggregates over every key
(``n_learned``, ``model_examples``, ``counters``, ``scores``, ``join``, ``stream_time``,
``checkpoint_due``, ``version``, ``model``, ``schema``, ``predict``), so a processor can
drive either one.

>>> from driftline.config import DeploymentConfig
>>> from driftline.core.events import InputRecord
>>> keyed = KeyedEngine(DeploymentConfig(name="demo", scale={"mode": "keyed"}))
>>> out = keyed.process(InputRecord("features", 0, 0, 1000, b"sensor-1", b'{"id": "e1", "features": {"x": 1.0}}'), 0)
>>> out[0].key, out[0].body()["key"]
('sensor-1', 'sensor-1')
>>> keyed.process(InputRecord("labels", 0, 1, 1010, b"sensor-1", b'{"id": "e1", "label": true}'), 0)
[]
>>> keyed.process(InputRecord("features", 0, 2, 1020, None, b'{"id": "e2", "features": {"x": 1.0}}'), 0)[0].reason
'missing_key'
>>> keyed.n_learned, keyed.counters.dead_letters, keyed.top_keys(1)
(1, 1, [('sensor-1', 2)])
"""

from __future__ import annotations

import heapq
import math
import pickle
from dataclasses import replace
from typing import Any

from river import base

from driftline.config import DeploymentConfig
from driftline.core.cold import ColdStore, MemoryColdStore
from driftline.core.engine import Counters, Engine
from driftline.core.events import InputRecord
from driftline.core.outputs import DeadLetter, DriftEvent, LifecycleEvent, Output, Prediction, ShadowPrediction
from driftline.exceptions import BadEventError, SnapshotNotFoundError

__all__ = ["KeyedEngine", "KeyedScores", "KeyedJoin"]


class KeyedEngine:
    """Per-key engines behind the ``Engine`` contract: ``process(record, now_ms) -> outputs``.

    ``cold`` receives the evicted keys (default: a :class:`MemoryColdStore`, pickled with
    this engine); ``max_keys`` overrides ``config.scale.max_keys_in_memory``.
    """

    # No challengers or mini-batch at this level (each key's engine has its own if configured).
    arena: Any = None
    minibatch: Any = None

    def __init__(self, config: DeploymentConfig, cold: ColdStore | None = None, max_keys: int | None = None) -> None:
        self.config = config
        self.max_keys = max_keys if max_keys is not None else config.scale.max_keys_in_memory
        if self.max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {self.max_keys}")
        self.cold: ColdStore | None = cold if cold is not None else MemoryColdStore()
        self._resident: dict[str, Engine] = {}  # least recently used first
        self._evicted: dict[str, str] = {}  # key -> its cold store reference
        # What an evicted key contributes to the aggregates, as of its eviction.
        self._cold_view: dict[str, tuple[dict[str, float], int, int, int]] = {}
        self.events: dict[str, int] = {}  # records routed to each key (skew)
        self.counters = Counters()  # summed over every key, plus key-less dead letters
        self.n_learned = 0
        self.version = 0
        self.stream_time = 0
        self.checkpoint_due: str | None = None
        self.evictions = 0
        self.restores = 0
        self._last_key: str | None = None
        self._last: Engine | None = None
        self._template = Engine(config)  # the model a new key starts from; schema, task

    # -- what a runtime reads ------------------------------------------------------------

    @property
    def model(self) -> base.Estimator:
        """A fresh estimator of the configured kind (snapshot metadata: class and params)."""
        return self._template.model

    @property
    def model_examples(self) -> int:
        """Examples the keys' models have learned: ``n_learned`` (no key's model is replaced
        from outside in keyed mode)."""
        return self.n_learned

    @property
    def schema(self):
        return self._template.schema

    @property
    def task(self) -> str:
        return self._template.task

    @property
    def scores(self) -> KeyedScores:
        return KeyedScores(self)

    @property
    def join(self) -> KeyedJoin:
        return KeyedJoin(self)

    @property
    def resident(self) -> int:
        return len(self._resident)

    def keys(self) -> list[str]:
        """Every key seen, in order of first sight."""
        return list(self.events)

    def top_keys(self, n: int | None = None) -> list[tuple[str, int]]:
        """The ``n`` keys with the most records (default ``config.scale.top_keys``), busiest
        first; ties by key, so the answer does not depend on arrival order."""
        n = self.config.scale.top_keys if n is None else n
        return heapq.nsmallest(n, ((k, c) for k, c in self.events.items()), key=lambda kc: (-kc[1], kc[0]))

    def key_stats(self) -> dict[str, float]:
        """Counts for metrics: keys seen, resident and evicted; evictions and restores so far;
        records of the busiest key and the mean per key (skew)."""
        counts = self.events.values()
        return {
            "keys": len(self.events),
            "resident": len(self._resident),
            "evicted": len(self._evicted),
            "evictions": self.evictions,
            "restores": self.restores,
            "events_max": max(counts, default=0),
            "events_mean": sum(counts) / len(counts) if counts else 0.0,
            "records": sum(counts),
        }

    def engine_for(self, key: str) -> Engine:
        """The key's engine (restored or created if it is not resident), now the most recent."""
        if key == self._last_key:
            return self._last
        resident = self._resident
        engine = resident.pop(key, None)
        if engine is None:
            engine = self._restore(key) if key in self._evicted else Engine(self.config)
            if len(resident) >= self.max_keys:
                self._evict(next(iter(resident)))  # the least recently used
            resident[key] = engine
        else:
            resident[key] = engine  # to the most recent end
        self._last_key, self._last = key, engine
        return engine

    def predict(self, features: dict[str, Any], key: str | None = None) -> tuple[Any, dict[Any, float] | None]:
        """The key's model's prediction, as ``Engine.predict`` (a synchronous request): a key
        never seen gets a fresh model's answer and no state."""
        if key is None:
            raise BadEventError("missing_key", "keyed mode: name the key whose model should predict")
        if key in self._resident or key in self._evicted:
            return self.engine_for(key).predict(features)
        return self._template.predict(features)

    # -- one key's model, for lifecycle commands (runtime/keyed_commands.py) ----------------

    def key_engine(self, key: str) -> Engine | None:
        """The key's engine as it stands, without making it recent (None: never seen here).

        An evicted key's engine is a copy unpickled from the cold store."""
        if key in self._resident:
            return self._resident[key]
        ref = self._evicted.get(key)
        blob = self.cold.get(ref) if ref is not None and self.cold is not None else None
        return pickle.loads(blob) if blob is not None else None

    def with_key_engine(self, key: str, engine: Engine) -> KeyedEngine:
        """A copy of this keyed engine in which ``key`` has ``engine`` (resident, the most recent).

        This one is left as it was: the copy has containers of its own and shares the other
        keys' engines, so exactly one of the two may go on processing (a command serves the
        copy once its version is stored, or this one when that failed).

        >>> from driftline.config import DeploymentConfig
        >>> from driftline.core.events import InputRecord
        >>> keyed = KeyedEngine(DeploymentConfig(name="demo", scale={"mode": "keyed"}))
        >>> _ = keyed.process(InputRecord("features", 0, 0, 1000, b"s1", b'{"id": "e1", "features": {"x": 1.0}}'), 0)
        >>> fresh = Engine(keyed.config)
        >>> copy = keyed.with_key_engine("s1", fresh)
        >>> copy.key_engine("s1") is fresh, keyed.key_engine("s1") is fresh
        (True, False)
        """
        copy = object.__new__(KeyedEngine)
        copy.__dict__.update(self.__dict__)
        copy._resident = {k: e for k, e in self._resident.items() if k != key}
        copy._resident[key] = engine
        copy._last_key = copy._last = None
        copy.events = dict(self.events)
        copy.events.setdefault(key, 0)
        copy.counters = replace(self.counters)
        if key in self._evicted:  # its evicted copy is stale now: the copy forgets it
            copy._evicted = {k: r for k, r in self._evicted.items() if k != key}
            copy._cold_view = {k: v for k, v in self._cold_view.items() if k != key}
            if isinstance(self.cold, MemoryColdStore):
                copy.cold = self.cold.without(self._evicted[key])
        else:
            copy._evicted, copy._cold_view = dict(self._evicted), dict(self._cold_view)
        while len(copy._resident) > copy.max_keys:
            copy._evict(next(iter(copy._resident)))
        return copy

    def without_key(self, key: str) -> KeyedEngine:
        """A copy of this keyed engine that never saw ``key``: an erasure (runtime/keyed_commands.py).

        The key's engine learned from that key's records only, so dropping it (resident or
        evicted) together with its share of the aggregates and its record count unlearns
        them exactly; this one is left as it was.

        >>> from driftline.config import DeploymentConfig
        >>> from driftline.core.events import InputRecord
        >>> keyed = KeyedEngine(DeploymentConfig(name="demo", scale={"mode": "keyed"}))
        >>> for i, k in enumerate([b"s1", b"s2"]):
        ...     _ = keyed.process(InputRecord("features", 0, i, 1000 + i, k, b'{"id": "e%d", "features": {"x": 1.0}}' % i), 0)
        >>> erased = keyed.without_key("s1")
        >>> erased.keys(), erased.counters.features, keyed.keys()
        (['s2'], 1, ['s1', 's2'])
        """
        gone = self.key_engine(key)
        copy = self.with_key_engine(key, gone if gone is not None else Engine(self.config))
        del copy._resident[key]
        copy.events.pop(key, None)
        if gone is not None:
            for name, value in vars(gone.counters).items():
                setattr(copy.counters, name, getattr(copy.counters, name) - value)
            copy.n_learned -= gone.n_learned
        return copy

    # -- records ---------------------------------------------------------------------------

    def process(self, record: InputRecord, now_ms: int) -> list[Output]:
        """Route ``record`` to its key's engine; return its outputs, each naming the key."""
        raw = record.key
        if not raw:
            self.counters.dead_letters += 1
            return [DeadLetter(record, "missing_key", "keyed mode: the record needs a Kafka key naming its entity")]
        try:
            key = raw.decode()
        except UnicodeDecodeError:
            self.counters.dead_letters += 1
            return [DeadLetter(record, "malformed_key", "keyed mode: the record key must be UTF-8 text")]
        engine = self.engine_for(key)
        self.events[key] = self.events.get(key, 0) + 1
        engine.version = self.version
        c = engine.counters
        before = (c.features, c.labels, c.predictions, c.joined,
                  c.expired_features, c.expired_labels, c.dead_letters, c.drift_events, c.unsampled)
        learned = engine.n_learned
        out = engine.process(record, now_ms)
        agg = self.counters
        agg.features += c.features - before[0]
        agg.labels += c.labels - before[1]
        agg.predictions += c.predictions - before[2]
        agg.joined += c.joined - before[3]
        agg.expired_features += c.expired_features - before[4]
        agg.expired_labels += c.expired_labels - before[5]
        agg.dead_letters += c.dead_letters - before[6]
        agg.drift_events += c.drift_events - before[7]
        agg.unsampled += c.unsampled - before[8]
        self.n_learned += engine.n_learned - learned
        if engine.stream_time > self.stream_time:
            self.stream_time = engine.stream_time
        if engine.checkpoint_due is not None:
            self.checkpoint_due = self.checkpoint_due or engine.checkpoint_due
            engine.checkpoint_due = None
        for i, o in enumerate(out):
            kind = type(o)
            if kind is Prediction:
                o.key = key
            elif kind is DriftEvent:
                # Detectors of different keys fire at the same positions: the key keeps ids unique.
                out[i] = replace(o, id=f"{o.id}@{key}", key=key)
            elif kind is ShadowPrediction:
                o.prediction.key = key
            elif kind is LifecycleEvent:
                out[i] = replace(o, details={**o.details, "key": key})
        return out

    # -- eviction --------------------------------------------------------------------------

    def _evict(self, key: str) -> None:
        if self.cold is None:
            raise SnapshotNotFoundError("keyed engine has no cold store attached: call attach() after restoring it")
        engine = self._resident.pop(key)
        self.evictions += 1
        ref = f"{self.evictions}/{key}"
        self.cold.put(ref, pickle.dumps(engine, protocol=pickle.HIGHEST_PROTOCOL))
        self._evicted[key] = ref
        scores = engine.scores
        self._cold_view[key] = (scores.values() if scores.n else {}, scores.n,
                                engine.join.pending_features, engine.join.pending_labels)
        if key == self._last_key:
            self._last_key = self._last = None

    def _restore(self, key: str) -> Engine:
        if self.cold is None:
            raise SnapshotNotFoundError("keyed engine has no cold store attached: call attach() after restoring it")
        ref = self._evicted[key]
        blob = self.cold.get(ref)
        if blob is None:
            raise SnapshotNotFoundError(f"key {key!r}: its evicted state {ref!r} is not in the cold store")
        engine = pickle.loads(blob)
        del self._evicted[key]
        self.cold.release(ref)
        del self._cold_view[key]
        self.restores += 1
        return engine

    def attach(self, cold: ColdStore) -> None:
        """Give a restored engine its cold store back (only a MemoryColdStore travels inside)."""
        self.cold = cold

    # -- pickling --------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """A snapshot holds every resident engine and the evicted keys' references. The
        evicted engines themselves travel with it only in a :class:`MemoryColdStore`; any
        other store stays outside (the runtime keeps its blobs and calls :meth:`attach`)."""
        state = dict(self.__dict__)
        if not isinstance(self.cold, MemoryColdStore):
            state["cold"] = None
        state["_last_key"] = state["_last"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class KeyedScores:
    """Online metrics across keys: each metric is the mean over the keys that scored any
    example (a macro average); ``n`` is the examples scored by all of them.

    No label per key: this is what Prometheus gauges read (``values()``).
    """

    def __init__(self, keyed: KeyedEngine) -> None:
        self._keyed = keyed

    def _per_key(self):
        for values, n, _, _ in self._keyed._cold_view.values():
            yield values, n
        for engine in self._keyed._resident.values():
            scores = engine.scores
            yield (scores.values() if scores.n else {}), scores.n

    @property
    def n(self) -> int:
        return sum(n for _, n in self._per_key())

    def values(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        counts: dict[str, int] = {}
        for values, n in self._per_key():
            if not n:
                continue
            for name, value in values.items():
                if value is not None and math.isfinite(value):
                    totals[name] = totals.get(name, 0.0) + value
                    counts[name] = counts.get(name, 0) + 1
        return {name: totals[name] / counts[name] for name in totals}


class KeyedJoin:
    """Join buffer sizes summed over keys (evicted keys as of their eviction)."""

    def __init__(self, keyed: KeyedEngine) -> None:
        self._keyed = keyed

    @property
    def pending_features(self) -> int:
        k = self._keyed
        return sum(v[2] for v in k._cold_view.values()) + sum(e.join.pending_features for e in k._resident.values())

    @property
    def pending_labels(self) -> int:
        k = self._keyed
        return sum(v[3] for v in k._cold_view.values()) + sum(e.join.pending_labels for e in k._resident.values())
