"""The real calls app (status, recording and AMD callbacks) on a port in a thread, sending its
messages to a test's broker: a worker test's simulator calls it back as Twilio would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
from werkzeug.serving import make_server

from libs.common.settings import Settings
from services.calls.app import create_app


@contextmanager
def calls_service_thread(settings: Settings, broker: dramatiq.Broker, port: int) -> Iterator[str]:
    app = create_app(settings.with_overrides(service_role="calls"), broker)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
