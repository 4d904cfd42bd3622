"""The calls service. Twilio webhooks and the /ws media streams are added by their issues."""

from __future__ import annotations

import dramatiq
from flask import Flask

from libs.common.settings import Settings, get_settings
from libs.common.web.app_base import create_base_app


def create_app(settings: Settings | None = None, broker: dramatiq.Broker | None = None) -> Flask:
    settings = settings or get_settings()
    return create_base_app(__name__, "calls", settings, broker)
