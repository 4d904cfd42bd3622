"""RQ job functions for the queue-throughput benchmark, and the worker class that preloads them.

RQ's worker forks a work horse per job. Run as plain ``rq worker``, the horse would import
this module and SQLAlchemy for every job; RQ's documentation ("Performance notes") says to
import such modules in the worker before it forks, which ``--worker-class
bench.queue_rq.PreloadedWorker`` does (it is RQ's own Worker, loaded from here). It goes one
step further for RQ: the engine is created and its dialect initialised (one connection, then
closed) in the worker before any fork, so a horse only opens its connection. The module imports
nothing else (no Switchboard, no Dramatiq): a fork copies the parent's page tables, so a lean
parent is RQ at its best.

Each horse still opens a new PostgreSQL connection, which dies with it: with a fork per job,
that is how RQ runs database code (a connection opened before the fork would be shared by
several processes at once).
"""

from __future__ import annotations

import os
from typing import Any

from rq import Worker
from sqlalchemy import Engine, create_engine, text

from bench.queue_rows import INSERT_ROW

_engine: Engine | None = None


def engine() -> Engine:
    global _engine
    if _engine is None:
        url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
        _engine = create_engine(url)
    return _engine


class PreloadedWorker(Worker):
    """RQ's Worker; importing it from here preloads the job functions, and it readies the
    engine (dialect loaded and initialised, no connection kept) before its first fork."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        with engine().connect():
            pass
        engine().dispose()  # no connection may cross the fork


def noop(n: int) -> None:
    """Nothing: what is left is RQ's own cost per job."""


def write_row(n: int) -> None:
    with engine().begin() as connection:
        connection.execute(text(INSERT_ROW), {"n": n})
