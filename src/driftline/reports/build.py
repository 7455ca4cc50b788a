"""A version's report from the version store alone: load, verify, gather the lineage, render.

>>> import tempfile
>>> from driftline.config import DeploymentConfig
>>> from driftline.core.engine import Engine
>>> from driftline.versions.store import VersionStore
>>> store = VersionStore(tempfile.mkdtemp(), "demo", key=b"k")
>>> meta = {"parent": None, "trigger": "initial", "examples_seen": 0, "created_at": 0}
>>> _ = store.save(1, meta, {"engine": Engine(DeploymentConfig(name="demo")), "positions": {}})
>>> html = version_report(store)
>>> html.startswith("<!doctype html>"), "version 1" in html
(True, True)
"""

from __future__ import annotations

from typing import Any

from driftline.exceptions import SnapshotNotFoundError
from driftline.reports.data import report_data
from driftline.reports.render import render_html

__all__ = ["version_report", "lineage"]

MAX_LINEAGE = 50


def lineage(store: Any, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The version and its ancestors (newest first, at most ``MAX_LINEAGE``), from their headers."""
    chain = [meta]
    parent = meta.get("parent")
    while parent and len(chain) < MAX_LINEAGE:
        try:
            up = store.meta(int(parent))
        except SnapshotNotFoundError:  # removed by retention: the chain stops here
            break
        chain.append(up)
        parent = up.get("parent")
    return [{k: m.get(k) for k in ("version", "trigger", "created_at", "examples_seen", "metrics")} for m in chain]


def version_report(store: Any, version: int | None = None) -> str:
    """The HTML report of ``version`` (default: the latest); raises if there is none."""
    if version is None:
        version = store.latest()
        if version is None:
            raise SnapshotNotFoundError(f"{store.model}: no version stored yet")
    meta, state = store.load(int(version))  # verified: a report never trusts unsigned bytes
    return render_html(report_data(meta, state["engine"], lineage(store, meta)))
