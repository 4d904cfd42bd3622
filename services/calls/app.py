"""The calls service's webhooks: Twilio status callbacks and the voice webhook (TwiML). The
media-stream WebSocket is served by the media server (services/calls/media/server.py)."""

from __future__ import annotations

import dramatiq
from flask import Flask

from libs.common.settings import Settings, get_settings
from libs.web.app_base import create_base_app
from services.calls.webhooks.amd import blueprint as amd_blueprint
from services.calls.webhooks.recording import blueprint as recording_blueprint
from services.calls.webhooks.status import blueprint as status_blueprint
from services.calls.webhooks.voice import blueprint as voice_blueprint
from services.calls.webhooks.voicemail import blueprint as voicemail_blueprint


def create_app(settings: Settings | None = None, broker: dramatiq.Broker | None = None) -> Flask:
    settings = settings or get_settings()
    app = create_base_app(__name__, "calls", settings, broker)
    app.register_blueprint(status_blueprint)
    app.register_blueprint(voice_blueprint)
    app.register_blueprint(recording_blueprint)
    app.register_blueprint(amd_blueprint)
    app.register_blueprint(voicemail_blueprint)
    return app
