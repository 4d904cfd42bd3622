"""Switchboard's worker stack plus the benchmark's two actors: ``dramatiq bench.queue_switchboard``.

Everything `switchboard worker` loads comes from ``services.worker.main`` itself (settings,
logging, the broker with its middleware list, every real actor bound through the contract
registry); the two benchmark actors are implemented the way every actor is: ``@implements``
on a contract, the database through the worker context the middleware opens at boot.
"""

from __future__ import annotations

from sqlalchemy import text

from bench.queue_workloads import INSERT_ROW, NOOP_CONTRACT, WRITE_ROW_CONTRACT
from libs.queueops.middleware.worker_context import worker_context
from services.worker.registry import implements


@implements(NOOP_CONTRACT)
def noop(n: int) -> None:
    """Nothing: what is left is the stack's own cost per message."""


@implements(WRITE_ROW_CONTRACT)
def write_row(n: int) -> None:
    with worker_context().database.session() as session:
        session.execute(text(INSERT_ROW), {"n": n})
        session.commit()


# Last, as `dramatiq services.worker.main` would: it builds the broker and registers every
# implementation known by then, the two above included.
from services.worker.main import actors, broker  # noqa: E402

__all__ = ["actors", "broker"]
