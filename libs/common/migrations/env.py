"""Alembic environment: the URL comes from the config (set by libs.common.migrate), never a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from libs.common.db import create_db_engine
from libs.common.models import Base
from libs.common.settings import Settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    # Set by libs.common.migrate; the alembic CLI (alembic.ini) falls back to DATABASE_URL.
    return config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_db_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
