"""The webhook benchmark's baseline: a Flask endpoint that answers 200 and does nothing else,
served like the calls service (``gunicorn -c services/calls/gunicorn_conf.py
bench.bare_webhook:app``: same workers, threads and hooks) behind the same nginx config, so
the difference measured is what the calls service does with a status callback.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.get("/readyz")
def readyz() -> Response:
    return jsonify({"status": "ready"})


@app.post("/webhook/twilio/status")
def status_callback() -> Response:
    return Response(status=200)
