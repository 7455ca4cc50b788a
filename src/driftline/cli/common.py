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


def _state_change(ctx: click.Context, config: DeploymentConfig, action: str, params: dict[str, Any],
                  reason: str, admin_url: str | None, idle: float) -> dict[str, Any]:
    """Send a command to the running processor, or apply it with an embedded one."""
    import getpass

    from driftline.lifecycle.commands import Command

    actor = f"cli:{getpass.getuser()}"
    if admin_url:
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
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise click.ClickException(f"{exc.code}: {exc.read().decode(errors='replace')}") from None
        except urllib.error.URLError as exc:
            raise click.ClickException(f"admin API unreachable at {admin_url}: {exc.reason}") from None
    if config.scale.mode != "single":  # an embedded worker would join the group and take tasks over
        raise click.ClickException(f"{config.scale.mode} mode: send the command to the running worker that "
                                   "holds the key, with --admin-url (or DRIFTLINE_ADMIN_URL)")
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
