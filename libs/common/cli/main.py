"""`switchboard`: run the stack, migrate, create businesses and tokens, report status, keys."""

from __future__ import annotations

import click

from libs.common.cli import admin, crypto, database, deploy, processes, run, status
from libs.common.settings import ConfigError, Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Switchboard: phone operations backend."""
    try:
        ctx.obj = Settings.from_env()
    except ConfigError as exc:
        raise click.UsageError(f"configuration: {exc}") from None


for command in (
    run.run,
    database.db,
    admin.business,
    admin.token,
    status.status,
    status.heartbeat_check,
    deploy.check_deploy,
    crypto.crypto,
    processes.worker,
    processes.scheduler,
    processes.calls,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="switchboard")
