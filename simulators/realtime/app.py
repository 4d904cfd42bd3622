"""The simulator's WebSocket and control endpoints (aiohttp).

``POST /v1/audio/transcriptions``, ``/v1/chat/completions``, ``/v1/audio/speech``: the
cascaded pipeline's models (``cascade.py``).

``GET /v1/realtime?model=…`` with ``Authorization: Bearer <key>``: the Realtime API's
WebSocket (any non-empty key is accepted; none is a 401, as the real API answers). Client
events in, server events out, as ``model.Session`` plays them.

``/_sim/``: ``healthz``; ``POST behaviour`` (greeting, script of turns, response delay,
drop-after) for new sessions; ``GET sessions`` (what each session received: its config,
truncations, function outputs); ``POST drop`` (close every model socket now, as a provider
outage would); ``POST reset``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from simulators.realtime import cascade
from simulators.realtime.model import Behaviour, Session

logger = logging.getLogger(__name__)

BEHAVIOUR = cascade.BEHAVIOUR
SESSIONS = web.AppKey("sessions", list)
OPEN = web.AppKey("open", dict)


async def realtime(request: web.Request) -> web.StreamResponse:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip():
        return web.json_response(
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                    "message": "Missing bearer authentication",
                }
            },
            status=401,
        )
    ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)

    async def send(event: dict[str, Any]) -> None:
        if not ws.closed:
            await ws.send_str(json.dumps(event))

    behaviour = Behaviour.from_json(request.app[BEHAVIOUR])
    session = Session(send, behaviour, request.query.get("model", ""))
    request.app[SESSIONS].append(session)
    request.app[OPEN][session.id] = ws
    dropper = None
    if behaviour.drop_after_ms is not None:
        dropper = asyncio.get_running_loop().call_later(
            behaviour.drop_after_ms / 1000, lambda: asyncio.ensure_future(ws.close(code=1011))
        )
    try:
        await session.open()
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                event = json.loads(message.data)
            except ValueError:
                await send(
                    {
                        "type": "error",
                        "error": {
                            "type": "invalid_request_error",
                            "code": "invalid_json",
                            "message": "not JSON",
                        },
                    }
                )
                continue
            if isinstance(event, dict):
                await session.handle(event)
    finally:
        if dropper is not None:
            dropper.cancel()
        session.close()
        request.app[OPEN].pop(session.id, None)
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def set_behaviour(request: web.Request) -> web.Response:
    try:
        data = await request.json()
        Behaviour.from_json(data)
    except (ValueError, TypeError) as exc:
        return web.json_response(
            {"error": {"code": "bad_behaviour", "message": str(exc)}}, status=400
        )
    request.app[BEHAVIOUR].clear()
    request.app[BEHAVIOUR].update(data)
    return web.json_response({"status": "ok"})


async def sessions(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "sessions": [s.summary() for s in request.app[SESSIONS]],
            "cascade": request.app[cascade.CASCADE].requests,
        }
    )


async def drop(request: web.Request) -> web.Response:
    sockets = list(request.app[OPEN].values())
    for ws in sockets:
        await ws.close(code=1011, message=b"simulated outage")
    return web.json_response({"dropped": len(sockets)})


async def reset(request: web.Request) -> web.Response:
    request.app[SESSIONS].clear()
    request.app[BEHAVIOUR].clear()
    request.app[cascade.CASCADE] = cascade.Cascade()
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application()
    app[BEHAVIOUR] = {}
    app[SESSIONS] = []
    app[OPEN] = {}
    app[cascade.CASCADE] = cascade.Cascade()
    app.router.add_get("/v1/realtime", realtime)
    app.router.add_post("/v1/audio/transcriptions", cascade.transcriptions)
    app.router.add_post("/v1/chat/completions", cascade.chat)
    app.router.add_post("/v1/audio/speech", cascade.speech)
    app.router.add_get("/_sim/healthz", healthz)
    app.router.add_post("/_sim/behaviour", set_behaviour)
    app.router.add_get("/_sim/sessions", sessions)
    app.router.add_post("/_sim/drop", drop)
    app.router.add_post("/_sim/reset", reset)
    return app
