"""The ``driftline`` command line: topics, run, produce, tail and models."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import click
import orjson

from driftline import __version__
from driftline.config import DeploymentConfig, load_config, secret_from_env
from driftline.exceptions import DriftlineError
from driftline.observability.logs import configure_logging

log = logging.getLogger("driftline.cli")

TAIL_IDLE_S = 5.0  # `tail` exits after this many seconds without a new record (unless --follow)


def _config(ctx: click.Context) -> DeploymentConfig:
    return ctx.obj["config"]


@click.group()
@click.version_option(__version__, "--version", "-V", prog_name="driftline")
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="Deployment config (TOML).")
@click.option("--name", help="Deployment (model) name; overrides the config.")
@click.option("--bootstrap", help="Kafka bootstrap servers (or DRIFTLINE_BOOTSTRAP_SERVERS).")
@click.option("--preset", help="Model preset (e.g. logistic_regression, hoeffding_tree) or module:factory "
                                "for any River estimator (e.g. river.tree:HoeffdingTreeClassifier).")
@click.option("--store", help="Version store directory or fsspec URL.")
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def main(ctx: click.Context, config_path, name, bootstrap, preset, store, log_level) -> None:
    """Driftline keeps River models learning from live Kafka streams."""
    overrides: dict[str, Any] = {"kafka": {"bootstrap_servers": bootstrap}}
    if name:
        overrides["name"] = name
    if preset:
        overrides["model"] = {"preset": preset}
    if store:
        overrides["checkpoint"] = {"store_url": store}
    if not config_path and not name:
        overrides["name"] = "demo"
    try:
        config = load_config(config_path, **overrides)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    try:  # Driftline's own secrets: at least MIN_SECRET_BYTES when set (the log redaction needs it)
        for env, what in ((config.checkpoint.key_env, "snapshot signing key"),
                          (config.lifecycle.token_env, "admin token"), ("DRIFTLINE_WEBHOOK_SECRET", "webhook secret"),
                          (config.governance.privacy.key_env, "privacy HMAC key")):
            secret_from_env(env, what, required=False)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    secrets = [os.environ.get(config.checkpoint.key_env, ""), os.environ.get(config.lifecycle.token_env, ""),
               os.environ.get("DRIFTLINE_WEBHOOK_SECRET", ""), os.environ.get(config.governance.privacy.key_env, "")]
    if config.kafka.sasl_password is not None:
        secrets.append(config.kafka.sasl_password.get_secret_value())
    configure_logging(log_level, secrets=secrets)
    ctx.obj = {"config": config, "config_path": config_path, "store": store}


@main.group()
def topics() -> None:
    """Provision the deployment's topics."""


@topics.command("create")
@click.pass_context
def topics_create(ctx: click.Context) -> None:
    """Create the deployment's topics (idempotent) and check co-partitioning."""
    from driftline.runtime.topics import create_topics

    try:
        result = create_topics(_config(ctx))
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    for topic, status in result.items():
        click.echo(f"{status:8} {topic}")


@main.command()
@click.option("--metrics-port", type=int, help="Serve Prometheus /metrics on this port.")
@click.option("--exit-when-idle", type=float, help="Stop after this many seconds without input.")
@click.option("--max-seconds", type=float, help="Stop after this many seconds.")
@click.option("--admin-port", type=int, help="Serve the admin API (lifecycle) on this port.")
@click.option("--instance", help="Keyed mode: this member's stable id (e.g. a StatefulSet ordinal).")
@click.option("--role", type=click.Choice(["trainer", "predictor"]),
              help="Global mode: the one trainer, or a predictor (with --instance).")
@click.pass_context
def run(ctx: click.Context, metrics_port, exit_when_idle, max_seconds, admin_port, instance, role) -> None:
    """Run the processor: predict, join, learn, detect drift, cut versions."""
    from prometheus_client import start_http_server

    from driftline.exceptions import FencedError
    from driftline.runtime.processor import EXIT_FENCED, Processor

    config = _config(ctx)
    if instance is not None or role is not None:
        update = {k: v for k, v in (("instance", instance), ("role", role)) if v is not None}
        try:
            config = config.model_copy(update={"scale": config.scale.model_copy(update=update)})
            type(config.scale).model_validate(config.scale.model_dump())
        except ValueError as exc:
            raise click.ClickException(str(exc).splitlines()[-1]) from None
    if config.scale.mode == "global":
        _run_global(config, metrics_port, exit_when_idle, max_seconds)
        return
    if config.scale.role is not None:
        raise click.ClickException(f"--role {config.scale.role} needs [scale] mode = \"global\"")
    try:
        processor = Processor(config, config.checkpoint.signing_key())
        port = metrics_port if metrics_port is not None else config.processor.metrics_port
        if port:
            with _port("metrics", port, "--metrics-port", "[processor] metrics_port", metrics_port is None):
                start_http_server(port, addr="0.0.0.0")
        admin_port_set = admin_port is not None
        admin_port = admin_port if admin_port_set else config.lifecycle.admin_port
        if admin_port:
            from driftline.dashboard import LiveFeed, Sampler
            from driftline.lifecycle.admin import AdminServer

            feed = LiveFeed()  # the live page, /dashboard: sampled from the processor's state once a second
            Sampler(feed, lambda: processor.engine, processor.membership.state).start()
            admin = AdminServer(config.name, processor.lifecycle.registry, processor.lifecycle.queue.submit,
                                processor.store, os.environ.get(config.lifecycle.token_env) or None,
                                host=config.lifecycle.admin_host, port=admin_port, feed=feed,
                                alert_rules=config.lifecycle.alert_rules)
            with _port("admin API", admin_port, "--admin-port", "[lifecycle] admin_port", not admin_port_set):
                served = admin.start()
                log.info("admin API", extra={"fields": {"port": served}})
            host = config.lifecycle.admin_host
            processor.admin_url = f"http://{socket.gethostname() if host in ('', '0.0.0.0', '::') else host}:{served}"
        processor.install_signal_handlers()
        engine = processor.run(exit_when_idle_s=exit_when_idle, max_seconds=max_seconds)
    except FencedError as exc:
        fenced = click.ClickException(str(exc))
        fenced.exit_code = EXIT_FENCED
        raise fenced from None
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    dead = processor.dead_letters
    if engine is None:  # keyed mode: one engine per task
        summary = {"model": config.name, "instance": config.scale.instance, **processor.summary(),
                   "dead_letters": {"this_run": sum(dead.values()), "by_reason": dict(dead.most_common())}}
        click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
        return
    summary = {"model": config.name, "version": engine.version, "examples_learned": engine.n_learned,
               "dead_letters": {"this_run": sum(dead.values()), "by_reason": dict(dead.most_common())},
               "counters": vars(engine.counters), "metrics": engine.scores.values()}
    click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    if dead:
        reasons = ", ".join(f"{reason} {n}" for reason, n in dead.most_common(3))
        click.echo(f"warning: {sum(dead.values())} input records of this run were dead-lettered ({reasons}); "
                   f"`driftline tail dlq` shows them with the reason", err=True)


def _run_global(config, metrics_port, exit_when_idle, max_seconds) -> None:
    """Global mode: the trainer (a processor releasing versions) or a predictor."""
    import signal

    from prometheus_client import start_http_server

    from driftline.exceptions import FencedError
    from driftline.runtime.processor import EXIT_FENCED

    role = config.scale.role
    if role is None:
        raise click.ClickException("global mode: give a role, driftline run --role trainer|predictor")
    try:
        if role == "trainer":
            from driftline.runtime.trainer import Trainer

            runner = Trainer(config, config.checkpoint.signing_key())
        else:
            from driftline.runtime.predictor import Predictor

            runner = Predictor(config, config.checkpoint.signing_key())
        port = metrics_port if metrics_port is not None else config.processor.metrics_port
        if port:
            with _port("metrics", port, "--metrics-port", "[processor] metrics_port", metrics_port is None):
                start_http_server(port, addr="0.0.0.0")
        signal.signal(signal.SIGTERM, runner.stop)
        signal.signal(signal.SIGINT, runner.stop)
        engine = runner.run(exit_when_idle_s=exit_when_idle, max_seconds=max_seconds)
    except FencedError as exc:
        fenced = click.ClickException(str(exc))
        fenced.exit_code = EXIT_FENCED
        raise fenced from None
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    if role == "predictor":
        summary = runner.summary()
    else:
        summary = {"model": config.name, "role": "trainer", "released": runner.released,
                   "examples_learned": engine.n_learned, "counters": vars(engine.counters),
                   "metrics": engine.scores.values()}
    click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


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


@main.command()
@click.argument("dataset")
@click.option("--label-delay", default=0, show_default=True, help="Labels arrive this many events later.")
@click.option("--limit", type=int, help="Stop after this many events.")
@click.option("--rate", default=0.0, show_default=True, help="Events per second (0 = as fast as possible).")
@click.option("--target", help="Label column of a CSV file (default: the last column).")
@click.option("--seed", default=42, show_default=True)
@click.option("--drift-every", default=20_000, show_default=True, help="Concept switch period (synth:).")
@click.option("--noise", default=0.1, show_default=True, help="Label noise (synth:).")
@click.pass_context
def produce(ctx: click.Context, dataset, label_delay, limit, rate, target, seed, drift_every, noise) -> None:
    """Replay DATASET into the features and labels topics.

    DATASET is a CSV file, river:<Dataset> or synth:<sea|agrawal|sine|stagger|mixed>.
    """
    from driftline.datasets import stream
    from driftline.exceptions import SchemaMismatchError
    from driftline.runtime.replay import pacing_block, replay

    try:
        rows = list(stream(dataset, limit=limit, target=target, seed=seed, drift_every=drift_every, noise=noise))
        started = time.monotonic()
        n = replay(_config(ctx), rows, label_delay=label_delay, rate=rate,
                   n_rows=len(rows) if rate == 0 else None)
    except SchemaMismatchError as exc:
        raise click.ClickException(f"{dataset}: {exc}; nothing was sent") from exc
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"produced {n} events and {n} labels in {time.monotonic() - started:.1f}s "
               f"(paced: each block of {pacing_block(rate)} events' labels was acknowledged before its "
               "features were sent, so a running processor predicts as if all had been produced first)")


@main.command()
@click.argument("kind", type=click.Choice(["predictions", "drift", "versions", "dlq", "features", "labels",
                                           "shadow", "lifecycle", "audit"]))
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message.")
@click.option("-n", "--last", default=10, show_default=True,
              help="Without --from-beginning: start this many messages before the end of each partition.")
@click.option("-f", "--follow", "keep_following", is_flag=True,
              help="Keep waiting for new messages (until Ctrl-C, --max or --timeout).")
@click.option("--max", "max_messages", type=int, help="Stop after this many messages.")
@click.option("--timeout", type=float,
              help=f"Stop after this many idle seconds [default: {TAIL_IDLE_S:g}; none with --follow].")
@click.option("--json", "as_json", is_flag=True, help="Print each record's raw JSON body on one line (for jq).")
@click.pass_context
def tail(ctx: click.Context, kind, from_beginning, last, keep_following, max_messages, timeout, as_json) -> None:
    """Print the records of a topic of the deployment (read-committed), readable by default.

    Shows the last 10 records of each partition (all with --from-beginning) and exits once
    no new record came for a few seconds; -f keeps following.
    """
    from driftline.runtime.tail import follow

    config = _config(ctx)
    if timeout is None and not keep_following:
        timeout = TAIL_IDLE_S
    try:
        for message in follow(config, getattr(config.topics, kind), from_beginning, max_messages, timeout,
                              last=last, style="json" if as_json else "pretty"):
            click.echo(message if as_json else message + "\n")
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--url", required=True, help="Receiver of the CloudEvents (HTTP POST, binary mode).")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["drift", "lifecycle"]),
              help="Topics to forward [default: drift and lifecycle].")
@click.option("--exit-when-idle", type=float, help="Stop after this many seconds without a new record.")
@click.option("--metrics-port", type=int, help="Serve /metrics (driftline_webhook_failures_total) on this port.")
@click.pass_context
def webhooks(ctx: click.Context, url, kinds, exit_when_idle, metrics_port) -> None:
    """Forward drift and lifecycle events to URL as signed CloudEvents (DRIFTLINE_WEBHOOK_SECRET)."""
    from driftline.runtime.webhooks import WebhookSink, forward

    config = _config(ctx)
    if metrics_port:
        from prometheus_client import start_http_server

        with _port("metrics", metrics_port, "--metrics-port", "", False):
            start_http_server(metrics_port, addr="0.0.0.0")
    try:
        sink = WebhookSink(url, os.environ.get("DRIFTLINE_WEBHOOK_SECRET", "").encode(), config.name)
        n = forward(config, sink, kinds or ("drift", "lifecycle"), idle_timeout=exit_when_idle)
    except (DriftlineError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"delivered {n} events to {url}")


@main.command()
@click.option("--dataset", default="synth:agrawal", show_default=True)
@click.option("--events", default=40_000, show_default=True)
@click.option("--drift-every", default=10_000, show_default=True)
@click.option("--label-delay", default=100, show_default=True)
@click.option("--rate", default=4000.0, show_default=True, help="Events per second.")
@click.pass_context
def demo(ctx: click.Context, dataset, events, drift_every, label_delay, rate) -> None:
    """Replay a drifting stream while the processor learns from it, live."""
    from driftline.runtime.demo import explore_commands, run_demo

    config = _config(ctx)
    try:
        summary = run_demo(config, config.checkpoint.signing_key(), dataset, events, drift_every,
                           label_delay, rate, echo=click.echo)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("summary: " + orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    # The program as typed (.venv/bin/driftline), so the commands work as printed.
    program = sys.argv[0] if os.path.basename(sys.argv[0]) == "driftline" else "driftline"
    click.echo("\nExplore:")
    for command in explore_commands(config, program, ctx.obj["config_path"], ctx.obj["store"]):
        click.echo(f"  {command}")


@main.command()
@click.option("--version", "version", type=int, help="Version number (default: the latest stored).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Where to write the HTML.")
@click.pass_context
def report(ctx: click.Context, version, output) -> None:
    """Write a version's drift report: self-contained HTML rebuilt from the version store."""
    from driftline.reports import version_report
    from driftline.versions.store import VersionStore

    config = _config(ctx)
    try:
        store = VersionStore(config.checkpoint.store_url, config.name, config.checkpoint.signing_key())
        html = version_report(store, version)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    with open(output, "w", encoding="utf-8") as fh:
        fh.write(html)
    click.echo(f"{output}: report of {config.name} version {version or store.latest()} ({len(html.encode())} bytes)")


@main.group()
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


def _state_change(ctx: click.Context, config: DeploymentConfig, action: str, params: dict[str, Any],
                  reason: str, admin_url: str | None, idle: float) -> dict[str, Any]:
    """Send a command to the running processor, or apply it with an embedded one."""
    import getpass

    from driftline.lifecycle.commands import Command

    actor = f"cli:{getpass.getuser()}"
    if admin_url:
        import urllib.error
        import urllib.request

        path = {"promote": "promote", "alias": "aliases", "rollback": "rollback", "erase": "erase"}[action]
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


@models.command("list")
@click.argument("model", required=False)
@click.option("--all", "show_all", is_flag=True, help="Include versions deleted by retention.")
@click.pass_context
def models_list(ctx: click.Context, model, show_all) -> None:
    """List the versions of MODEL (default: the deployment's), oldest first."""
    config = _model_name(ctx, model)
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
@click.option("--reason", default="", help="Why (recorded in the audit trail).")
@click.option("--admin-url", envvar="DRIFTLINE_ADMIN_URL", help="Admin API of the running processor.")
@click.option("--idle", default=2.0, show_default=True, help="Embedded mode: exit after this many idle seconds.")
@click.pass_context
def models_rollback(ctx: click.Context, model, to, replay, skip_from, skip_to, skip_by, reason, admin_url,
                    idle) -> None:
    """Restore a version as a new one (its parent); never deletes the versions it replaces."""
    config = _model_name(ctx, model)
    params: dict[str, Any] = {"to": to, "replay": replay}
    if skip_from is not None or skip_to is not None:
        if not replay or skip_from is None or skip_to is None:
            raise click.UsageError("--skip-from and --skip-to go together, with --replay")
        params["skip"] = {"by": skip_by, "start": skip_from, "end": skip_to}
    try:
        result = _state_change(ctx, config, "rollback", params, reason, admin_url, idle)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    d = result["event"]["details"]
    click.echo(f"rollback: {config.name} restored v{d['to']} (replacing v{d['replaced']}) as version "
               f"{result['version']}; replayed {d.get('replayed', 0)} records, skipped {d.get('skipped_labels', 0)} "
               f"labels; examples learned {d['examples_seen']}")


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


@main.command("erase")
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
    click.echo(f"erase: {config.name} restored v{d['restored']} and replayed {d['replayed']} records without the "
               f"subject's {removed}, as version {result['version']}; superseded: {superseded}"
               f"{' (deleted)' if d['superseded_deleted'] else ''} ({result['event']['id']})")
    click.echo(orjson.dumps(result["event"]["details"], option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


@main.group()
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


if __name__ == "__main__":
    sys.exit(main())
