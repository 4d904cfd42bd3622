"""`switchboard status [--json]`: never raises; non-zero only when a required part is down."""

from __future__ import annotations

import json
import sys

import click

from libs.common import status as status_report
from libs.common.settings import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Report database, broker, queues, workers and scheduler."""
    report = status_report.collect(settings)
    click.echo(json.dumps(report, indent=2) if as_json else status_report.render_text(report))
    sys.exit(0 if report["ok"] else 1)
