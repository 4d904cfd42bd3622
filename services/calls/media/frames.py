"""What flows through a call's media path: events the agent hears and actions it takes.

Events go to the agent (``Agent.on_event``) in the order they happened on the line; actions go
the other way (``Line.act``) and change the call through ``call_log`` and the provider. Audio
is always 8 kHz μ-law, the wire format of Twilio and of the realtime models, never resampled.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from typing import Any

#: 20 ms of 8 kHz μ-law: the unit Twilio sends and the one the playout paces.
FRAME_BYTES = 160
FRAME_MS = 20


@dataclass(frozen=True)
class CallInfo:
    business_id: int
    call_id: int
    call_sid: str
    from_number: str
    to_number: str = ""
    direction: str = "inbound"


# -- events (line → agent) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerAudio:
    audio: bytes  # one frame, μ-law
    #: The same frame in base64 as Twilio sent it, when it came from Twilio ("" otherwise):
    #: a model's socket takes base64, and encoding 50 frames a second again is waste.
    payload: str = ""

    def base64(self) -> str:
        return self.payload or binascii.b2a_base64(self.audio, newline=False).decode("ascii")


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class MarkPlayed:
    """Twilio played everything queued before this mark."""

    name: str


@dataclass(frozen=True)
class SpeechStarted:
    """The local VAD heard the caller start speaking."""


@dataclass(frozen=True)
class SpeechStopped:
    """The local VAD heard the caller stop speaking."""


@dataclass(frozen=True)
class Interrupted:
    """Barge-in: the caller spoke over the agent and the line cleared the agent's audio.
    ``heard_ms`` of the audio labelled ``label`` had been played when it stopped."""

    label: str | None
    heard_ms: int


Event = CallerAudio | Dtmf | MarkPlayed | SpeechStarted | SpeechStopped | Interrupted


# -- actions (agent → call) -----------------------------------------------------------------


@dataclass(frozen=True)
class UpdateLead:
    """Create the caller's lead if it has none, and set these fields (name, email, notes, or
    anything else, kept under the lead's ``fields``)."""

    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestCallback:
    when: str | None = None  # free text from the caller ("tomorrow after 5")


@dataclass(frozen=True)
class OptOut:
    """The caller asked never to be called again: the number goes on the DNC list at once."""


@dataclass(frozen=True)
class Transfer:
    """Hand the caller to a person at ``number``. Cold: the call is redirected at once. Warm:
    the person is called first and hears ``summary`` before the caller is bridged in."""

    number: str
    warm: bool = False
    summary: str = ""


@dataclass(frozen=True)
class HangUp:
    reason: str = "agent hung up"


@dataclass(frozen=True)
class SetDisposition:
    value: str  # interested, not_interested, callback, voicemail, wrong_number, …


Action = UpdateLead | RequestCallback | OptOut | Transfer | HangUp | SetDisposition
