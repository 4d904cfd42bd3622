"""The realtime model simulator speaks the Realtime API's wire format: a client that sends what
a real client sends gets the events, in the order, that the real API sends."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from simulators.realtime.app import create_app
from simulators.twilio.media_client import SILENCE, speech_frame


async def _conversation() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    async with TestClient(TestServer(create_app())) as client:
        await client.post(
            "/_sim/behaviour",
            json={
                "response_delay_ms": 10,
                "script": [
                    {
                        "caller": "Hello there",
                        "reply": "Hi, how can I help?",
                        "call": {"name": "update_lead", "arguments": {"name": "Ada"}},
                    }
                ],
            },
        )
        refused = await client.get("/v1/realtime?model=gpt-realtime")
        assert refused.status == 401
        ws = await client.ws_connect(
            "/v1/realtime?model=gpt-realtime", headers={"Authorization": "Bearer sk-test"}
        )
        events: list[dict[str, Any]] = []

        async def read_until(kind: str) -> None:
            while True:
                event = json.loads((await ws.receive(timeout=5)).data)
                events.append(event)
                if event["type"] == kind:
                    return

        await read_until("session.created")
        await ws.send_json(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "instructions": "Be brief.",
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcmu"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
                        }
                    },
                },
            }
        )
        await read_until("session.updated")
        for frame in [speech_frame()] * 10 + [SILENCE * 160] * 12:
            await ws.send_json(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(frame).decode()}
            )
        await read_until("response.function_call_arguments.done")
        call = events[-1]
        await read_until("response.done")  # the function call's response ends there
        await ws.send_json(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": call["call_id"],
                    "output": "{}",
                },
            }
        )
        await ws.send_json({"type": "response.create"})
        await read_until("response.output_audio_transcript.done")
        await read_until("response.done")
        await ws.send_json(
            {
                "type": "conversation.item.truncate",
                "item_id": "item_x",
                "content_index": 0,
                "audio_end_ms": 120,
            }
        )
        await read_until("conversation.item.truncated")
        await ws.close()
        sessions = await (await client.get("/_sim/sessions")).json()
        return events, sessions["sessions"][0]


def test_a_turn_with_a_function_call_in_the_api_s_order() -> None:
    events, session = asyncio.run(_conversation())
    kinds = [e["type"] for e in events]
    order = [
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "response.function_call_arguments.done",
        "response.output_audio.delta",
        "response.output_audio_transcript.done",
        "conversation.item.truncated",
    ]
    # Every one of them, in the API's order.
    positions = [kinds.index(k) for k in order]
    assert positions == sorted(positions), kinds
    assert kinds[-2:] == ["response.done", "conversation.item.truncated"]
    transcription = next(e for e in events if e["type"].endswith("transcription.completed"))
    assert transcription["transcript"] == "Hello there"
    call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert call["name"] == "update_lead" and json.loads(call["arguments"]) == {"name": "Ada"}
    spoken = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    assert spoken["transcript"] == "Hi, how can I help?"
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    assert len(audio) >= 400 * 8  # μ-law at 8 kHz: at least the shortest reply, 400 ms
    assert session["config"]["instructions"] == "Be brief."
    assert session["truncations"][0]["audio_end_ms"] == 120
    assert session["function_outputs"][0]["call_id"] == call["call_id"]
