"""The deployment's topics: ``driftline topics create``, ``produce`` into them, ``tail`` them, and
forward their drift and lifecycle events to ``webhooks``."""

from __future__ import annotations

import os
import time

import click

from driftline.cli.common import _config, _port
from driftline.exceptions import DriftlineError

TAIL_IDLE_S = 5.0  # `tail` exits after this many seconds without a new record (unless --follow)


@click.group()
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


@click.command()
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


@click.command()
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


@click.command()
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
