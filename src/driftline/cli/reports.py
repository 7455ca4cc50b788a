"""``driftline report``: a version's drift report as HTML."""

from __future__ import annotations

import click

from driftline.cli.common import _config
from driftline.exceptions import DriftlineError


@click.command()
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
