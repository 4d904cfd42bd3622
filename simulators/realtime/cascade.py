"""The cascaded pipeline's three HTTP APIs, as the simulator plays them (OpenAI's paths and
shapes): transcriptions answer the script's next caller line, chat completions its function
call then its reply, speech a tone as long as the words (24 kHz 16-bit PCM)."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from aiohttp import web

from simulators.realtime.model import MIN_REPLY_MS, MS_PER_WORD, Behaviour, Turn

#: The behaviour tests set (POST /_sim/behaviour), shared with the realtime sessions.
BEHAVIOUR = web.AppKey("behaviour", dict)


class Cascade:
    """Conversation state across the three endpoints (one caller at a time is enough)."""

    def __init__(self) -> None:
        self.transcribed = 0
        self.requests: list[dict[str, Any]] = []

    def turn(self, behaviour: Behaviour) -> Turn:
        script = behaviour.script
        index = self.transcribed - 1
        return script[index] if 0 <= index < len(script) else Turn()


CASCADE = web.AppKey("cascade", Cascade)


def _behaviour(request: web.Request) -> Behaviour:
    return Behaviour.from_json(request.app[BEHAVIOUR])


def _auth(request: web.Request) -> None:
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": {"code": "invalid_api_key"}}), content_type="application/json"
        )


async def transcriptions(request: web.Request) -> web.Response:
    _auth(request)
    form = await request.post()
    if "file" not in form:
        return web.json_response({"error": {"message": "file is required"}}, status=400)
    cascade = request.app[CASCADE]
    cascade.transcribed += 1
    cascade.requests.append({"path": "transcriptions", "model": str(form.get("model", ""))})
    return web.json_response({"text": cascade.turn(_behaviour(request)).caller})


async def chat(request: web.Request) -> web.Response:
    _auth(request)
    body = await request.json()
    cascade = request.app[CASCADE]
    cascade.requests.append(
        {
            "path": "chat",
            "model": body.get("model"),
            "messages": body.get("messages"),
            "tools": body.get("tools"),
        }
    )
    turn = cascade.turn(_behaviour(request))
    answered_tool = body.get("messages", [{}])[-1].get("role") == "tool"
    if turn.call is not None and not answered_tool:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{cascade.transcribed}",
                    "type": "function",
                    "function": {
                        "name": turn.call["name"],
                        "arguments": json.dumps(turn.call.get("arguments", {})),
                    },
                }
            ],
        }
    else:
        message = {"role": "assistant", "content": turn.reply}
    return web.json_response(
        {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
    )


async def speech(request: web.Request) -> web.Response:
    _auth(request)
    body = await request.json()
    request.app[CASCADE].requests.append(
        {"path": "speech", "voice": body.get("voice"), "input": body.get("input")}
    )
    ms = max(MIN_REPLY_MS, MS_PER_WORD * len(str(body.get("input", "")).split()))
    samples = ms * 24
    pcm = struct.pack(
        f"<{samples}h",
        *(int(6000 * math.sin(2 * math.pi * 330 * n / 24000)) for n in range(samples)),
    )
    return web.Response(body=pcm, content_type="application/octet-stream")
