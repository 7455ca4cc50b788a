"""The model lifecycle, ``driftline models``: versions, aliases, promotion, rollback, model cards and
serving history."""

from __future__ import annotations

from typing import Any

import click
import orjson

from driftline.cli.common import _config, _state_change
from driftline.config import DeploymentConfig
from driftline.exceptions import DriftlineError


@click.group()
def models() -> None:
    """Model lifecycle: versions, aliases, promotion, rollback and serving history.

    State changes go to the running processor's admin API when --admin-url (or
    DRIFTLINE_ADMIN_URL) is set, with the token from DRIFTLINE_ADMIN_TOKEN; otherwise the
    deployment must be stopped and the command runs in an embedded processor, which
    applies it between two batches, cuts a version and exits when the input is idle.
    While a processor of the deployment runs (its membership of the consumer group
    <group>.live, as the broker sees it), the embedded mode refuses and names its --admin-url.
    """


def _registry(config: DeploymentConfig):
    from driftline.lifecycle.registry import Registry, registry_path
    from driftline.versions.store import VersionStore

    registry = Registry(registry_path(config))
    registry.sync(VersionStore(config.checkpoint.store_url, config.name, key=b""))
    return registry


def _model_name(ctx: click.Context, model: str | None) -> DeploymentConfig:
    config = _config(ctx)
    if model and model != config.name:
        config = config.model_copy(update={"name": model})
    return config


def _metric(meta: dict[str, Any]) -> str:
    metrics = meta.get("metrics") or {}
    value = metrics.get("accuracy", metrics.get("mae"))
    return f"{value:.4f}" if isinstance(value, float) else "-"


@models.command("list")
@click.argument("model", required=False)
@click.option("--all", "show_all", is_flag=True, help="Include versions deleted by retention.")
@click.pass_context
def models_list(ctx: click.Context, model, show_all) -> None:
    """List the versions of MODEL (default: the deployment's), oldest first.

    In keyed mode the deployment's versions are its tasks': without MODEL, a line per task
    (its latest version); MODEL <name>.task-<p> lists the versions of task p."""
    config = _model_name(ctx, model)
    if config.scale.mode == "keyed" and model is None:
        _list_tasks(ctx, config)
        return
    try:
        rows = _registry(config).versions(config.name)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = [r for r in rows if show_all or r["status"] == "READY"]
    if not rows:
        click.echo(f"no versions of {config.name} in {config.checkpoint.store_url}")
        return
    from driftline.lifecycle.views import fmt_ms, table

    click.echo(table(
        ["version", "parent", "trigger", "created (UTC)", "examples", "accuracy", "aliases", "status", "flags"],
        [[r["version"], r["parent"], r["trigger"], fmt_ms(r["creation_timestamp"]), r["examples_seen"],
          _metric(r), ",".join(r["aliases"]) or None, r["status"],
          "DISPARATE-TREATMENT" if "disparate_treatment" in r["tags"] else None] for r in rows],
    ))


def _list_tasks(ctx: click.Context, config: DeploymentConfig) -> None:
    """Keyed mode: each task's latest version, read from the shared version store."""
    from driftline.lifecycle.registry import Registry, registry_path
    from driftline.lifecycle.views import fmt_ms, table
    from driftline.runtime.task import task_store_name
    from driftline.versions.store import VersionStore

    try:
        registry = Registry(registry_path(config))
        rows = []
        for index in range(config.partitions):
            name = task_store_name(config, index)
            registry.sync(VersionStore(config.checkpoint.store_url, name, key=b""))
            ready = [r for r in registry.versions(name) if r["status"] == "READY"]
            if ready:
                r = ready[-1]
                rows.append([index, name, len(ready), r["version"], r["trigger"], fmt_ms(r["creation_timestamp"]),
                             r["examples_seen"], _metric(r)])
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    if not rows:
        click.echo(f"no versions of {config.name}'s {config.partitions} tasks in {config.checkpoint.store_url}")
        return
    click.echo(table(["task", "model", "versions", "latest", "trigger", "created (UTC)", "examples", "accuracy"], rows))
    how = "".join(f" {flag} {ctx.obj[k]}" for flag, k in (("-c", "config_path"), ("--store", "store")) if ctx.obj.get(k))
    click.echo(f"versions of one task: driftline{how} models list {task_store_name(config, rows[0][0])}")


@models.command("rebuild-registry")
@click.pass_context
def models_rebuild_registry(ctx: click.Context) -> None:
    """Index every version and lifecycle event the compacted topics name (.versions,
    .checkpoints, .lifecycle) into this instance's registry; rows it holds already stay."""
    from driftline.lifecycle.registry import Registry, registry_path
    from driftline.runtime.rebuild import rebuild_registry

    config = _config(ctx)
    try:
        done = rebuild_registry(config, Registry(registry_path(config)))
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{config.name}: {done.versions} versions, {done.task_versions} task versions and "
               f"{done.lifecycle_events} lifecycle events added to the registry")


@models.command("show")
@click.argument("version")
@click.option("--model", help="Model name (default: the deployment's).")
@click.pass_context
def models_show(ctx: click.Context, version, model) -> None:
    """Show one VERSION (a number or an alias such as champion)."""
    config = _model_name(ctx, model)
    try:
        row = _registry(config).get(config.name, version)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    for key in ("name", "version", "aliases", "status", "parent", "trigger", "creation_timestamp", "source",
                "examples_seen", "stream_time", "positions", "offset_range", "event_time_range", "model_class",
                "variants", "tags", "metrics"):
        value = row.get(key)
        if isinstance(value, (dict, list)):
            value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        click.echo(f"{key:<19} {value}")


@models.command("card")
@click.argument("version")
@click.option("--model", help="Model name (default: the deployment's).")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the card as Markdown instead of JSON.")
@click.pass_context
def models_card(ctx: click.Context, version, model, as_markdown) -> None:
    """The model card of VERSION (Model Card Toolkit v0.0.2 JSON, or --markdown)."""
    from driftline.exceptions import SnapshotNotFoundError
    from driftline.lifecycle.card import build_card, markdown
    from driftline.versions.store import VersionStore

    config = _model_name(ctx, model)
    try:
        registry = _registry(config)
        number = registry.resolve(config.name, version)
        store = VersionStore(config.checkpoint.store_url, config.name, key=b"")
        lineage, current = [], number
        while current is not None and len(lineage) < 10_000:
            try:
                meta = store.meta(current)
            except SnapshotNotFoundError:
                if not lineage:
                    raise
                lineage.append({"version": current, "trigger": "deleted by retention"})
                break
            lineage.append(meta)
            current = meta.get("parent")
        card = build_card(config, lineage[0], lineage, registry.events(config.name))
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(markdown(card) if as_markdown else orjson.dumps(card, option=orjson.OPT_INDENT_2).decode())


@models.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--model", help="Model name (default: the deployment's).")
@click.pass_context
def models_diff(ctx: click.Context, a, b, model) -> None:
    """Compare versions A and B: metrics, parameters, lineage."""
    from driftline.lifecycle.views import diff_versions, table

    config = _model_name(ctx, model)
    try:
        registry = _registry(config)
        d = diff_versions(registry.get(config.name, a), registry.get(config.name, b))
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    def cut(value: Any) -> Any:
        text = value if isinstance(value, (int, float)) or value is None else str(value)
        return text if not isinstance(text, str) or len(text) <= 40 else text[:37] + "..."

    rows = [[f"metric {k}", v[0], v[1], v[2]] for k, v in d["metrics"].items()]
    rows += [[f"param {k}", cut(v[0]), cut(v[1]), None] for k, v in d["params"].items()]
    rows += [[k, cut(v[0]), cut(v[1]), None] for k, v in d["fields"].items()]
    click.echo(table(["", f"v{d['a']}", f"v{d['b']}", "delta"], rows) if rows else "identical")


@models.command("promote")
@click.argument("model", required=False)
@click.option("--challenger", help="Promote this challenger to champion.")
@click.option("--version", "version", help="Serve this stored version (blue/green swap of the champion).")
@click.option("--alias", default="champion", show_default=True, help="Alias to move (with --version).")
@click.option("--reason", default="", help="Why (recorded in the audit trail).")
@click.option("--admin-url", envvar="DRIFTLINE_ADMIN_URL", help="Admin API of the running processor.")
@click.option("--idle", default=2.0, show_default=True, help="Embedded mode: exit after this many idle seconds.")
@click.pass_context
def models_promote(ctx: click.Context, model, challenger, version, alias, reason, admin_url, idle) -> None:
    """Promote a challenger, or point an alias (champion by default) at a version."""
    config = _model_name(ctx, model)
    if bool(challenger) == bool(version):
        raise click.UsageError("give exactly one of --challenger or --version")
    action, params = ("promote", {"challenger": challenger}) if challenger else (
        "alias", {"alias": alias, "version": version})
    try:
        result = _state_change(ctx, config, action, params, reason, admin_url, idle)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    event = result["event"]
    click.echo(f"{event['action']}: {config.name} -> version {result['version']} ({event['id']})")
    click.echo(orjson.dumps(event["details"], option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


@models.command("rollback")
@click.argument("model", required=False)
@click.option("--to", "to", required=True, help="Version (or alias) to restore.")
@click.option("--replay", is_flag=True, help="Re-learn from its offsets forward to the current position.")
@click.option("--skip-from", type=int, help="First label to skip while replaying (offset or epoch ms).")
@click.option("--skip-to", type=int, help="Last label to skip while replaying (inclusive).")
@click.option("--skip-by", type=click.Choice(["offset", "time"]), default="time", show_default=True)
@click.option("--key", help="Keyed mode: restore this key's model from version --to of its task.")
@click.option("--reason", default="", help="Why (recorded in the audit trail).")
@click.option("--admin-url", envvar="DRIFTLINE_ADMIN_URL", help="Admin API of the running processor.")
@click.option("--idle", default=2.0, show_default=True, help="Embedded mode: exit after this many idle seconds.")
@click.pass_context
def models_rollback(ctx: click.Context, model, to, replay, skip_from, skip_to, skip_by, key, reason, admin_url,
                    idle) -> None:
    """Restore a version as a new one (its parent); never deletes the versions it replaces.

    In keyed mode give --key: the key's model, metrics and learned count come back from
    version --to of the key's task (driftline models list <model>.task-<p>), as a new version
    of that task; the other keys go on unchanged."""
    config = _model_name(ctx, model)
    params: dict[str, Any] = {"to": to, "replay": replay}
    if key is not None:
        params["key"] = key
    if skip_from is not None or skip_to is not None:
        if not replay or skip_from is None or skip_to is None:
            raise click.UsageError("--skip-from and --skip-to go together, with --replay")
        params["skip"] = {"by": skip_by, "start": skip_from, "end": skip_to}
    try:
        result = _state_change(ctx, config, "rollback", params, reason, admin_url, idle)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    d = result["event"]["details"]
    if key is not None:
        click.echo(f"rollback: key {key} of {config.name} (task {d['task']}) restored from v{d['to']} as version "
                   f"{result['version']} of the task; examples learned {d['examples_seen']}")
        return
    click.echo(f"rollback: {config.name} restored v{d['to']} (replacing v{d['replaced']}) as version "
               f"{result['version']}; replayed {d.get('replayed', 0)} records, skipped {d.get('skipped_labels', 0)} "
               f"labels; examples learned {d['examples_seen']}")


@models.command("reset")
@click.argument("model", required=False)
@click.option("--key", help="Keyed mode: reset this key's model only.")
@click.option("--reason", default="", help="Why (recorded in the audit trail).")
@click.option("--admin-url", envvar="DRIFTLINE_ADMIN_URL", help="Admin API of the running processor.")
@click.option("--idle", default=2.0, show_default=True, help="Embedded mode: exit after this many idle seconds.")
@click.pass_context
def models_reset(ctx: click.Context, model, key, reason, admin_url, idle) -> None:
    """Serve a fresh model of the configured kind from now on, as a new version (its metrics
    start over; pending events still learn). In keyed mode --key resets one key's model."""
    config = _model_name(ctx, model)
    try:
        result = _state_change(ctx, config, "reset", {"key": key} if key is not None else {}, reason,
                               admin_url, idle)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    where = f"key {key} of {config.name} (task {result['task']})" if key is not None else config.name
    click.echo(f"reset: {where} serves a fresh model as version {result['version']} ({result['event']['id']})")


@models.command("history")
@click.argument("model", required=False)
@click.option("--key", help="Event key (id) to look up ...")
@click.option("--at", "at", type=int, help="... at this event time (epoch ms).")
@click.pass_context
def models_history(ctx: click.Context, model, key, at) -> None:
    """Serving intervals and lifecycle events; with --key/--at, who served that event."""
    from driftline.lifecycle.views import fmt_ms, table

    config = _model_name(ctx, model)
    try:
        registry = _registry(config)
        if key is not None:
            if at is None:
                raise click.UsageError("--key needs --at")
            answer = registry.served_by(config.name, key, at)
            click.echo(f"key {key} at {at} ({fmt_ms(at)} UTC) was served by version {answer['version']}, "
                       f"variant {answer['variant']} (version serving stream time {answer['interval'][0]} "
                       f"to {answer['interval'][1] or 'now'})")
            return
        serving, events = registry.serving(config.name), registry.events(config.name)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(table(["version", "trigger", "serves after (stream ms)", "until", "variants", "status"],
                     [[s["version"], s["trigger"], s["from"], s["to"],
                       ",".join(f"{n}:{sh:g}" for n, sh in s["variants"]) or "champion", s["status"]]
                      for s in serving]))
    if events:
        click.echo("")
        click.echo(table(["at (UTC)", "action", "actor", "version", "reason"],
                         [[fmt_ms(e["at"]), e["action"], e["actor"], e["details"].get("version"),
                           (e["reason"] or "")[:70]] for e in events]))
