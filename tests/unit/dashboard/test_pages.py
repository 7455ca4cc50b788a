"""The admin server's pages on loopback: /dashboard, its static files, /events, reports."""

from __future__ import annotations

import http.client
import tempfile

import pytest

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.dashboard import LiveFeed, Sampler
from driftline.lifecycle.admin import AdminServer
from driftline.lifecycle.registry import Registry
from driftline.versions.store import VersionStore


@pytest.fixture
def served():
    tmp = tempfile.mkdtemp()
    store = VersionStore(tmp, "m", key=b"k")
    engine = Engine(DeploymentConfig(name="m"))
    store.save(1, {"parent": None, "trigger": "initial", "examples_seen": 0, "created_at": 1},
               {"engine": engine, "positions": {}})
    feed = LiveFeed(capacity=100, max_clients=1)
    server = AdminServer("m", Registry(f"{tmp}/registry.db"), lambda c: c, store, token=None, feed=feed)
    port = server.start()
    yield port, feed, engine
    server.stop()


def get(port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    return conn.getresponse()


def test_dashboard_and_static_files(served):
    port, _, _ = served
    page = get(port, "/dashboard")
    assert page.status == 200 and "default-src 'self'" in page.getheader("Content-Security-Policy")
    html = page.read().decode()
    assert 'id="version-badge"' in html and "/dashboard/static/uPlot.iife.min.js" in html
    assert get(port, "/dashboard/static/uPlot.iife.min.js").status == 200
    assert get(port, "/dashboard/static/../admin.py").status == 404


def test_events_replay_after_last_event_id_and_cap(served):
    port, feed, engine = served
    sampler = Sampler(feed, lambda: engine, lambda: {"version": 1, "scores": {}, "lag": {}})
    sampler.sample()  # version and tick
    sampler.sample()
    ids = [e.id for e in feed.since(None)]
    assert [e.event for e in feed.since(None)] == ["version", "tick", "tick"]
    stream = get(port, "/events", {"Last-Event-ID": str(ids[0])})
    assert stream.status == 200 and stream.getheader("Content-Type") == "text/event-stream"
    assert stream.readline() == b"retry: 2000\n"
    stream.readline()
    assert stream.readline() == f"id: {ids[1]}\n".encode()
    busy = get(port, "/events")  # max_clients=1
    assert busy.status == 503 and busy.getheader("Retry-After")


def test_version_report_route(served):
    port, _, _ = served
    for path in ("/versions/1/report", "/models/m/versions/1/report"):
        answer = get(port, path)
        assert answer.status == 200 and answer.getheader("Content-Type").startswith("text/html")
        assert "m, version 1" in answer.read().decode()
    assert get(port, "/versions/9/report").status == 404
    assert get(port, "/models/other/versions/1/report").status == 404
