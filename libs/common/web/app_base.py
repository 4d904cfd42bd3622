"""The part of ``create_app`` that the api and calls services share."""

from __future__ import annotations

import dramatiq
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from libs.common.broker import build_broker
from libs.common.db import Database
from libs.common.logs import configure_logging
from libs.common.settings import Settings
from libs.common.web import db as web_db
from libs.common.web import errors, health, observability


def create_base_app(
    import_name: str, service: str, settings: Settings, broker: dramatiq.Broker | None = None
) -> Flask:
    """A Flask app with settings, JSON errors, request ids, metrics, health and a database."""
    configure_logging(settings)
    app = Flask(import_name)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = 10 * 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Exactly one proxy (nginx) sits in front: trust one hop of X-Forwarded-*, no more.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)  # type: ignore[method-assign]
    errors.register_error_handlers(app)
    observability.init_app(app, service)
    web_db.init_app(app, Database(settings.database_url))
    if broker is None and settings.redis_url:
        broker = build_broker(settings, worker=False)
    if broker is not None:
        # Producers enqueue through the global broker (outbox); one broker per process.
        dramatiq.set_broker(broker)
    app.extensions["broker"] = broker
    app.register_blueprint(health.blueprint)
    return app
