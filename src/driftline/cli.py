"""The ``driftline`` command line: topics, run, produce, tail and models."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import click
import orjson

from driftline.config import DeploymentConfig, load_config
from driftline.exceptions import DriftlineError
from driftline.observability.logs import configure_logging

log = logging.getLogger("driftline.cli")


def _config(ctx: click.Context) -> DeploymentConfig:
    return ctx.obj["config"]


@click.group()
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="Deployment config (TOML).")
@click.option("--name", help="Deployment (model) name; overrides the config.")
@click.option("--bootstrap", help="Kafka bootstrap servers (or DRIFTLINE_BOOTSTRAP_SERVERS).")
@click.option("--preset", help="Model preset, e.g. logistic_regression, hoeffding_tree.")
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
    secrets = [os.environ.get(config.checkpoint.key_env, "")]
    if config.kafka.sasl_password is not None:
        secrets.append(config.kafka.sasl_password.get_secret_value())
    configure_logging(log_level, secrets=secrets)
    ctx.obj = {"config": config}


@main.group()
def topics() -> None:
    """Provision the deployment's topics."""


@topics.command("create")
@click.pass_context
def topics_create(ctx: click.Context) -> None:
    """Create the six topics (idempotent) and check co-partitioning."""
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
@click.pass_context
def run(ctx: click.Context, metrics_port, exit_when_idle, max_seconds) -> None:
    """Run the processor: predict, join, learn, detect drift, cut versions."""
    from prometheus_client import start_http_server

    from driftline.runtime.processor import Processor

    config = _config(ctx)
    try:
        processor = Processor(config, config.checkpoint.signing_key())
        port = metrics_port if metrics_port is not None else config.processor.metrics_port
        if port:
            start_http_server(port, addr="0.0.0.0")
        processor.install_signal_handlers()
        engine = processor.run(exit_when_idle_s=exit_when_idle, max_seconds=max_seconds)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = {"model": config.name, "version": engine.version, "examples_learned": engine.n_learned,
               "counters": vars(engine.counters), "metrics": engine.scores.values()}
    click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


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
    from driftline.runtime.replay import replay

    try:
        rows = list(stream(dataset, limit=limit, target=target, seed=seed, drift_every=drift_every, noise=noise))
        started = time.monotonic()
        n = replay(_config(ctx), rows, label_delay=label_delay, rate=rate,
                   n_rows=len(rows) if rate == 0 else None)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"produced {n} events and {n} labels in {time.monotonic() - started:.1f}s")


@main.command()
@click.argument("kind", type=click.Choice(["predictions", "drift", "versions", "dlq", "features", "labels"]))
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message.")
@click.option("--max", "max_messages", type=int, help="Stop after this many messages.")
@click.option("--timeout", type=float, help="Stop after this many idle seconds.")
@click.pass_context
def tail(ctx: click.Context, kind, from_beginning, max_messages, timeout) -> None:
    """Pretty-print a topic of the deployment (read-committed)."""
    from driftline.runtime.tail import follow

    config = _config(ctx)
    for message in follow(config, getattr(config.topics, kind), from_beginning, max_messages, timeout):
        click.echo(message)


@main.command()
@click.option("--dataset", default="synth:agrawal", show_default=True)
@click.option("--events", default=40_000, show_default=True)
@click.option("--drift-every", default=10_000, show_default=True)
@click.option("--label-delay", default=100, show_default=True)
@click.option("--rate", default=4000.0, show_default=True, help="Events per second.")
@click.pass_context
def demo(ctx: click.Context, dataset, events, drift_every, label_delay, rate) -> None:
    """Replay a drifting stream while the processor learns from it, live."""
    from driftline.runtime.demo import run_demo

    config = _config(ctx)
    try:
        summary = run_demo(config, config.checkpoint.signing_key(), dataset, events, drift_every,
                           label_delay, rate, echo=click.echo)
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("summary: " + orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


@main.group()
def models() -> None:
    """Inspect model versions."""


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    """List the versions in the store, newest last."""
    from driftline.versions.store import VersionStore

    config = _config(ctx)
    store = VersionStore(config.checkpoint.store_url, config.name, key=b"")
    rows = [store.meta(v) for v in store.versions()]
    if not rows:
        click.echo(f"no versions of {config.name} in {config.checkpoint.store_url}")
        return
    header = f"{'version':>7}  {'parent':>6}  {'trigger':<9} {'created (UTC)':<19}  {'examples':>9}  {'accuracy':>8}  {'bytes':>9}"
    click.echo(header)
    for meta in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(meta["created_at"] / 1000))
        metric = meta.get("metrics", {}).get("accuracy", meta.get("metrics", {}).get("mae"))
        shown = f"{metric:.4f}" if isinstance(metric, float) else "-"
        click.echo(
            f"{meta['version']:>7}  {meta.get('parent') or '-':>6}  {meta['trigger']:<9} {created:<19}  "
            f"{meta['examples_seen']:>9}  {shown:>8}  {meta['payload_bytes']:>9}"
        )


if __name__ == "__main__":
    sys.exit(main())
