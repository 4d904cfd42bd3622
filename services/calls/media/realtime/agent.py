"""The speech-to-speech agent: the call bridged to a realtime model over its WebSocket (the
OpenAI Realtime API wire format), μ-law 8 kHz both ways so no audio is ever resampled.

The caller's frames are appended to the model's input buffer as they arrive; the model's
server VAD decides when the caller has finished; its audio deltas are played through the
line (paced), labelled with their item id. When the model hears the caller start speaking
during its audio, the line clears Twilio's buffer and the model is told where it was cut off
(``conversation.item.truncate`` at the played offset), so its memory of the conversation
matches what the caller heard. Its function calls are the line's actions (``tools.py``).

A thin client on aiohttp rather than the ``openai`` SDK or Pipecat: docs/voice.md has the
measurement (the SDK costs ~40x the CPU per appended frame).
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from services.calls.media.actions import ActionFailed
from services.calls.media.agent import Agent
from services.calls.media.agent_settings import AgentConfig
from services.calls.media.frames import CallerAudio, Dtmf, Event, HangUp
from services.calls.media.realtime import tools

logger = logging.getLogger(__name__)

#: Server VAD: how long the caller must be quiet before the model answers.
SILENCE_DURATION_MS = 300
CONNECT_TIMEOUT_S = 5
#: After the model hangs up, its goodbye may still be playing: wait for it, at most this long.
GOODBYE_WAIT_S = 10
AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")  # GA and beta names
AGENT_TRANSCRIPTS = ("response.output_audio_transcript.done", "response.audio_transcript.done")
GREETING_INSTRUCTIONS = "Greet the caller briefly and ask how you can help."


class ModelGone(ConnectionError):
    """The model's socket closed while the call was still on."""


class RealtimeAgent(Agent):
    # The model's server VAD detects the caller's turns and barge-ins.
    local_barge_in = False
    local_vad = False

    def __init__(self, config: AgentConfig | None = None) -> None:
        super().__init__(config)
        self.cfg = config or AgentConfig(kind="realtime")
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False

    def session_config(self, model: str) -> dict[str, Any]:
        return {
            "type": "realtime",
            "model": model,
            "instructions": self.cfg.instructions or tools.DEFAULT_INSTRUCTIONS,
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {
                        "type": "server_vad",
                        "silence_duration_ms": SILENCE_DURATION_MS,
                    },
                    "transcription": {"model": "gpt-4o-mini-transcribe"},
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": self.cfg.voice or "alloy"},
            },
            "tools": tools.definitions(self.cfg.tools),
            "tool_choice": "auto",
        }

    async def start(self) -> None:
        if not self.cfg.api_key:
            raise RuntimeError("no model API key (OPENAI_API_KEY or the business's own)")
        model = self.cfg.model or "gpt-realtime"
        url = f"{self.cfg.api_base.rstrip('/')}/realtime?model={quote(model)}"
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S)
        self._http = aiohttp.ClientSession(timeout=timeout)
        self._ws = await self._http.ws_connect(
            url,
            headers={"Authorization": f"Bearer {self.cfg.api_key}"},
            heartbeat=20,
            max_msg_size=4 * 1024 * 1024,
        )
        await self._send({"type": "session.update", "session": self.session_config(model)})
        await self._send(
            {"type": "response.create", "response": {"instructions": GREETING_INSTRUCTIONS}}
        )
        self.line.spawn(self._read(), "realtime model")

    async def on_event(self, event: Event) -> None:
        if isinstance(event, CallerAudio):
            if self._ws is not None and not self._ws.closed:
                audio = event.base64()
                await self._ws.send_str(f'{{"type":"input_audio_buffer.append","audio":"{audio}"}}')
        elif isinstance(event, Dtmf):
            # Keypad digits reach the model as text: "press 1 for …" still works.
            await self._send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": f"(the caller pressed {event.digit})"}
                        ],
                    },
                }
            )
            await self._send({"type": "response.create"})

    async def stop(self, reason: str) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    # -- the model's events ----------------------------------------------------------------

    async def _send(self, event: dict[str, Any]) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(orjson.dumps(event).decode("utf-8"))

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                event = orjson.loads(message.data)
                await self._on_model_event(event)
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                logger.warning("call %s: unusable model event: %s", self.line.info.call_sid, exc)
        if not self._stopping:
            code = self._ws.close_code
            raise ModelGone(f"the model closed the connection (code {code})")

    async def _on_model_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        if kind in AUDIO_DELTAS:
            self.line.play(binascii.a2b_base64(event["delta"]), label=event.get("item_id"))
        elif kind == "input_audio_buffer.speech_started":
            await self._barge_in()
        elif kind == "conversation.item.input_audio_transcription.completed":
            self.line.transcript("caller", event.get("transcript", ""))
        elif kind in AGENT_TRANSCRIPTS:
            self.line.transcript("agent", event.get("transcript", ""))
        elif kind == "response.function_call_arguments.done":
            self.line.spawn(self._call_function(event), "realtime function")
        elif kind == "error":
            error = event.get("error") or {}
            logger.warning(
                "call %s: model error %s: %s",
                self.line.info.call_sid,
                error.get("code"),
                str(error.get("message"))[:200],
            )

    async def _barge_in(self) -> None:
        """The caller spoke over the model: stop its audio, and tell it what was heard."""
        if not self.line.playing:
            return
        heard = self.line.clear()
        self.line.transcript("system", f"caller interrupted after {heard.ms} ms")
        if heard.label:
            await self._send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": heard.label,
                    "content_index": 0,
                    "audio_end_ms": heard.ms,
                }
            )

    async def _call_function(self, event: dict[str, Any]) -> None:
        name, call_id = event.get("name", ""), event.get("call_id", "")
        try:
            action = tools.to_action(name, event.get("arguments") or "{}", self.cfg)
            if isinstance(action, HangUp):
                await self._finish_playing()
            await self.line.act(action)
            output: dict[str, Any] = {"ok": True}
        except (ActionFailed, tools.BadCall) as exc:
            output = {"ok": False, "error": str(exc)}
        await self._send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": call_id,
                    "output": json.dumps(output),
                },
            }
        )
        if name != "hang_up":  # the model answers with the function's outcome in mind
            await self._send({"type": "response.create"})

    async def _finish_playing(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GOODBYE_WAIT_S
        while self.line.playing and loop.time() < deadline:
            await asyncio.sleep(0.1)
