"""`switchboard db upgrade`."""

from __future__ import annotations

import click

from libs.common import migrate
from libs.common.db import normalize_url
from libs.common.settings import Settings


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.pass_obj
def upgrade(settings: Settings, revision: str) -> None:
    """Apply migrations up to REVISION."""
    migrate.upgrade(settings.database_url, revision)
    url = normalize_url(settings.database_url)
    click.echo(f"database at {_safe(url)} is at {revision}")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
