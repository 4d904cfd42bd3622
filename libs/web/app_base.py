"""The part of ``create_app`` that the api and calls services share."""

from __future__ import annotations

import dramatiq
from flask import Flask, request
from werkzeug.exceptions import NotFound
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from libs.common.db import Database
from libs.common.logs import configure_logging
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from libs.web import db as web_db
from libs.web import errors, health, observability
from libs.web.validation import MAX_ROW_ID, bad_request

#: Connections a web process may hold (each gunicorn worker has its own pool); a request
#: beyond this many concurrent ones waits for a connection.
WEB_POOL_SIZE = 15


class RowIdConverter(IntegerConverter):
    """``<int:…>`` in every route: ids are BIGINT, so a larger number names no row. It is a
    404 like any missing row, answered here instead of failing in the database (found by
    schemathesis: a 33-digit run id was a 500). Not ``max=``: a rule that does not match makes
    Werkzeug answer 405 for the other methods of the path."""

    def to_python(self, value: str) -> int:
        number: int = super().to_python(value)
        if number > MAX_ROW_ID:
            raise NotFound(f"no row has id {value[:30]}…: ids are at most {MAX_ROW_ID}")
        return number


def _refuse_nul_in_query() -> None:
    # %00 decodes to a NUL that PostgreSQL cannot compare or store: a clear 400, not a 500.
    if b"%00" in request.query_string or b"\x00" in request.query_string:
        raise bad_request("query parameters must not contain NUL characters")


def create_base_app(
    import_name: str, service: str, settings: Settings, broker: dramatiq.Broker | None = None
) -> Flask:
    """A Flask app with settings, JSON errors, request ids, metrics, health and a database."""
    configure_logging(settings)
    app = Flask(import_name)
    # Before any route exists: rules bind their converters when they are added.
    app.url_map.converters["int"] = RowIdConverter
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = 10 * 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Exactly one proxy (nginx) sits in front: trust one hop of X-Forwarded-*, no more.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)  # type: ignore[method-assign]
    errors.register_error_handlers(app)
    app.before_request(_refuse_nul_in_query)
    observability.init_app(app, service)
    # Every connection the pool may open is kept: with SQLAlchemy's default split (5 kept, 10
    # more closed on return), a burst of more than 5 concurrent requests closed its surplus
    # connections as each request ended and opened new ones (a PostgreSQL backend each) for
    # the next (measured on the status callback at saturation, docs/benchmarks.md). Same
    # ceiling of connections per process as before.
    database = Database(settings.database_url, pool_size=WEB_POOL_SIZE, max_overflow=0)
    web_db.init_app(app, database)
    if broker is None and settings.queue_broker_url:
        broker = build_broker(settings, worker=False)
    if broker is not None:
        # Producers enqueue through the global broker (outbox); one broker per process.
        dramatiq.set_broker(broker)
    app.extensions["broker"] = broker
    app.register_blueprint(health.blueprint)
    return app
