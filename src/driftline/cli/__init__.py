"""The ``driftline`` command line: topics, run, produce, tail and models.

The root group is here; its commands are in modules named after what they hold: :mod:`.processor`
(run, demo), :mod:`.streams` (topics, produce, tail, webhooks), :mod:`.lifecycle` (models),
:mod:`.reports` (report) and :mod:`.governance` (erase, audit). Each command imports what it needs
when it runs, so that ``driftline --help`` stays fast.
"""

from __future__ import annotations

import os
from typing import Any

import click

from driftline import __version__
from driftline.cli.governance import audit, erase
from driftline.cli.lifecycle import models
from driftline.cli.processor import demo, run
from driftline.cli.reports import report
from driftline.cli.streams import produce, tail, topics, webhooks
from driftline.config import load_config, secret_from_env
from driftline.exceptions import DriftlineError
from driftline.observability.logs import configure_logging


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


for _command in (topics, run, produce, tail, webhooks, demo, report, models, erase, audit):
    main.add_command(_command)
del _command
