"""One database session per request, closed (and rolled back if uncommitted) at teardown.

A request with a safe method (GET, HEAD, OPTIONS: RFC 9110 §9.2.1) gets a read-only session,
so a page or a health read never queues for SQLite's write lock behind a long write elsewhere
(issue 24), and a write slipped into one fails in tests on either backend. A GET view that
must write (an OAuth redirect lands on a GET) is marked with ``@writes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from sqlalchemy.orm import Session

from libs.common.db import Database

F = TypeVar("F", bound=Callable[..., Any])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask, database: Database) -> None:
    app.extensions["database"] = database

    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def writes(view: F) -> F:
    """Mark a view answering a safe method that writes: its session may write."""
    view.writes_on_safe_method = True  # type: ignore[attr-defined]
    return view


def get_database() -> Database:
    database: Database = current_app.extensions["database"]
    return database


def get_session() -> Session:
    if "db_session" not in g:
        database = get_database()
        g.db_session = database.read_sessionmaker() if _reads_only() else database.sessionmaker()
    session: Session = g.db_session
    return session


def _reads_only() -> bool:
    if request.method not in SAFE_METHODS:
        return False
    view = current_app.view_functions.get(request.endpoint or "")
    return not getattr(view, "writes_on_safe_method", False)
