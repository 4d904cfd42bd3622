"""Opens the database engine when a worker boots and disposes of it at shutdown."""

from __future__ import annotations

from typing import Any

from dramatiq.middleware import Middleware

from libs.common.db import Database

_database: Database | None = None


def worker_database() -> Database:
    """The worker process's database; actors open their sessions from it."""
    if _database is None:
        raise RuntimeError("the database middleware has not booted in this process")
    return _database


class DatabaseMiddleware(Middleware):
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        global _database
        # Created here, not at import: each forked worker process needs its own connections.
        if _database is None:
            _database = Database(self.database_url)

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        global _database
        if _database is not None:
            _database.dispose()
            _database = None
