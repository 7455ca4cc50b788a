"""The model registry: every version, its aliases, tags and the lifecycle audit trail.

SQLite (stdlib) by default. The schema is plain SQL that PostgreSQL accepts as is
(``BIGINT``, ``VARCHAR``, ``TEXT``, JSON kept as ``TEXT``, ``ON CONFLICT DO NOTHING``);
only the ``?`` placeholders would become ``%s`` under psycopg. Field names follow MLflow's
model-version entity where they overlap (``name``, ``version``, ``creation_timestamp``,
``description``, ``source``, ``status``, ``tags``, ``aliases``); the streaming fields come
from the version metadata (parent, trigger, positions, offset and event-time ranges,
examples seen, params, metrics). Rows are never removed: retention marks a version
``DELETED`` when its snapshot file goes, so the history stays answerable.

>>> import tempfile, os
>>> reg = Registry(os.path.join(tempfile.mkdtemp(), "registry.sqlite"))
>>> reg.register({"name": "m", "version": 1, "created_at": 5, "trigger": "initial", "examples_seen": 0,
...               "stream_time": 0}, source="file:///v/m/v00000001.snap")
True
>>> reg.set_alias("m", "champion", 1)
>>> reg.get("m", "champion")["version"], reg.aliases("m")
(1, {'champion': 1})
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from driftline.exceptions import RegistryError

__all__ = ["Registry", "SCHEMA", "registry_path", "mitigation_tags"]

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS model_versions (
        name VARCHAR(255) NOT NULL,
        version INTEGER NOT NULL,
        creation_timestamp BIGINT NOT NULL,
        description TEXT,
        source TEXT,
        status VARCHAR(20) NOT NULL,
        parent INTEGER,
        cut_trigger VARCHAR(40),
        examples_seen BIGINT,
        stream_time BIGINT,
        positions TEXT,
        offset_range TEXT,
        event_time_range TEXT,
        model_class VARCHAR(255),
        params TEXT,
        metrics TEXT,
        variants TEXT,
        champion TEXT,
        PRIMARY KEY (name, version)
    )""",
    """CREATE TABLE IF NOT EXISTS model_version_tags (
        name VARCHAR(255) NOT NULL,
        version INTEGER NOT NULL,
        tag_key VARCHAR(255) NOT NULL,
        tag_value TEXT,
        PRIMARY KEY (name, version, tag_key)
    )""",
    """CREATE TABLE IF NOT EXISTS model_aliases (
        name VARCHAR(255) NOT NULL,
        alias VARCHAR(255) NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (name, alias)
    )""",
    """CREATE TABLE IF NOT EXISTS lifecycle_events (
        id VARCHAR(255) PRIMARY KEY,
        name VARCHAR(255) NOT NULL,
        action VARCHAR(40) NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT,
        model_version INTEGER,
        details TEXT,
        at BIGINT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS lifecycle_events_by_model ON lifecycle_events (name, at)",
]

_JSON = ("positions", "offset_range", "event_time_range", "params", "metrics", "variants", "champion", "details")


def _redacted(url: str) -> str:
    """A database URL without its password, fit for a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def mitigation_tags(mitigation: dict[str, Any]) -> dict[str, str]:
    """The tags a version made under a fairness mitigation carries (core/fairness/switch.py):
    ``fairness_mitigation``, and ``disparate_treatment`` when it decides by group.

    >>> mitigation_tags({"policy": "group_threshold", "attribute": "sex", "disparate_treatment": True})["disparate_treatment"]
    'per-group decision thresholds on sex (acknowledged in config; unlawful in US credit decisions)'
    """
    tags = {"fairness_mitigation": f"{mitigation['policy']} on {mitigation['attribute']}"}
    if mitigation.get("disparate_treatment"):
        tags["disparate_treatment"] = (f"per-group decision thresholds on {mitigation['attribute']} "
                                       "(acknowledged in config; unlawful in US credit decisions)")
    return tags


class Registry:
    """One registry database (any number of models); a connection per call, thread-safe.

    ``path`` is a SQLite file, or a ``postgresql://user@host:port/db`` URL (psycopg 3; the
    password from ``PGPASSWORD`` or ``~/.pgpass``, as libpq reads it): the same statements
    run on both, so several machines can share one registry."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ready = False
        self._postgres = path.startswith(("postgresql://", "postgres://"))

    @contextmanager
    def _db(self) -> Iterator[Any]:
        if self._postgres:
            with self._pg() as conn:
                yield conn
            return
        try:
            if not self._ready:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise RegistryError(f"cannot open the registry {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        try:
            # The registry is an index that sync() rebuilds from the version store: WAL with
            # synchronous=NORMAL (no fsync per transaction) is enough, and it is called from
            # the processing loop at every version cut.
            conn.execute("PRAGMA synchronous=NORMAL")
            if not self._ready:
                conn.execute("PRAGMA journal_mode=WAL")
                for statement in SCHEMA:
                    conn.execute(statement)
                self._ready = True
            with conn:  # one transaction
                yield conn
        except sqlite3.Error as exc:
            raise RegistryError(f"registry {self.path}: {exc}") from exc
        finally:
            conn.close()

    @contextmanager
    def _pg(self) -> Iterator[Any]:
        import psycopg
        from psycopg.rows import dict_row

        where = _redacted(self.path)
        try:
            conn = psycopg.connect(self.path, row_factory=dict_row, connect_timeout=10)
        except psycopg.Error as exc:
            raise RegistryError(f"cannot open the registry {where}: {_first_line(exc)}") from None
        try:
            with conn.transaction():
                db = _Placeholders(conn)
                if not self._ready:
                    conn.execute("SELECT pg_advisory_xact_lock(2026120212)")  # workers starting together
                    for statement in SCHEMA:
                        conn.execute(statement)
                yield db
            self._ready = True
        except psycopg.Error as exc:
            raise RegistryError(f"registry {where}: {_first_line(exc)}") from None
        finally:
            conn.close()

    # -- versions ----------------------------------------------------------------------

    def register(self, meta: dict[str, Any], source: str, description: str = "") -> bool:
        """Index a version from its metadata (idempotent); True when it was new."""
        stream_time = meta.get("stream_time")
        if stream_time is None:  # versions cut before stream_time was recorded
            stream_time = (meta.get("event_time_range") or [None, None])[1]
        row = (
            meta["name"], meta["version"], meta.get("created_at", 0), description, source, "READY",
            meta.get("parent"), meta.get("trigger"), meta.get("examples_seen"), stream_time,
            *(json.dumps(meta.get(k), default=str) for k in ("positions", "offset_range", "event_time_range")),
            meta.get("model_class"), json.dumps(meta.get("params"), default=str),
            json.dumps(meta.get("metrics")), json.dumps(meta.get("variants") or []),
            json.dumps(meta.get("champion")),
        )
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO model_versions (name, version, creation_timestamp, description, source, status, parent,"
                " cut_trigger, examples_seen, stream_time, positions, offset_range, event_time_range, model_class,"
                " params, metrics, variants, champion) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                row,
            )
            new = cur.rowcount == 1
        if new and (mitigation := meta.get("mitigation")):
            for key, value in mitigation_tags(mitigation).items():
                self.set_tag(meta["name"], meta["version"], key, value)
        return new

    def sync(self, store: Any) -> list[int]:
        """Register every version in ``store`` that is not indexed yet; return them."""
        with self._db() as db:
            known = {r["version"] for r in db.execute("SELECT version FROM model_versions WHERE name = ?", (store.model,))}
        added = []
        for version in store.versions():
            if version not in known and self.register(store.meta(version), source=store.uri(version)):
                added.append(version)
        return added

    def versions(self, name: str) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM model_versions WHERE name = ? ORDER BY version", (name,)).fetchall()
            return [self._version(db, r) for r in rows]

    def get(self, name: str, version: int | str) -> dict[str, Any]:
        """One version by number or alias (``champion``)."""
        number = self.resolve(name, version)
        with self._db() as db:
            row = db.execute("SELECT * FROM model_versions WHERE name = ? AND version = ?", (name, number)).fetchone()
            if row is None:
                raise RegistryError(f"{name}: no version {version}")
            return self._version(db, row)

    def resolve(self, name: str, version: int | str) -> int:
        if isinstance(version, int) or str(version).lstrip("v").isdigit():
            return int(str(version).lstrip("v"))
        aliases = self.aliases(name)
        if version not in aliases:
            raise RegistryError(f"{name}: no alias {version!r} (aliases: {sorted(aliases)})")
        return aliases[version]

    def _version(self, db: Any, row: Any) -> dict[str, Any]:
        out = dict(row)
        out["trigger"] = out.pop("cut_trigger")
        for key in _JSON:
            if key in out and out[key] is not None:
                out[key] = json.loads(out[key])
        key = (out["name"], out["version"])
        out["tags"] = {r["tag_key"]: r["tag_value"] for r in db.execute(
            "SELECT tag_key, tag_value FROM model_version_tags WHERE name = ? AND version = ?", key)}
        out["aliases"] = [r["alias"] for r in db.execute(
            "SELECT alias FROM model_aliases WHERE name = ? AND version = ? ORDER BY alias", key)]
        return out

    def mark_deleted(self, name: str, version: int) -> None:
        with self._db() as db:
            db.execute("UPDATE model_versions SET status = 'DELETED' WHERE name = ? AND version = ?", (name, version))

    # -- aliases and tags --------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> None:
        with self._db() as db:
            db.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", (name, alias))
            db.execute("INSERT INTO model_aliases (name, alias, version) VALUES (?, ?, ?)", (name, alias, version))

    def aliases(self, name: str) -> dict[str, int]:
        with self._db() as db:
            return {r["alias"]: r["version"] for r in db.execute(
                "SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,))}

    def set_tag(self, name: str, version: int, key: str, value: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM model_version_tags WHERE name = ? AND version = ? AND tag_key = ?",
                       (name, version, key))
            db.execute("INSERT INTO model_version_tags (name, version, tag_key, tag_value) VALUES (?, ?, ?, ?)",
                       (name, version, key, value))

    # -- the audit trail ---------------------------------------------------------------

    def record_event(self, body: dict[str, Any]) -> bool:
        """Store a lifecycle event (idempotent by id); True when it was new."""
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO lifecycle_events (id, name, action, actor, reason, model_version, details, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (body["id"], body["model"], body["action"], body["actor"], body.get("reason", ""),
                 body.get("model_version"), json.dumps(body.get("details", {}), default=str), body["at"]),
            )
            return cur.rowcount == 1

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM lifecycle_events WHERE name = ? ORDER BY at, id", (name,)).fetchall()
        out = []
        for row in rows:
            event = dict(row)
            event["details"] = json.loads(event["details"] or "{}")
            out.append(event)
        return out

    # -- retention and history -----------------------------------------------------------

    def retention_candidates(self, name: str, keep_last: int) -> list[int]:
        """READY versions outside the last ``keep_last`` that are not aliased, promoted,
        rolled back to or tagged ``keep``: the ones retention may delete."""
        rows = [v for v in self.versions(name) if v["status"] == "READY"]
        recent = {v["version"] for v in rows[-keep_last:]}
        return [
            v["version"] for v in rows
            if v["version"] not in recent and not v["aliases"] and "keep" not in v["tags"]
            and "promoted" not in v["tags"] and v["trigger"] not in ("promote", "rollback", "manual")
        ]

    def serving(self, name: str) -> list[dict[str, Any]]:
        """Serving intervals: version v served the events of stream time in ``(from, to]``,
        from its cut to the next one (``None`` = open).

        A version serves from the stream time at which it was cut, which never goes back: a
        rollback's version carries the restored engine's older stream time, but it starts
        serving where the stream is, so ``from`` is the running maximum."""
        rows = self.versions(name)
        starts: list[int | None] = []
        for v in rows:
            before = next((s for s in reversed(starts) if s is not None), None)
            now = v["stream_time"]
            starts.append(before if now is None or (before is not None and now < before) else now)
        out = []
        for i, v in enumerate(rows):
            nxt = starts[i + 1] if i + 1 < len(rows) else None
            out.append({"version": v["version"], "from": starts[i], "to": nxt,
                        "variants": v["variants"] or [], "trigger": v["trigger"], "status": v["status"]})
        return out

    def served_by(self, name: str, key: str, at: int) -> dict[str, Any]:
        """Which version and variant served event ``key`` with event time ``at``."""
        from driftline.core.arena import bucket_of

        chosen = None
        for interval in self.serving(name):
            start = interval["from"]
            if start is None or start < at:
                chosen = interval
        if chosen is None:
            raise RegistryError(f"{name}: no version served event time {at}")
        variant, point, edge = "champion", bucket_of(key), 0.0
        for challenger, share in chosen["variants"]:
            edge += share
            if point < edge:
                variant = challenger
                break
        return {"key": key, "at": at, "version": chosen["version"], "variant": variant,
                "interval": [chosen["from"], chosen["to"]]}


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class _Placeholders:
    """A psycopg connection that takes the registry's ``?`` placeholders (no statement here
    holds a literal ``?``)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), params)


def registry_path(config: Any) -> str:
    """The deployment's registry: ``[lifecycle] registry_url`` (a SQLite file or a
    ``postgresql://`` URL), else next to a local
    version store (``<store>/registry.sqlite``), else ``.driftline/registry.sqlite``."""
    if config.lifecycle.registry_url and config.lifecycle.registry_url.startswith(("postgresql://", "postgres://")):
        return config.lifecycle.registry_url
    if config.lifecycle.registry_url:
        return config.lifecycle.registry_url.removeprefix("sqlite:///").removeprefix("file://")
    url = config.checkpoint.store_url
    if "://" not in url or url.startswith("file://"):
        return os.path.join(url.removeprefix("file://"), "registry.sqlite")
    return os.path.join(".driftline", "registry.sqlite")
