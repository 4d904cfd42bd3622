"""How the simulator POSTs its webhooks (status, voice, AMD, recording callbacks): one kept-alive
HTTP/1.1 connection per sender thread and host, on the standard library's ``http.client``.

The simulator shares the machine with what it stands in front of, so a callback must cost what
Twilio's sending it costs Switchboard, no more: ``requests`` spent most of the simulator's CPU per
call preparing each request (environment proxies, netrc, hooks, cookie jars) on work Twilio's
callbacks do not need. The bytes on the wire are the same form body and headers as before.
"""

from __future__ import annotations

import http.client
import select
import threading
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

#: What Twilio's webhook requests say they are.
USER_AGENT = "TwilioProxy/1.1"
#: Errors a delivery can end with: the caller treats them all as "not delivered".
DeliveryError = (OSError, http.client.HTTPException)
#: Errors that mean a kept-alive connection was closed by the server while idle: the request
#: was not read, so it is sent again once on a new connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Answer:
    status_code: int
    text: str


class CallbackClient:
    """Form POSTs over per-thread kept-alive connections (each thread's own: ``http.client``
    connections are not thread-safe, and the senders run in a pool)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def post_form(
        self, url: str, params: dict[str, str], headers: dict[str, str], timeout: float
    ) -> Answer:
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        body = urlencode(params).encode()
        all_headers = {
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Content-Type": "application/x-www-form-urlencoded",
            **headers,
        }
        key = (parts.scheme, parts.netloc)
        connection, reused = self._connection(key, timeout)
        try:
            return self._exchange(connection, target, body, all_headers, key)
        except _STALE:
            self._drop(key)
            if not reused:
                raise
        # The server closed the idle connection as the request went out: once more, anew.
        connection, _ = self._connection(key, timeout)
        try:
            return self._exchange(connection, target, body, all_headers, key)
        except DeliveryError:
            self._drop(key)
            raise

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        target: str,
        body: bytes,
        headers: dict[str, str],
        key: tuple[str, str],
    ) -> Answer:
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except _STALE:
            raise
        except DeliveryError:
            self._drop(key)
            raise
        if response.will_close:
            self._drop(key)
        charset = response.msg.get_content_charset() or "utf-8"
        return Answer(response.status, data.decode(charset, errors="replace"))

    def _connection(
        self, key: tuple[str, str], timeout: float
    ) -> tuple[http.client.HTTPConnection, bool]:
        pool: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "pool", {}
        )
        connection = pool.get(key)
        if connection is not None and connection.sock is not None:
            # Readable while idle means the server closed it (or sent what nobody asked for):
            # not reusable. The same check urllib3 makes before reusing a pooled connection.
            poller = select.poll()
            poller.register(connection.sock, select.POLLIN)
            if not poller.poll(0):
                connection.sock.settimeout(timeout)
                return connection, True
            connection.close()
        scheme, netloc = key
        factory = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        connection = factory(netloc, timeout=timeout)
        pool[key] = connection
        return connection, False

    def _drop(self, key: tuple[str, str]) -> None:
        connection = self._local.__dict__.get("pool", {}).pop(key, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close this thread's connections."""
        for connection in self._local.__dict__.pop("pool", {}).values():
            connection.close()
