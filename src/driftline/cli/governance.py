"""Governance: ``driftline erase`` (one data subject) and ``driftline audit verify`` (the audit log)."""

from __future__ import annotations

import click
import orjson

from driftline.cli.common import _config, _state_change
from driftline.exceptions import DriftlineError


@click.command("erase")
@click.option("--key", help="Erase every event whose record key is KEY.")
@click.option("--id", "event_id", help="Erase the event with this id (its features and its label).")
@click.option("--reason", default="", help="Why (recorded in the receipt and the audit log).")
@click.option("--admin-url", envvar="DRIFTLINE_ADMIN_URL", help="Admin API of the running processor.")
@click.option("--idle", default=2.0, show_default=True, help="Embedded mode: exit after this many idle seconds.")
@click.pass_context
def erase(ctx: click.Context, key, event_id, reason, admin_url, idle) -> None:
    """Erase one data subject: re-learn without its events, cut a version, print the receipt."""
    if bool(key) == bool(event_id):
        raise click.UsageError("give exactly one of --key or --id")
    config = _config(ctx)
    try:
        result = _state_change(ctx, config, "erase", {"key": key} if key else {"id": event_id}, reason, admin_url,
                               idle)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    d = result["event"]["details"]
    removed = sum(v for k, v in d["removed"].items() if k != "join_buffer")
    superseded = ", ".join("v%d" % s["version"] for s in d["superseded"]) or "none"
    deleted = " (deleted)" if d["superseded_deleted"] else ""
    if "task" in d:  # keyed mode: the key's own model is dropped, nothing replayed
        click.echo(f"erase: {config.name} task {d['task']} dropped the key's model ({d['examples_unlearned']} "
                   f"examples, {removed} records) as version {result['version']} of the task; superseded: "
                   f"{superseded}{deleted} ({result['event']['id']})")
    else:
        click.echo(f"erase: {config.name} restored v{d['restored']} and replayed {d['replayed']} records without "
                   f"the subject's {removed}, as version {result['version']}; superseded: {superseded}{deleted} "
                   f"({result['event']['id']})")
    click.echo(orjson.dumps(result["event"]["details"], option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


@click.group()
def audit() -> None:
    """The tamper-evident audit log (.audit): a hash chain of signed entries."""


@audit.command("verify")
@click.option("--from-genesis", is_flag=True,
              help="Require the chain's first entry (seq 0): fails once retention has removed it.")
@click.pass_context
def audit_verify(ctx: click.Context, from_genesis) -> None:
    """Check the chain with the snapshot key; name the first bad entry (exit 1)."""
    from driftline.runtime.audit import verify_topic

    config = _config(ctx)
    try:
        result = verify_topic(config, config.checkpoint.signing_key(), from_any=not from_genesis)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    if not result.ok:
        seq = "" if result.seq is None else f" (seq {result.seq})"
        raise click.ClickException(f"audit log {config.topics.audit}: entry at offset {result.first_bad}{seq} "
                                   f"does not verify: {result.reason}; {result.entries} entries before it verify")
    since = f", from seq {result.seq} (older entries past retention)" if result.seq else ""
    click.echo(f"audit log {config.topics.audit}: {result.entries} entries verify{since}")
