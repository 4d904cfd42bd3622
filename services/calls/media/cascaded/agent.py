"""The cascaded agent: speech-to-text, a chat model and text-to-speech, each over its HTTP API
(OpenAI's paths: ``/audio/transcriptions``, ``/chat/completions``, ``/audio/speech``, under
``MODEL_API_BASE``), with the line's local VAD taking turns.

The caller's frames are kept while they speak; when the VAD hears them stop, the turn runs as
a task of its own: transcribe (8 kHz WAV), ask the chat model (the business's instructions,
the conversation so far, the enabled actions as tools: it may call some before answering),
then synthesise the answer (24 kHz PCM, taken down to 8 kHz μ-law) and play it. If the caller
speaks over the answer, the line clears it and the turn in flight is cancelled.
"""

from __future__ import annotations

import io
import json
import logging
import wave
from typing import Any

import aiohttp

from libs.common.audio import g711
from services.calls.media.actions import ActionFailed
from services.calls.media.agent import Agent
from services.calls.media.agent_settings import AgentConfig
from services.calls.media.frames import (
    CallerAudio,
    Event,
    Interrupted,
    SpeechStarted,
    SpeechStopped,
)
from services.calls.media.realtime import tools

logger = logging.getLogger(__name__)

STT_MODEL = "gpt-4o-mini-transcribe"
TTS_MODEL = "gpt-4o-mini-tts"
CHAT_MODEL = "gpt-4o-mini"
TTS_RATE = 24_000  # the speech endpoint's "pcm": 24 kHz, 16-bit, mono
#: Longest utterance kept (a caller who never stops still gets an answer).
MAX_UTTERANCE_BYTES = 8000 * 30
#: Function calls a model may chain before it must answer.
MAX_TOOL_ROUNDS = 3
GREETING = "Hello, how can I help?"


class CascadedAgent(Agent):
    def __init__(self, config: AgentConfig | None = None) -> None:
        super().__init__(config)
        self.cfg = config or AgentConfig(kind="cascaded")
        self._http: aiohttp.ClientSession | None = None
        self._speech = bytearray()
        self._listening = False
        self._turn: Any = None
        self.history: list[dict[str, Any]] = []

    async def start(self) -> None:
        if not self.cfg.api_key:
            raise RuntimeError("no model API key (OPENAI_API_KEY or the business's own)")
        self._http = aiohttp.ClientSession(
            base_url=self.cfg.api_base.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {self.cfg.api_key}"},
            timeout=aiohttp.ClientTimeout(total=30, connect=5),
        )
        self.history = [
            {"role": "system", "content": self.cfg.instructions or tools.DEFAULT_INSTRUCTIONS}
        ]
        self._turn = self.line.spawn(self._say(GREETING), "cascaded greeting")

    async def on_event(self, event: Event) -> None:
        if isinstance(event, CallerAudio):
            if self._listening and len(self._speech) < MAX_UTTERANCE_BYTES:
                self._speech += event.audio
        elif isinstance(event, SpeechStarted):
            self._listening, self._speech = True, bytearray()
        elif isinstance(event, Interrupted):
            if self._turn is not None and not self._turn.done():
                self._turn.cancel()  # the caller spoke over the answer
        elif isinstance(event, SpeechStopped) and self._listening:
            self._listening = False
            audio, self._speech = bytes(self._speech), bytearray()
            if self._turn is not None and not self._turn.done():
                self._turn.cancel()
            self._turn = self.line.spawn(self._answer(audio), "cascaded turn")

    async def stop(self, reason: str) -> None:
        if self._http is not None:
            await self._http.close()

    # -- one turn --------------------------------------------------------------------------

    async def _answer(self, ulaw: bytes) -> None:
        text = await self._transcribe(ulaw)
        if not text:
            return
        self.line.transcript("caller", text)
        self.history.append({"role": "user", "content": text})
        for _ in range(MAX_TOOL_ROUNDS + 1):
            message = await self._chat()
            self.history.append(message)
            calls = message.get("tool_calls") or []
            if not calls:
                break
            for call in calls:
                self.history.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.get("id", ""),
                        "content": await self._run_tool(call),
                    }
                )
        reply = (self.history[-1].get("content") or "").strip()
        if reply:
            await self._say(reply)

    async def _run_tool(self, call: dict[str, Any]) -> str:
        function = call.get("function") or {}
        try:
            action = tools.to_action(
                function.get("name", ""), function.get("arguments") or "{}", self.cfg
            )
            await self.line.act(action)
            return json.dumps({"ok": True})
        except (ActionFailed, tools.BadCall) as exc:
            return json.dumps({"ok": False, "error": str(exc)})

    async def _say(self, text: str) -> None:
        self.line.play(await self._speak(text), label=f"say-{len(self.history)}")
        self.line.transcript("agent", text)

    # -- the three models ------------------------------------------------------------------

    async def _transcribe(self, ulaw: bytes) -> str:
        assert self._http is not None
        form = aiohttp.FormData()
        form.add_field("model", STT_MODEL)
        form.add_field("file", _wav(ulaw), filename="turn.wav", content_type="audio/wav")
        async with self._http.post("audio/transcriptions", data=form) as response:
            response.raise_for_status()
            return str((await response.json()).get("text", "")).strip()

    async def _chat(self) -> dict[str, Any]:
        assert self._http is not None
        functions = [
            {"type": "function", "function": {k: v for k, v in d.items() if k != "type"}}
            for d in tools.definitions(self.cfg.tools)
        ]
        body = {"model": self.cfg.model or CHAT_MODEL, "messages": self.history}
        if functions:
            body["tools"] = functions
        async with self._http.post("chat/completions", json=body) as response:
            response.raise_for_status()
            message: dict[str, Any] = (await response.json())["choices"][0]["message"]
            return message

    async def _speak(self, text: str) -> bytes:
        assert self._http is not None
        body = {
            "model": TTS_MODEL,
            "voice": self.cfg.voice or "alloy",
            "input": text,
            "response_format": "pcm",
        }
        async with self._http.post("audio/speech", json=body) as response:
            response.raise_for_status()
            pcm = await response.read()
        return g711.from_pcm16(g711.resample(pcm, TTS_RATE, 8000))


def _wav(ulaw: bytes) -> bytes:
    """The utterance as 16-bit PCM WAV at 8 kHz, which every speech-to-text API reads."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(g711.to_pcm16(ulaw))
    return out.getvalue()
