"""The webhook benchmark's floor: the least a correct status-callback endpoint can do before
answering Twilio, and nothing more: check the signature, store the callback once (one
``INSERT … ON CONFLICT DO NOTHING`` through plain psycopg, no ORM), enqueue one Dramatiq
message, answer 204. Served like the calls service (``gunicorn -c
services/calls/gunicorn_conf.py bench.floor_webhook:app``) behind the same nginx.

It does not find the call, move its job, lead and run, or count the run's open jobs: it is the
bound under any implementation that stores a callback durably before it answers, which is how
the report can say how much of the gap to the bare endpoint is Switchboard's to close.
"""

from __future__ import annotations

import json
import os
import queue
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
import psycopg
from dramatiq.brokers.redis import RedisBroker
from flask import Flask, Response, jsonify, request

from libs.telephony import twilio_signature

app = Flask(__name__)
_PUBLIC_BASE_URL = os.environ["PUBLIC_BASE_URL"]
_AUTH_TOKEN = os.environ["TWILIO_AUTH_TOKEN"]
_DATABASE_URL = os.environ["DATABASE_URL"]
# gunicorn imports this module in each worker process, after its fork: nothing here is shared.
_broker = RedisBroker(url=os.environ["REDIS_URL"])  # type: ignore[no-untyped-call]
_connections: queue.SimpleQueue[psycopg.Connection[tuple[object, ...]]] = queue.SimpleQueue()

_INSERT = (
    "INSERT INTO call_events (provider_call_sid, status, sequence_number, params, received_at,"
    " applied) VALUES (%s, %s, %s, %s, now(), false) ON CONFLICT DO NOTHING RETURNING id"
)


@contextmanager
def _connection() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A pooled connection (one per thread at most, reused, never shared at once)."""
    try:
        conn = _connections.get_nowait()
    except queue.Empty:
        conn = psycopg.connect(_DATABASE_URL)
    try:
        yield conn
    finally:
        _connections.put(conn)


@app.get("/readyz")
def readyz() -> Response:
    return jsonify({"status": "ready"})


@app.post("/webhook/twilio/status")
def status_callback() -> Response:
    params = request.form.to_dict(flat=True)
    query = request.query_string.decode("latin-1")
    url = twilio_signature.public_url(_PUBLIC_BASE_URL, request.path, query)
    if not twilio_signature.is_valid(
        _AUTH_TOKEN, url, params, request.headers.get("X-Twilio-Signature")
    ):
        return Response(status=403)
    sequence = params.get("SequenceNumber")
    with _connection() as conn:
        row = conn.execute(
            _INSERT,
            (
                params.get("CallSid", ""),
                params.get("CallStatus", ""),
                int(sequence) if sequence and sequence.isdigit() else None,
                json.dumps(params),
            ),
        ).fetchone()
        conn.commit()
    if row is not None:
        _broker.enqueue(
            dramatiq.Message(
                queue_name="high",
                actor_name="dialer.dispatch",
                args=(),
                kwargs={"business_id": 1},
                options={},
            )
        )
    return Response(status=204)
