"""What the command modules share: the deployment's config, one-line errors for a port that cannot
be bound, and lifecycle state changes (sent to the admin API or applied by an embedded processor)."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from typing import Any

import click
import orjson

from driftline.config import DeploymentConfig


def _config(ctx: click.Context) -> DeploymentConfig:
    return ctx.obj["config"]


@contextlib.contextmanager
def _port(what: str, port: int, flag: str, setting: str, from_config: bool) -> Iterator[None]:
    """Turn a port that cannot be bound into one line saying which and what to do."""
    try:
        yield
    except OSError as exc:
        where = f"{setting} in the config" if from_config else flag
        busy = exc.errno == errno.EADDRINUSE
        raise click.ClickException(
            f"cannot serve the {what} on port {port} ({where}): "
            + ("the port is already in use; stop the process using it or choose another port" if busy
               else f"{exc.strerror or exc}; choose another port")
            + f" with {flag} (0 turns it off)"
        ) from None


_NOT_HERE = "is not held by this instance"  # a keyed worker's 404 for a key of another worker's task


def _post(config: DeploymentConfig, admin_url: str, action: str, params: dict[str, Any], reason: str,
          actor: str) -> tuple[int, dict[str, Any] | str]:
    """POST a command to one admin API: (200, answer) or (status, error text)."""
    import urllib.error
    import urllib.request

    path = {"promote": "promote", "alias": "aliases", "rollback": "rollback", "erase": "erase",
            "reset": "reset"}[action]
    token = os.environ.get(config.lifecycle.token_env, "")
    request = urllib.request.Request(
        f"{admin_url.rstrip('/')}/models/{config.name}/{path}",
        data=orjson.dumps({**params, "reason": reason, "actor": actor}), method="POST",
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return 200, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except urllib.error.URLError as exc:
        raise click.ClickException(f"admin API unreachable at {admin_url}: {exc.reason}") from None


def _to_the_key(config: DeploymentConfig, action: str, params: dict[str, Any], reason: str,
                actor: str) -> dict[str, Any]:
    """Keyed mode without --admin-url: ask the running workers' admin APIs in turn (found
    through the deployment's liveness group) until the one whose task holds the key answers."""
    from driftline.runtime.liveness import live_instances

    if action not in ("reset", "rollback", "erase"):
        raise click.ClickException(f"keyed mode: {action} is not available; a key's model can be reset, rolled "
                                   "back or erased (with --key)")
    if not params.get("key"):
        raise click.ClickException("keyed mode: name the key (--key), or send the command to a worker "
                                   "with --admin-url (or DRIFTLINE_ADMIN_URL)")
    running = live_instances(config)
    urls = sorted({r["admin_url"] for r in running if r["admin_url"]})
    if not urls:
        raise click.ClickException(
            f"keyed mode: no running worker of {config.name} serves an admin API"
            + (" (start the workers with --admin-port)" if running else " (none is running)")
            + "; or send the command to one with --admin-url")
    for url in urls:
        status, answer = _post(config, url, action, params, reason, actor)
        if status == 200:
            return answer  # type: ignore[return-value]
        if not (status == 404 and _NOT_HERE in str(answer)):
            raise click.ClickException(f"{status}: {answer} ({url})")
    raise click.ClickException(f"key {params['key']!r} is held by none of the {len(urls)} running workers "
                               f"of {config.name} ({', '.join(urls)}): check the key")


def _state_change(ctx: click.Context, config: DeploymentConfig, action: str, params: dict[str, Any],
                  reason: str, admin_url: str | None, idle: float) -> dict[str, Any]:
    """Send a command to the running processor, or apply it with an embedded one; in keyed
    mode, to the worker that holds the command's key."""
    import getpass

    from driftline.lifecycle.commands import Command

    actor = f"cli:{getpass.getuser()}"
    if admin_url:
        status, answer = _post(config, admin_url, action, params, reason, actor)
        if status != 200:
            raise click.ClickException(f"{status}: {answer}")
        return answer  # type: ignore[return-value]
    if config.scale.mode == "keyed":  # an embedded worker would join the group and take tasks over
        return _to_the_key(config, action, params, reason, actor)
    from driftline.runtime.liveness import live_instances
    from driftline.runtime.processor import Processor

    # An embedded processor would fence the running one (the same transactional.id).
    if running := live_instances(config):
        urls = sorted({r["admin_url"] for r in running if r["admin_url"]})
        raise click.ClickException(
            f"the deployment is running: use --admin-url {urls[0] if urls else '<url>'} "
            f"({len(running)} instance{'s' if len(running) > 1 else ''} of {config.name}: "
            f"{'; '.join(r['instance'].split(' ', 1)[-1] for r in running)}"
            + ("" if urls else "; it serves no admin API: restart it with --admin-port") + ")"
        )
    processor = Processor(config, config.checkpoint.signing_key())
    command = processor.lifecycle.queue.submit(Command(action, params, actor=actor, reason=reason))
    processor.run(exit_when_idle_s=idle)
    return command.wait(0)
