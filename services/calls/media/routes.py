"""GET /ws/media: the Media Streams WebSocket, signature checked before the handshake.

Twilio signs the upgrade request (no parameters) against the wss:// URL it was given in the
TwiML; a missing or wrong signature is answered 403 before any audio can be sent. After the
handshake each stream holds one gunicorn thread for the call's length (see gunicorn_conf.py).
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from flask import Blueprint, Response, current_app, request
from simple_websocket import ConnectionClosed, Server

from libs.common import metrics
from libs.common.settings import Settings
from libs.common.telephony import twilio_signature
from libs.common.web.db import get_database
from libs.common.web.errors import ApiError
from services.calls.media.agent import load_agent_class
from services.calls.media.stream import MediaStream, StreamRefused
from services.calls.webhooks.voice import MEDIA_PATH

logger = logging.getLogger(__name__)
blueprint = Blueprint("media_stream", __name__)

#: Keepalive pings: a proxy or NAT must not drop a quiet caller's socket.
PING_INTERVAL_S = 20

metrics.WEBHOOK_SIGNATURE_FAILURES.labels(MEDIA_PATH)


def _check_signature(settings: Settings) -> None:
    if not settings.twilio_auth_token:
        raise ApiError(403, "forbidden", "TWILIO_AUTH_TOKEN is not configured")
    url = twilio_signature.websocket_url(settings.public_base_url, MEDIA_PATH)
    signature = request.headers.get("X-Twilio-Signature")
    if not twilio_signature.is_valid(settings.twilio_auth_token, url, {}, signature):
        metrics.WEBHOOK_SIGNATURE_FAILURES.labels(MEDIA_PATH).inc()
        logger.warning("refused media stream upgrade: %s X-Twilio-Signature",
                       "wrong" if signature else "missing")  # fmt: skip
        raise ApiError(403, "invalid_signature", "missing or invalid X-Twilio-Signature")


# websocket=True: Werkzeug matches the rule only for upgrade requests (a plain GET gets 400).
@blueprint.get(MEDIA_PATH, websocket=True)
def media_stream() -> Response:
    settings: Settings = current_app.config["SETTINGS"]
    _check_signature(settings)
    agent = load_agent_class(settings.voice_agent)()
    ws = Server(
        request.environ,
        ping_interval=PING_INTERVAL_S,
        max_message_size=64 * 1024,
    )
    stream = MediaStream(settings, get_database(), dramatiq.get_broker(), agent, ws.send)
    try:
        while True:
            timeout = stream.receive_timeout_s
            raw = ws.receive(timeout=timeout)
            if raw is None:
                logger.warning("media stream idle for %.0f s: closing", timeout)
                break
            stream.receive(raw)
            if stream.state == "stopped":
                break
    except StreamRefused as exc:
        logger.warning("media stream refused: %s", exc)
    except ConnectionClosed:
        pass
    except Exception:
        # Never let one stream's bug take the worker thread's other duties down with it.
        logger.exception("media stream failed")
    finally:
        stream.finish()
        try:
            ws.close()
        except Exception:
            pass
    return WebSocketAnswered(ws)


class WebSocketAnswered(Response):
    """The socket was answered by the WebSocket server: tell the WSGI server to write nothing
    (the same ending flask-sock uses)."""

    def __init__(self, ws: Server) -> None:
        super().__init__()
        self.ws = ws

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.ws.mode == "gunicorn":
            raise StopIteration()
        if self.ws.mode == "werkzeug":
            return super().__call__(*args, **kwargs)
        return []
