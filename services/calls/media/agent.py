"""The voice agent interface, and the default keypad agent.

An agent is told what happens on the stream (start, caller audio, keypad digits, marks Twilio
echoes back when our audio finished playing, stop) and answers with replies: audio to play,
marks, ``Clear`` (stop playing now: barge-in), and the caller's choices the calls service
records. Any class with these methods can be plugged in with ``VOICE_AGENT=module:Class``, for
example one that streams the audio to a speech model; it runs on the stream's own thread.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from libs.common.audio import wav

FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
GREETING = Path(__file__).with_name("prompts") / "greeting.wav"


@dataclass(frozen=True)
class CallInfo:
    business_id: int
    call_id: int
    call_sid: str
    from_number: str


@dataclass(frozen=True)
class Play:
    audio: bytes  # μ-law 8 kHz; sent in 20 ms frames


@dataclass(frozen=True)
class Mark:
    name: str


@dataclass(frozen=True)
class Clear:
    pass


@dataclass(frozen=True)
class RequestCallback:
    pass


@dataclass(frozen=True)
class OptOut:
    pass


Reply = Play | Mark | Clear | RequestCallback | OptOut


class Agent(Protocol):
    def start(self, call: CallInfo) -> list[Reply]: ...
    def audio(self, chunk: bytes) -> list[Reply]: ...
    def dtmf(self, digit: str) -> list[Reply]: ...
    def mark(self, name: str) -> list[Reply]: ...
    def stop(self) -> None: ...


@functools.cache
def greeting_audio() -> bytes:
    fmt, rate, audio = wav.read(GREETING)
    if (fmt, rate) != (wav.FORMAT_MULAW, wav.SAMPLE_RATE):
        raise ValueError(f"{GREETING} must be 8 kHz μ-law")
    return audio


class KeypadAgent:
    """Plays the greeting, then: 1 asks for a callback, 2 opts out. A key during playback
    clears the rest of it (barge-in)."""

    GREETING_MARK = "greeting-end"

    def __init__(self) -> None:
        self.playing = False

    def start(self, call: CallInfo) -> list[Reply]:
        self.playing = True
        return [Play(greeting_audio()), Mark(self.GREETING_MARK)]

    def audio(self, chunk: bytes) -> list[Reply]:
        return []

    def dtmf(self, digit: str) -> list[Reply]:
        replies: list[Reply] = []
        if self.playing:
            replies.append(Clear())
            self.playing = False
        if digit == "1":
            replies.append(RequestCallback())
        elif digit == "2":
            replies.append(OptOut())
        return replies

    def mark(self, name: str) -> list[Reply]:
        if name == self.GREETING_MARK:
            self.playing = False
        return []

    def stop(self) -> None:
        self.playing = False


class EchoAgent:
    """Plays the caller's audio straight back, frame by frame: the classic echo-test line, for
    checking a number's audio path by ear, and the load the media benchmark measures (every
    frame in answers a frame out, as a streaming voice agent does)."""

    def start(self, call: CallInfo) -> list[Reply]:
        return []

    def audio(self, chunk: bytes) -> list[Reply]:
        return [Play(chunk)]

    def dtmf(self, digit: str) -> list[Reply]:
        return []

    def mark(self, name: str) -> list[Reply]:
        return []

    def stop(self) -> None:
        pass


def load_agent_class(dotted: str) -> type[Agent]:
    """``module:Class`` → the class; raises ImportError/AttributeError with the path."""
    module_name, _, class_name = dotted.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Agent] = getattr(module, class_name)
    return cls
