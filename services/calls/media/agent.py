"""The streaming voice-agent interface, and the agents that need no model.

An agent hears the call as a stream of events (``on_event``: caller audio frame by frame,
keypad digits, marks Twilio played, speech start/stop from the local VAD, barge-ins) and talks
and acts through its ``Line`` at any time, from ``on_event`` or from tasks of its own
(``line.spawn``): ``play`` audio, ``mark``, ``clear``, ``await act(...)`` with an action from
``frames`` (lead fields, callback, opt-out, transfer, hang-up, disposition), ``transcript``.

``on_event`` runs on the stream's event loop for every 20 ms frame: it must return quickly and
never block (no sockets, no database; ``await line.act`` runs the database work elsewhere).
Plug a class in with ``VOICE_AGENT=module:Class`` or per business (``/api/agent``); it is built
as ``Class(config)`` once per call, ``config`` being the business's agent settings.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from libs.common.audio import wav
from services.calls.media.frames import (
    CallerAudio,
    Dtmf,
    Event,
    Interrupted,
    MarkPlayed,
    OptOut,
    RequestCallback,
)

if TYPE_CHECKING:
    from services.calls.media.line import Line

PROMPTS = Path(__file__).with_name("prompts")
GREETING = PROMPTS / "greeting.wav"
#: Played when an agent's model fails mid-call, before the call falls back to the keypad.
FALLBACK = PROMPTS / "fallback.wav"


@functools.cache
def prompt_audio(path: Path) -> bytes:
    fmt, rate, audio = wav.read(path)
    if (fmt, rate) != (wav.FORMAT_MULAW, wav.SAMPLE_RATE):
        raise ValueError(f"{path} must be 8 kHz μ-law")
    return audio


def greeting_audio() -> bytes:
    return prompt_audio(GREETING)


class Agent:
    """Base class: override what you need. ``self.line`` is set before ``start`` runs."""

    #: When the local VAD hears the caller during the agent's audio, the line clears it and
    #: sends ``Interrupted``. Agents whose model detects turns itself set this False.
    local_barge_in: ClassVar[bool] = True
    #: Whether the line runs its VAD on the caller's audio for this agent (``SpeechStarted``,
    #: ``SpeechStopped``, local barge-in). Agents whose model hears turns itself skip it.
    local_vad: ClassVar[bool] = True

    line: Line

    def __init__(self, config: Any = None) -> None:
        self.config = config

    async def start(self) -> None:
        """The caller is connected: greet, or connect to a model."""

    async def on_event(self, event: Event) -> None:
        """One event from the line, in order. Return quickly."""

    async def stop(self, reason: str) -> None:
        """The call is over (``reason``: why); release what ``start`` took."""


class KeypadAgent(Agent):
    """The offline default: plays the greeting, then keypad 1 asks for a callback and 2 opts
    out. A key, or the caller speaking, during the greeting cuts it short (barge-in)."""

    GREETING_MARK = "greeting-end"

    async def start(self) -> None:
        self.line.play(greeting_audio(), label="greeting")
        self.line.mark(self.GREETING_MARK)

    async def on_event(self, event: Event) -> None:
        if isinstance(event, Dtmf):
            if self.line.playing:
                self.line.clear()
            if event.digit == "1":
                await self.line.act(RequestCallback())
            elif event.digit == "2":
                await self.line.act(OptOut())
        elif isinstance(event, MarkPlayed | Interrupted):
            pass  # nothing more to say: the caller chooses on the keypad


class EchoAgent(Agent):
    """Plays the caller's audio straight back, frame by frame: the classic echo-test line, and
    the load the media benchmark measures (every frame in answers a frame out)."""

    local_barge_in = False
    local_vad = False

    async def on_event(self, event: Event) -> None:
        if isinstance(event, CallerAudio):
            self.line.play(event.audio, live=True)


def load_agent_class(dotted: str) -> type[Agent]:
    """``module:Class`` → the class; raises ImportError/AttributeError with the path."""
    module_name, _, class_name = dotted.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Agent] = getattr(module, class_name)
    return cls
