"""Models and migrations agree, on SQLite and on PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from libs.common import migrate
from libs.common.db import create_db_engine
from libs.common.models import Base


def _differences(url: str) -> list[object]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_models_match_migrations_on_sqlite(sqlite_url: str) -> None:
    assert migrate.is_up_to_date(sqlite_url)
    assert _differences(sqlite_url) == []


def test_models_match_migrations_on_postgresql(postgres_url: str) -> None:
    assert migrate.is_up_to_date(postgres_url)
    assert _differences(postgres_url) == []


def test_a_model_change_without_migration_is_detected(sqlite_url: str) -> None:
    from sqlalchemy import Column, Integer, MetaData, Table

    extra = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    Table("not_migrated", extra, Column("id", Integer, primary_key=True))
    engine = create_db_engine(sqlite_url)
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), extra)
    engine.dispose()
    assert any(d[0] == "add_table" and d[1].name == "not_migrated" for d in diffs)


def test_downgrade_and_upgrade_round_trip(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/roundtrip.db"
    migrate.upgrade(url)
    from alembic import command

    command.downgrade(migrate.alembic_config(url), "base")
    migrate.upgrade(url)
    assert _differences(url) == []
