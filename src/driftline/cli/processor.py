"""The commands that run a processor: ``driftline run`` (in global mode the trainer or a predictor) and
``driftline demo``."""

from __future__ import annotations

import logging
import os
import socket
import sys

import click
import orjson

from driftline.cli.common import _config, _port
from driftline.exceptions import DriftlineError

log = logging.getLogger("driftline.cli")


@click.command()
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
    from driftline.runtime.processor import Processor

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
        raise _fenced(exc) from None
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
        raise _fenced(exc) from None
    except DriftlineError as exc:
        raise click.ClickException(str(exc)) from exc
    if role == "predictor":
        summary = runner.summary()
    else:
        summary = {"model": config.name, "role": "trainer", "released": runner.released,
                   "examples_learned": engine.n_learned, "counters": vars(engine.counters),
                   "metrics": engine.scores.values()}
    click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())


@click.command()
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


def _fenced(exc: Exception) -> click.ClickException:
    """The one-line error of a fenced process, with its exit code (3)."""
    from driftline.runtime.processor import EXIT_FENCED

    fenced = click.ClickException(str(exc))
    fenced.exit_code = EXIT_FENCED
    return fenced
