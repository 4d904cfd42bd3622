"""One simulated realtime session: server VAD on the appended μ-law audio, a scripted model
that answers each caller turn (text, and optionally a function call first), audio deltas
faster than real time, truncation and cancellation as the real API does them.

The script is what the "model" says: a list of turns, each answering one caller utterance in
order (``caller`` is the transcript the simulator reports for it, ``reply`` the words of its
answer, ``call`` an optional function call made before answering). The greeting is the answer
to the client's first ``response.create``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from libs.common.audio import g711

FRAME_MS = 20
#: μ-law bytes per millisecond of 8 kHz audio.
BYTES_PER_MS = 8
#: RMS (16-bit linear) above which a frame is speech: the simulator's server VAD.
SPEECH_RMS = 500
#: Audio of a reply: this long per word, at least MIN_REPLY_MS.
MS_PER_WORD = 120
MIN_REPLY_MS = 400
#: Deltas carry this much audio and are sent this often: five times real time, as a model
#: streams faster than the caller listens.
DELTA_MS = 100
DELTA_EVERY_S = 0.02

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):08d}"


def tone(ms: int, freq: float = 440.0) -> bytes:
    """μ-law audio of a steady tone: what the simulated model "says"."""
    samples = ms * 8
    pcm = struct.pack(
        f"<{samples}h",
        *(int(6000 * math.sin(2 * math.pi * freq * n / 8000)) for n in range(samples)),
    )
    return g711.from_pcm16(pcm)


@dataclass
class Turn:
    caller: str = "(caller speech)"
    reply: str = "I hear you."
    call: dict[str, Any] | None = None  # {"name": ..., "arguments": {...}}


@dataclass
class Behaviour:
    """Per-session settings the tests and the benchmark choose (POST /_sim/behaviour)."""

    greeting: str = "Hello, thanks for calling. How can I help?"
    script: list[Turn] = field(default_factory=list)
    #: The model's thinking time before its first delta: the benchmark subtracts it.
    response_delay_ms: int = 300
    #: Close the socket this long after the session starts (a model that drops mid-call).
    drop_after_ms: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Behaviour:
        script = [Turn(**turn) for turn in data.get("script", [])]
        fields = {k: v for k, v in data.items() if k != "script"}
        return cls(script=script, **fields)


Send = Callable[[dict[str, Any]], Awaitable[None]]


class Session:
    def __init__(self, send: Send, behaviour: Behaviour, model: str) -> None:
        self.send, self.behaviour, self.model = send, behaviour, model
        self.id = new_id("sess")
        self.config: dict[str, Any] = {}
        #: Every client event type received, and the ones tests look at, whole.
        self.received: list[str] = []
        self.truncations: list[dict[str, Any]] = []
        self.function_outputs: list[dict[str, Any]] = []
        self.turns_answered = 0
        self.audio_ms = 0
        self._speech_ms = 0
        self._silence_ms = 0
        self.speaking = False
        self._response: asyncio.Task[None] | None = None
        self._pending_call: dict[str, Any] | None = None

    @property
    def silence_duration_ms(self) -> int:
        detection = self.config.get("audio", {}).get("input", {}).get("turn_detection") or {}
        return int(detection.get("silence_duration_ms", 200))

    async def open(self) -> None:
        await self.send(
            {
                "type": "session.created",
                "event_id": new_id("event"),
                "session": {"id": self.id, "model": self.model, "type": "realtime"},
            }
        )

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        self.received.append(kind)
        if kind == "input_audio_buffer.append":
            await self._audio(base64.b64decode(event.get("audio", "")))
        elif kind == "session.update":
            self.config.update(event.get("session") or {})
            await self.send(
                {
                    "type": "session.updated",
                    "event_id": new_id("event"),
                    "session": {"id": self.id, **self.config},
                }
            )
        elif kind == "response.create":
            self._start_response()
        elif kind == "response.cancel":
            self._cancel()
        elif kind == "conversation.item.truncate":
            self.truncations.append(event)
            await self.send(
                {
                    "type": "conversation.item.truncated",
                    "event_id": new_id("event"),
                    "item_id": event.get("item_id"),
                    "content_index": event.get("content_index", 0),
                    "audio_end_ms": event.get("audio_end_ms", 0),
                }
            )
        elif kind == "conversation.item.create":
            item = event.get("item") or {}
            if item.get("type") == "function_call_output":
                self.function_outputs.append(item)
        else:
            await self.send(
                {
                    "type": "error",
                    "event_id": new_id("event"),
                    "error": {
                        "type": "invalid_request_error",
                        "code": "unknown_event",
                        "message": f"unknown client event {kind[:60]!r}",
                    },
                }
            )

    # -- server VAD ---------------------------------------------------------------------

    async def _audio(self, ulaw: bytes) -> None:
        ms = len(ulaw) // BYTES_PER_MS
        self.audio_ms += ms
        loud = bool(ulaw) and g711.rms(g711.to_pcm16(ulaw)) >= SPEECH_RMS
        if loud:
            self._speech_ms += ms
            self._silence_ms = 0
            if not self.speaking and self._speech_ms >= 60:
                self.speaking = True
                self._cancel()  # the caller barged in: the model stops talking
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "event_id": new_id("event"),
                        "item_id": new_id("item"),
                        "audio_start_ms": self.audio_ms - self._speech_ms,
                    }
                )
        else:
            self._speech_ms = 0
            if self.speaking:
                self._silence_ms += ms
                if self._silence_ms >= self.silence_duration_ms:
                    self.speaking = False
                    await self._end_of_turn()

    async def _end_of_turn(self) -> None:
        item_id = new_id("item")
        await self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "event_id": new_id("event"),
                "item_id": item_id,
                "audio_end_ms": self.audio_ms,
            }
        )
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "event_id": new_id("event"),
                "item_id": item_id,
            }
        )
        turn = self._turn()
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": new_id("event"),
                "item_id": item_id,
                "content_index": 0,
                "transcript": turn.caller,
            }
        )
        self._start_response(turn)

    def _turn(self) -> Turn:
        script = self.behaviour.script
        turn = script[self.turns_answered] if self.turns_answered < len(script) else Turn()
        self.turns_answered += 1
        return turn

    # -- responses ----------------------------------------------------------------------

    def _start_response(self, turn: Turn | None = None) -> None:
        self._cancel()
        if turn is None:
            if self._pending_call is not None:  # the answer after a function's output
                turn, self._pending_call = Turn(reply=self._pending_call["reply"]), None
            else:
                turn = Turn(reply=self.behaviour.greeting)
        self._response = asyncio.get_running_loop().create_task(self._respond(turn))

    def _cancel(self) -> None:
        if self._response is not None and not self._response.done():
            self._response.cancel()
        self._response = None

    async def _respond(self, turn: Turn) -> None:
        response_id = new_id("resp")
        await self.send(
            {
                "type": "response.created",
                "event_id": new_id("event"),
                "response": {"id": response_id, "status": "in_progress"},
            }
        )
        await asyncio.sleep(self.behaviour.response_delay_ms / 1000)
        if turn.call is not None:
            call_id, item_id = new_id("call"), new_id("item")
            arguments = json.dumps(turn.call.get("arguments", {}))
            item = {
                "id": item_id,
                "type": "function_call",
                "call_id": call_id,
                "name": turn.call["name"],
                "arguments": arguments,
            }
            await self.send(
                {
                    "type": "response.output_item.added",
                    "event_id": new_id("event"),
                    "response_id": response_id,
                    "output_index": 0,
                    "item": item,
                }
            )
            await self.send(
                {
                    "type": "response.function_call_arguments.done",
                    "event_id": new_id("event"),
                    "response_id": response_id,
                    "item_id": item_id,
                    "output_index": 0,
                    "call_id": call_id,
                    "name": turn.call["name"],
                    "arguments": arguments,
                }
            )
            await self.send(
                {
                    "type": "response.done",
                    "event_id": new_id("event"),
                    "response": {"id": response_id, "status": "completed", "output": [item]},
                }
            )
            # The spoken answer comes with the client's next response.create.
            self._pending_call = {"reply": turn.reply}
            return
        item_id = new_id("item")
        await self.send(
            {
                "type": "response.output_item.added",
                "event_id": new_id("event"),
                "response_id": response_id,
                "output_index": 0,
                "item": {"id": item_id, "type": "message", "role": "assistant"},
            }
        )
        audio = tone(max(MIN_REPLY_MS, MS_PER_WORD * len(turn.reply.split())))
        chunk = DELTA_MS * BYTES_PER_MS
        words = turn.reply.split()
        for n, offset in enumerate(range(0, len(audio), chunk)):
            await self.send(
                {
                    "type": "response.output_audio.delta",
                    "event_id": new_id("event"),
                    "response_id": response_id,
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": base64.b64encode(audio[offset : offset + chunk]).decode(),
                }
            )
            if n < len(words):
                await self.send(
                    {
                        "type": "response.output_audio_transcript.delta",
                        "event_id": new_id("event"),
                        "response_id": response_id,
                        "item_id": item_id,
                        "delta": words[n] + " ",
                    }
                )
            await asyncio.sleep(DELTA_EVERY_S)
        await self.send(
            {
                "type": "response.output_audio_transcript.done",
                "event_id": new_id("event"),
                "response_id": response_id,
                "item_id": item_id,
                "transcript": turn.reply,
            }
        )
        await self.send(
            {
                "type": "response.output_audio.done",
                "event_id": new_id("event"),
                "response_id": response_id,
                "item_id": item_id,
            }
        )
        await self.send(
            {
                "type": "response.done",
                "event_id": new_id("event"),
                "response": {"id": response_id, "status": "completed"},
            }
        )

    def close(self) -> None:
        self._cancel()

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "config": self.config,
            "received": sorted(set(self.received)),
            "appended_ms": self.audio_ms,
            "truncations": self.truncations,
            "function_outputs": self.function_outputs,
            "turns_answered": self.turns_answered,
        }
