"""HTTP exactly as written: paths no client may resolve or re-encode, bytes no client sends."""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawResponse:
    status: int
    content_type: str
    body: bytes


def raw_get(base: str, target: str, headers: dict[str, str] | None = None) -> RawResponse:
    """GET ``target`` as written: its dots are not resolved, its escapes not touched."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return RawResponse(response.status, response.getheader("Content-Type") or "",
                           response.read())  # fmt: skip
    finally:
        connection.close()


def raw_exchange(base: str, request: bytes) -> RawResponse:
    """Send ``request`` on a new connection and parse the one answer."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    if not answer.startswith(b"HTTP/"):
        return RawResponse(0, "", answer)  # no status line at all (an HTTP/0.9-style answer)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    return RawResponse(int(lines[0].split()[1]), headers.get("content-type", ""), body)
