"""The admin API's routing and authentication, called without a socket."""

from __future__ import annotations

import pytest

from driftline.exceptions import LifecycleError
from driftline.lifecycle.admin import AdminServer, openapi
from driftline.lifecycle.commands import Command, SkipWindow
from driftline.lifecycle.registry import Registry
from driftline.versions.store import VersionStore


@pytest.fixture
def parts(tmp_path):
    submitted: list[Command] = []

    def submit(command: Command) -> Command:
        submitted.append(command)
        command.result = {"version": 9, "event": {"action": command.action}}
        command.done.set()
        return command

    store = VersionStore(str(tmp_path / "s"), "m", key=b"k")
    store.save(1, {"trigger": "initial", "examples_seen": 0}, {})
    return Registry(str(tmp_path / "r.sqlite")), submit, store, submitted


def _server(parts, token):
    registry, submit, store, _ = parts
    return AdminServer("m", registry, submit, store, token=token)


@pytest.mark.parametrize("auth", [None, "", "Bearer", "Bearer wrong", "Basic s3cret", "bearer s3cret-x"])
def test_state_changes_without_the_token_are_refused(parts, auth):
    server = _server(parts, "s3cret")
    with pytest.raises(LifecycleError) as err:
        server.handle("POST", "/models/m/promote", {}, {"challenger": "c"}, auth, "127.0.0.1")
    assert err.value.status == 401 and parts[3] == []


def test_without_a_configured_token_writes_are_disabled(parts):
    with pytest.raises(LifecycleError) as err:
        _server(parts, None).handle("POST", "/models/m/rollback", {}, {"to": 1}, "Bearer anything", "h")
    assert err.value.status == 403 and parts[3] == []


def test_an_authorised_command_reaches_the_queue_with_its_actor(parts):
    status, answer = _server(parts, "s3cret").handle(
        "POST", "/models/m/promote", {}, {"challenger": "c", "reason": "better", "actor": "ops"}, "Bearer s3cret", "10.0.0.1")
    command = parts[3][0]
    assert status == 200 and answer["version"] == 9
    assert (command.action, command.params, command.actor, command.reason) == (
        "promote", {"challenger": "c"}, "api:ops@10.0.0.1", "better")


def test_erase_is_an_authenticated_command(parts):
    server = _server(parts, "s3cret")
    with pytest.raises(LifecycleError) as err:
        server.handle("POST", "/models/m/erase", {}, {"key": "alice"}, None, "h")
    assert err.value.status == 401 and parts[3] == []
    status, _ = server.handle("POST", "/models/m/erase", {}, {"key": "alice", "reason": "art. 17"}, "Bearer s3cret", "h")
    command = parts[3][0]
    assert status == 200 and (command.action, command.params, command.reason) == ("erase", {"key": "alice"}, "art. 17")
    assert openapi("m")["paths"]["/models/m/erase"]["post"]["security"] == [{"bearer": []}]


def test_reads_are_open_and_sync_the_store(parts):
    status, versions = _server(parts, "s3cret").handle("GET", "/models/m/versions", {}, {}, None, "h")
    assert status == 200 and [v["version"] for v in versions] == [1]
    with pytest.raises(LifecycleError):
        _server(parts, "s3cret").handle("GET", "/models/other/versions", {}, {}, None, "h")


def test_openapi_marks_every_write_as_secured():
    doc = openapi("m")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert ("security" in op) == (method in ("post", "delete") and path != "/predict"), (path, method)


def test_skip_window_is_inclusive_and_only_for_labels(rec):
    skip = SkipWindow("time", 100, 200)
    assert [skip.skips(rec.label(0, t, "e", 1)) for t in (99, 100, 200, 201)] == [False, True, True, False]
    assert not skip.skips(rec.features(0, 150, "e", {"x": 1}))
