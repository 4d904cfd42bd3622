"""A business's webhook receiver: a real HTTP server (a thread) that records every request and
answers as scripted. It is the customer's side, so it is allowed to be a test double."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def event_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Script:
    #: Each event id's first N requests are answered 500, the next ones 2xx.
    fail_first: int = 0
    status: int = 200
    #: Seconds to wait before answering (a slow or hung receiver).
    delay_s: float = 0.0
    answer: bytes = b'{"ok": true}'
    extra_headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    def __init__(self) -> None:
        self.script = Script()
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.url = ""
        #: Set when a request arrives (before its answer is sent).
        self.arrived = threading.Event()

    def received(self, event_id: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if event_id is None or r.event_id == event_id]

    def accepted(self) -> list[Received]:
        """Requests answered 2xx: what the business's system actually took in."""
        return [r for r in self.received() if 200 <= r.status < 300]

    def wait_for(self, predicate: Any, timeout_s: float = 30, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.05)
        raise AssertionError(f"receiver: timed out waiting for {what}; got {self.summary()}")

    def summary(self) -> list[tuple[str, int]]:
        return [(r.event_id, r.status) for r in self.received()]

    def _status_for(self, event_id: str) -> int:
        with self.lock:
            earlier = sum(1 for r in self.requests if r.event_id == event_id)
        return 500 if earlier < self.script.fail_first else self.script.status


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:
                # The sender died mid-request (a SIGKILL test): a real receiver never gets a
                # request cut short, so neither is it recorded here.
                self.close_connection = True
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver._status_for(headers.get("webhook-id", ""))
            receiver.arrived.set()
            if receiver.script.delay_s:
                time.sleep(receiver.script.delay_s)
            with receiver.lock:
                receiver.requests.append(Received(self.path, headers, body, status, time.time()))
            try:
                self.send_response(status)
                for name, value in receiver.script.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(receiver.script.answer)))
                self.end_headers()
                self.wfile.write(receiver.script.answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up waiting (a timeout test): it was still received

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def webhook_receiver(host: str = "127.0.0.1") -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer((host, 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://{host}:{server.server_address[1]}/hooks/switchboard"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
