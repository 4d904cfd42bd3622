"""The media benchmark's baseline: a bare echo WebSocket on the media server's own stack (aiohttp
under gunicorn with services/calls/media/gunicorn_conf.py: same workers, same worker class, same
WebSocket settings), so the difference measured is Switchboard's frame handling and nothing else.

    gunicorn -c services/calls/media/gunicorn_conf.py bench.echo_ws:app_factory
"""

from __future__ import annotations

from aiohttp import WSMsgType, web

from services.calls.media.server import MAX_MESSAGE_BYTES, MEDIA_PATH, PING_INTERVAL_S


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=PING_INTERVAL_S, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(message.data)
    return ws


async def readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def app_factory() -> web.Application:
    app = web.Application()
    app.router.add_get(MEDIA_PATH, echo)
    app.router.add_get("/readyz", readyz)
    return app
