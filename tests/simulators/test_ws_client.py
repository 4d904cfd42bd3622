"""The media load client's WebSocket against a real aiohttp WebSocket server (the media
server's own stack): upgrade with headers, text both ways, 16- and 64-bit lengths,
ping → pong, the server's close, a refused upgrade."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import WSMsgType, web

from simulators.twilio.ws_client import HandshakeError, WebSocket

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _with_server(handler: Handler, client: Callable[[str], Awaitable[None]]) -> None:
    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await client(f"ws://127.0.0.1:{port}/ws")
    finally:
        await runner.cleanup()


def test_text_both_ways_pings_and_the_servers_close() -> None:
    seen: dict[str, object] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        seen["signature"] = request.headers.get("X-Twilio-Signature")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.ping(b"are you there")
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                if message.data == "stop":
                    break
                await ws.send_str(message.data.upper())
                await ws.send_str("x" * 70_000)  # a 64-bit length
        await ws.close(code=1000)
        return ws

    async def client(url: str) -> None:
        received: list[str] = []
        ws = await WebSocket.connect(url, {"X-Twilio-Signature": "c2ln"},
                                     lambda text, now: received.append(text))  # fmt: skip
        ws.send_text("héllo")
        ws.send_text("a" * 300)  # a 16-bit length
        ws.send_text("stop")
        await asyncio.wait_for(ws.done, 5)
        assert received == ["HÉLLO", "x" * 70_000, "A" * 300, "x" * 70_000]
        assert ws.closed and ws.close_code == 1000

    asyncio.run(_with_server(handler, client))
    assert seen["signature"] == "c2ln"


def test_a_refused_upgrade_raises_with_its_status() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "no"}, status=403)

    async def client(url: str) -> None:
        with pytest.raises(HandshakeError) as refused:
            await WebSocket.connect(url, {}, lambda text, now: None)
        assert refused.value.status == 403

    asyncio.run(_with_server(handler, client))
