"""The simulator's webhook client: form POSTs over kept-alive connections, one per thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from simulators.twilio.callback_client import CallbackClient, DeliveryError


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: An idle kept-alive connection is closed after this long, as gunicorn's keepalive does.
    timeout = 0.2
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(
            {
                "path": self.path,
                "form": parse_qs(body.decode()),
                "headers": dict(self.headers),
                "port": self.client_address[1],
            }
        )
        answer = b"<Response/>"
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: Any) -> None:
        pass


@contextmanager
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_Recorder,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_callback_is_the_form_and_headers_twilio_sends() -> None:
    client = CallbackClient()
    with recorder() as (base, received):
        answer = client.post_form(f"{base}/webhook/twilio/status?job=7&attempt=1",
                                  {"CallSid": "CA1", "CallStatus": "completed"},
                                  {"X-Twilio-Signature": "sig"}, timeout=5)  # fmt: skip
    assert (answer.status_code, answer.text) == (200, "<Response/>")
    [request] = received
    assert request["path"] == "/webhook/twilio/status?job=7&attempt=1"
    assert request["form"] == {"CallSid": ["CA1"], "CallStatus": ["completed"]}
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["headers"]["X-Twilio-Signature"] == "sig"


def test_the_connection_is_kept_alive_and_opened_again_once_the_server_closed_it() -> None:
    client = CallbackClient()
    with recorder() as (base, received):
        for _ in range(3):
            client.post_form(f"{base}/a", {"n": "1"}, {}, timeout=5)
        time.sleep(0.5)  # the server closes the idle connection
        client.post_form(f"{base}/a", {"n": "2"}, {}, timeout=5)
    ports = [r["port"] for r in received]
    assert len(received) == 4
    assert len(set(ports[:3])) == 1  # one connection for the first three
    assert ports[3] != ports[0]  # a new one after the server closed it: nothing lost


def test_a_refused_connection_is_a_delivery_error() -> None:
    with recorder() as (base, _):
        pass  # the server is gone: nothing listens on its port
    with pytest.raises(DeliveryError):
        CallbackClient().post_form(f"{base}/a", {}, {}, timeout=2)
