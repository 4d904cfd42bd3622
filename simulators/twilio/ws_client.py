"""The media load client's WebSocket (RFC 6455, client side), as cheap per frame as Python allows.

The load generator shares the benchmark's cores with the server it measures, so its cost per
frame is taken from the server's budget. aiohttp's client costs ~17 µs a frame: a random mask
and a Python writer per send, and per received message a queue, a future and a task switch.
Here a send is one ``transport.write`` of a prebuilt header and the text (the mask key is
0: still a masked frame as the RFC requires, which the server unmasks as any other), and
received frames are parsed in ``data_received`` and handed to a callback at once, with the
time the read happened. The server's side of the socket is untouched: what it spends per frame
is the same as with any client.

Enough of the protocol for Twilio's side of a media stream: the upgrade (with extra headers,
ws:// or wss://), text frames both ways, fragmented messages, ping → pong, close.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
MASK_KEY = b"\0\0\0\0"
MAX_HEADER_BYTES = 16 * 1024


class HandshakeError(ConnectionError):
    """The server did not switch protocols (a refused upgrade: 403, 400, …)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"upgrade answered {status} {reason}")
        self.status = status


def _frame(opcode: int, data: bytes) -> bytes:
    n = len(data)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + MASK_KEY + data  # a zero key leaves the data as it is


class WebSocket(asyncio.Protocol):
    """One client socket. ``on_text(text, now)`` runs for each text message as it is read
    (``now``: time.monotonic() of the read); ``done`` resolves when the connection is gone."""

    def __init__(self, on_text: Callable[[str, float], None]) -> None:
        self.on_text = on_text
        loop = asyncio.get_running_loop()
        self.upgraded: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.close_code: int | None = None
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_op = 0
        self._key = ""

    # -- connecting ----------------------------------------------------------------------

    @classmethod
    async def connect(cls, url: str, headers: dict[str, str], on_text: Callable[[str, float], None],
                      timeout: float = 30.0) -> WebSocket:  # fmt: skip
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        host = parts.hostname or "localhost"
        port = parts.port or (443 if secure else 80)
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if secure else None
        sock = cls(on_text)
        await asyncio.wait_for(
            loop.create_connection(lambda: sock, host, port, ssl=context), timeout
        )
        sock._key = base64.b64encode(os.urandom(16)).decode("ascii")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = (secure and port == 443) or (not secure and port == 80)
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {host if default_port else f'{host}:{port}'}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {sock._key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        assert sock.transport is not None
        sock.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            await asyncio.wait_for(asyncio.shield(sock.upgraded), timeout)
        except BaseException:
            sock.abort()
            raise
        return sock

    def _upgrade(self) -> bool:
        """Read the handshake's answer from the buffer; False while it is incomplete."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                self._fail(ConnectionError("oversized upgrade response"))
            return False
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        status_line = head[0].split(" ", 2)
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
        if status != 101:
            self._fail(HandshakeError(status, status_line[2] if len(status_line) > 2 else ""))
            return False
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(self._key.encode() + GUID).digest()).decode()
        if fields.get("sec-websocket-accept") != accept:
            self._fail(ConnectionError("wrong Sec-WebSocket-Accept"))
            return False
        self.upgraded.set_result(None)
        return True

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buffer = self._buffer
        buffer += data
        if not self.upgraded.done() and not self._upgrade():
            return
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            b0, b1 = buffer[pos], buffer[pos + 1]
            length, start = b1 & 0x7F, pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length, start = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, start = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), pos + 10
            if b1 & 0x80:  # a server must not mask: RFC 6455 5.1
                self._fail(ConnectionError("masked frame from the server"))
                return
            if size - start < length:
                break
            payload = bytes(buffer[start : start + length])
            pos = start + length
            self._on_frame(b0 & 0x80, b0 & 0x0F, payload, now)
            if self.closed:
                return
        del buffer[:pos]

    def _on_frame(self, fin: int, opcode: int, payload: bytes, now: float) -> None:
        if opcode == OP_TEXT and fin:
            self.on_text(payload.decode("utf-8"), now)
        elif opcode in (OP_TEXT, OP_BINARY):
            self._fragment_op, self._fragments = opcode, [payload]
        elif opcode == OP_CONTINUATION:
            self._fragments.append(payload)
            if fin:
                whole = b"".join(self._fragments)
                self._fragments = []
                if self._fragment_op == OP_TEXT:
                    self.on_text(whole.decode("utf-8"), now)
        elif opcode == OP_PING:
            self._write(_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._write(_frame(OP_CLOSE, payload[:2]))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed during the upgrade"))
        if not self.done.done():
            self.done.set_result(None)

    # -- sending and closing -------------------------------------------------------------

    def send_text(self, text: str) -> None:
        """Queue a text message (no wait: the load client sends on its own schedule)."""
        self._write(_frame(OP_TEXT, text.encode("utf-8")))

    async def close(self, code: int = 1000) -> None:
        """Send a close frame and wait (at most 2 s) for the server to close the connection."""
        if not self.closed:
            self._write(_frame(OP_CLOSE, code.to_bytes(2, "big")))
            try:
                await asyncio.wait_for(asyncio.shield(self.done), 2)
            except TimeoutError:
                self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, exc: Exception) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc)
        self.abort()
