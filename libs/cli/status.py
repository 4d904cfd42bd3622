"""`switchboard status [--json]`: never raises; non-zero only when a required part is down."""

from __future__ import annotations

import json
import sys

import click

from libs.common.settings import Settings
from libs.queueops import status as status_report


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Report database, broker, queues, workers and scheduler."""
    report = status_report.collect(settings)
    click.echo(json.dumps(report, indent=2) if as_json else status_report.render_text(report))
    sys.exit(0 if report["ok"] else 1)


@click.command("heartbeat-check")
@click.pass_obj
def heartbeat_check(settings: Settings) -> None:
    """Exit 0 when a worker process on this host has a live heartbeat (container healthcheck)."""
    import socket

    from libs.common.redis_client import redis_from_url
    from libs.queueops import heartbeats

    if not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set")
    host = socket.gethostname()
    try:
        beats = heartbeats.live_workers(redis_from_url(settings.redis_url, timeout_s=3))
    except Exception as exc:  # a healthcheck reports, it does not crash
        raise click.ClickException(f"cannot read heartbeats: {type(exc).__name__}") from None
    mine = [b for b in beats if b.host == host]
    if not mine:
        raise click.ClickException(f"no live worker heartbeat from {host}")
    click.echo(f"{len(mine)} worker process(es) on {host} alive")
