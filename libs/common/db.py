"""Database engine and sessions. Commits belong to the request or the actor, never to models."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, create_engine, event, exc, text, update
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import Session, sessionmaker


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (the form operators usually paste)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine whose pooled connections are checked when they have sat idle (see
    ``ping_idle_connections``); SQLite tuned for several processes."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    else:
        kwargs.setdefault("pool_size", 5)
        kwargs.setdefault("max_overflow", 10)
        engine = create_engine(url, **kwargs)
    ping_idle_connections(engine)
    return engine


#: A connection checked back in less than this long ago is handed out without a ping.
IDLE_PING_AFTER_S = 0.5
_CHECKED_IN_AT = "switchboard_checked_in_at"


def ping_idle_connections(engine: Engine, idle_s: float = IDLE_PING_AFTER_S) -> None:
    """Ping a pooled connection on checkout only if it sat idle ``idle_s`` or longer.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one round trip more per request,
    which on the status callback was 1 of 10 round trips. A connection returned moments ago
    is as good as a ping that succeeded moments ago (HikariCP skips its check the same way,
    500 ms by default). A connection that broke while in use, or since its last use, fails its
    statement instead; SQLAlchemy then invalidates the whole pool, as a failed ping does, and
    the request fails with 503 (``database_unavailable``) for its sender to retry. A failed
    ping invalidates the pool and connects again before the checkout returns."""
    dialect: Dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _remember_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        # None: a new connection (a reconnect clears the record's info), just proven alive.
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # Every pooled connection predates the outage: replace them all.
                raise exc.InvalidatePoolError() from error
            raise


#: The execution option that makes a connection's transactions read-only (``Database.reader``).
READ_ONLY = "switchboard_read_only"
#: How long a SQLite statement waits for a lock another process holds before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000
_QUERY_ONLY = "switchboard_query_only"


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while one process writes; foreign keys are off by default in SQLite.
    # pysqlite's own transaction handling is disabled so that the BEGIN below is ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # SQLite has no row locks: taking the write lock at BEGIN makes read-then-write transactions
    # (claims, counters) serial across processes instead of failing on lock upgrade. A read-only
    # transaction must not take it: in WAL a reader never waits for the writer, and a health
    # read or a page that waited behind a long import stalled for the whole busy timeout
    # (issue 24). query_only makes a write there fail at once, as PostgreSQL's READ ONLY does.
    read_only = bool(conn.get_execution_options().get(READ_ONLY))
    info = conn.connection.info
    if info.get(_QUERY_ONLY, False) != read_only:
        conn.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
        info[_QUERY_ONLY] = read_only
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _read_only_options(engine: Engine) -> dict[str, Any]:
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True  # BEGIN READ ONLY; reset when pooled again
    return options


class Database:
    """An engine and its session factory, created once per process."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine = create_db_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        #: The same pool, for transactions that only read: never SQLite's write lock, and a
        #: write in one fails (PostgreSQL: READ ONLY; SQLite: query_only).
        self.reader = self.engine.execution_options(**_read_only_options(self.engine))
        self.read_sessionmaker = sessionmaker(self.reader, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that rolls back on error and always closes; the caller commits."""
        session = self.sessionmaker()
        try:
            yield session
        except BaseException:
            # BaseException: Dramatiq's TimeLimitExceeded and Interrupt must roll back too.
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read_connection(self, timeout_s: float | None = None) -> Iterator[Connection]:
        """A read-only connection whose statements wait at most ``timeout_s`` for a lock or
        for the server (a health read must answer within its own bound)."""
        with self.reader.connect() as connection:
            if timeout_s is None:
                yield connection
                return
            ms = max(1, int(timeout_s * 1000))
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql(f"PRAGMA busy_timeout={ms}")
                try:
                    yield connection
                finally:
                    connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            else:
                # SET LOCAL: gone with the transaction, so the pooled connection is unchanged.
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
                yield connection

    def ping(self, timeout_s: float | None = None) -> None:
        """Raise if the database cannot answer a trivial query (read-only, bounded)."""
        with self.read_connection(timeout_s) as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def dialect_insert(session: Session) -> Any:
    """The INSERT construct with ON CONFLICT support for the session's database."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


# Building a statement costs about as much CPU as executing it (0.25 ms of 0.55 ms for a
# one-row UPDATE, measured): the statements of hot paths are built once per shape, with bound
# parameters, and reused. Parameters are named "new_<column>" because SQLAlchemy reserves the
# column names themselves in a SET or VALUES clause. They run on the session's connection
# directly: Core statements skip the ORM's execution path (and its autoflush) either way.


@functools.lru_cache(maxsize=256)
def _insert_ignoring_conflicts(dialect: str, table: Table, columns: tuple[str, ...]) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {name: bindparam(f"new_{name}", type_=table.c[name].type) for name in columns}
    return insert(table).values(values).on_conflict_do_nothing().returning(table.c.id)


def insert_ignoring_conflicts(session: Session, table: Any, values: dict[str, Any]) -> Any | None:
    """INSERT … ON CONFLICT DO NOTHING; the new row's id, or None when it already existed."""
    return insert_ignoring_conflicts_on(session.connection(), table, values)


def insert_ignoring_conflicts_on(
    connection: Connection, table: Any, values: dict[str, Any]
) -> Any | None:
    """``insert_ignoring_conflicts`` on a Connection (a hot path with no Session)."""
    statement = _insert_ignoring_conflicts(connection.dialect.name, table, tuple(values))
    params = {f"new_{name}": value for name, value in values.items()}
    return connection.execute(statement, params).scalar_one_or_none()


@functools.lru_cache(maxsize=64)
def _driver_insert(
    dialect: Dialect, table: Table, columns: tuple[str, ...]
) -> tuple[str, tuple[Callable[[Any], Any] | None, ...]]:
    """``_insert_ignoring_conflicts`` as the driver takes it, and each column's own bind
    processor (a JSON column's serializer, a UTC column's check), compiled once."""
    compiled = _insert_ignoring_conflicts(dialect.name, table, columns).compile(dialect=dialect)
    types = (table.c[name].type.dialect_impl(dialect) for name in columns)
    return str(compiled), tuple(type_.bind_processor(dialect) for type_ in types)


def insert_ignoring_conflicts_committed(
    connection: Connection, table: Any, values: dict[str, Any]
) -> Any | None:
    """``insert_ignoring_conflicts_on``, committed: for a hot path whose whole transaction is
    this one row (the status webhook). On PostgreSQL the statement goes through the driver's
    cursor: SQLAlchemy's execution path cost more CPU than the statement itself (~170 against
    ~105 us per row with the checkout and the commit, measured in-process). A driver error is
    still raised as SQLAlchemy's (a lost database answers 503), and a dead connection is
    invalidated, as SQLAlchemy would."""
    dialect = connection.dialect
    if dialect.name != "postgresql":
        row_id = insert_ignoring_conflicts_on(connection, table, values)
        connection.commit()
        return row_id
    statement, processors = _driver_insert(dialect, table, tuple(values))
    params = {
        f"new_{name}": process(value) if process else value
        for (name, value), process in zip(values.items(), processors, strict=True)
    }
    raw: Any = connection.connection.dbapi_connection
    try:
        with raw.cursor() as cursor:
            cursor.execute(statement, params)
            row = cursor.fetchone()
        raw.commit()
    except dialect.loaded_dbapi.Error as err:
        if dialect.is_disconnect(err, raw, None):
            connection.invalidate(err)
        raise exc.DBAPIError.instance(
            statement, params, err, dialect.loaded_dbapi.Error, dialect=dialect
        ) from err
    return row[0] if row else None


@functools.lru_cache(maxsize=256)
def _update_by_id(table: Table, columns: tuple[str, ...]) -> Any:
    values = {name: bindparam(f"new_{name}", type_=table.c[name].type) for name in columns}
    return update(table).where(table.c.id == bindparam("row_id")).values(values)


def update_by_id(session: Session, table: Table, row_id: int, values: dict[str, Any]) -> None:
    """UPDATE ``table`` SET ``values`` WHERE id = ``row_id`` (nothing when ``values`` is empty),
    from a statement built once per set of columns. Core, not the ORM: the caller expires
    any loaded object it still reads."""
    if not values:
        return
    params = {f"new_{name}": value for name, value in values.items()}
    session.connection().execute(_update_by_id(table, tuple(values)), {"row_id": row_id, **params})
