"""`switchboard`: migrate, create businesses and tokens, run a process, report status, keys.

Development commands (`run`, `check-deploy`) live in the devtools package, which the production
image leaves out; they join this group through the `switchboard.commands` entry points
(pyproject.toml), so nothing here imports them."""

from __future__ import annotations

from importlib.metadata import entry_points

import click

from libs.cli import admin, crypto, database, processes, status
from libs.common.settings import ConfigError, Settings

#: The entry-point group through which other installed packages add commands.
COMMANDS_GROUP = "switchboard.commands"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Switchboard: phone operations backend."""
    try:
        ctx.obj = Settings.from_env()
    except ConfigError as exc:
        raise click.UsageError(f"configuration: {exc}") from None


for command in (
    database.db,
    admin.business,
    admin.token,
    status.status,
    status.heartbeat_check,
    crypto.crypto,
    processes.worker,
    processes.scheduler,
    processes.calls,
):
    cli.add_command(command)


def add_plugin_commands(group: click.Group) -> None:
    """Add the commands that installed packages declare under COMMANDS_GROUP. One whose
    package is absent (the image installs the project's metadata without devtools/) is left
    out; any other import error is a bug and raises."""
    for entry in entry_points(group=COMMANDS_GROUP):
        try:
            command = entry.load()
        except ModuleNotFoundError as exc:
            if exc.name != entry.module.split(".")[0]:
                raise
            continue
        group.add_command(command, entry.name)


def main() -> None:
    add_plugin_commands(cli)
    cli(prog_name="switchboard")
