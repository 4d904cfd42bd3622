"""The calls service: Twilio webhooks (the media-stream WebSocket arrives with its issue)."""

from __future__ import annotations

import dramatiq
from flask import Flask

from libs.common.settings import Settings, get_settings
from libs.common.web.app_base import create_base_app
from services.calls.webhooks.status import blueprint as status_blueprint


def create_app(settings: Settings | None = None, broker: dramatiq.Broker | None = None) -> Flask:
    settings = settings or get_settings()
    app = create_base_app(__name__, "calls", settings, broker)
    app.register_blueprint(status_blueprint)
    return app
