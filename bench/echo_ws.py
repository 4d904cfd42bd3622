"""The media benchmark's baseline: a bare echo WebSocket on the calls service's own stack (Flask,
simple-websocket's Server, gunicorn gthread with the calls service's gunicorn_conf.py), so the
difference measured is Switchboard's frame handling and nothing else.

    gunicorn -c services/calls/gunicorn_conf.py bench.echo_ws:app
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from simple_websocket import ConnectionClosed, Server

from services.calls.media.routes import PING_INTERVAL_S, WebSocketAnswered
from services.calls.media.stream import RECEIVE_TIMEOUT_S
from services.calls.webhooks.voice import MEDIA_PATH

app = Flask(__name__)


@app.get("/readyz")
def readyz() -> Response:
    return jsonify({"status": "ready"})


@app.get(MEDIA_PATH, websocket=True)
def echo() -> Response:
    ws = Server(request.environ, ping_interval=PING_INTERVAL_S, max_message_size=64 * 1024)
    try:
        while (raw := ws.receive(timeout=RECEIVE_TIMEOUT_S)) is not None:
            ws.send(raw)
    except ConnectionClosed:
        pass
    finally:
        ws.close()
    return WebSocketAnswered(ws)
