"""`switchboard crypto generate-key|rotate`: the keys of secrets at rest (ENCRYPTION_KEYS)."""

from __future__ import annotations

import sys

import click

from libs.cli import key_rotation
from libs.common import crypto as secrets_at_rest
from libs.common.db import Database
from libs.common.settings import ConfigError, Settings


@click.group()
def crypto() -> None:
    """Encryption keys for stored secrets (Gmail refresh tokens, webhook signing secrets)."""


@crypto.command("generate-key")
def generate_key() -> None:
    """Print a new Fernet key, to put first in ENCRYPTION_KEYS."""
    click.echo(secrets_at_rest.generate_key())


@crypto.command()
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_obj
def rotate(settings: Settings, batch_size: int) -> None:
    """Re-encrypt every stored secret with the first key of ENCRYPTION_KEYS.

    Afterwards the keys after the first can be removed from ENCRYPTION_KEYS.
    """
    try:
        box = secrets_at_rest.secret_box(settings)
    except ConfigError as exc:
        raise click.UsageError(f"configuration: {exc}") from None
    if not settings.encryption_keys:
        click.echo(f"ENCRYPTION_KEYS is unset: using the development key in {settings.var_dir}")

    def progress(rotation: key_rotation.Rotation) -> None:
        click.echo(f"  {rotation.column}: {rotation.rotated} so far")

    database = Database(settings.database_url)
    try:
        results = key_rotation.rotate_all(database, box, batch_size, progress)
    finally:
        database.dispose()
    for result in results:
        click.echo(f"{result.column}: {result.rotated} re-encrypted with the first key")
    unreadable = [r for r in results if r.unreadable]
    for result in unreadable:
        ids = ", ".join(map(str, result.unreadable[:50]))
        click.echo(
            f"{result.column}: {len(result.unreadable)} not readable with any configured key "
            f"(ids {ids}); put their key back in ENCRYPTION_KEYS, or reconnect those inboxes "
            "(webhook endpoints: rotate their secret)",
            err=True,
        )
    if unreadable:
        sys.exit(1)
    click.echo("every stored secret is under the first key: the others can be removed")
