"""Twilio Media Streams messages: parsing what Twilio sends, building what we send back.

Every check raises FrameError with a reason that is safe to log (never the audio itself).
JSON goes through orjson and base64 through ``binascii`` alone: both run for every 20 ms frame
of every call, and the standard library's versions cost ~3x as much (docs/voice.md).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson

#: A 20 ms frame is ~400 characters of JSON; far larger ones are refused before parsing.
MAX_FRAME_CHARS = 16_384
EVENTS = {"connected", "start", "media", "dtmf", "mark", "stop"}
DTMF_DIGITS = set("0123456789*#ABCD")
STREAM_SID = re.compile(r"^MZ[0-9a-fA-F]{32}$")
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")


class FrameError(ValueError):
    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result  # the metrics label: malformed, oversized, unknown, out_of_order


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    business_id: int
    call_id: int
    encoding: str
    sample_rate: int


def parse(raw: str | bytes) -> dict[str, Any]:
    if len(raw) > MAX_FRAME_CHARS:
        kind = "binary frame" if isinstance(raw, bytes) else "frame"
        unit = "bytes" if isinstance(raw, bytes) else "characters"
        raise FrameError("oversized", f"{kind} of {len(raw)} {unit}")
    try:
        message = orjson.loads(raw)  # bytes must be UTF-8: orjson checks
    except orjson.JSONDecodeError:
        if isinstance(raw, bytes):
            raise FrameError("malformed", "binary frame is not UTF-8 JSON") from None
        raise FrameError("malformed", "frame is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise FrameError("malformed", "frame has no event")
    if message["event"] not in EVENTS:
        raise FrameError("unknown", f"unknown event {message['event'][:40]!r}")
    return message


def _section(message: dict[str, Any], name: str) -> dict[str, Any]:
    section = message.get(name)
    if not isinstance(section, dict):
        raise FrameError("malformed", f"{message['event']} frame without a {name!r} object")
    return section


def parse_start(message: dict[str, Any]) -> Start:
    start = _section(message, "start")
    stream_sid, call_sid = start.get("streamSid"), start.get("callSid")
    if not isinstance(stream_sid, str) or not STREAM_SID.match(stream_sid):
        raise FrameError("malformed", "start.streamSid must be MZ followed by 32 hex digits")
    if not isinstance(call_sid, str) or not CALL_SID.match(call_sid):
        raise FrameError("malformed", "start.callSid must be CA followed by 32 hex digits")
    params = start.get("customParameters")
    if not isinstance(params, dict):
        raise FrameError("malformed", "start.customParameters is missing")
    ids = []
    for name in ("business_id", "call_id"):
        value = params.get(name)
        if not isinstance(value, str) or not value.isdigit() or len(value) > 18:
            raise FrameError("malformed", f"customParameters.{name} must be an id")
        ids.append(int(value))
    media_format = start.get("mediaFormat") or {}
    if not isinstance(media_format, dict):
        raise FrameError("malformed", "start.mediaFormat must be an object")
    encoding = media_format.get("encoding", "audio/x-mulaw")
    rate = media_format.get("sampleRate", 8000)
    if encoding != "audio/x-mulaw" or rate != 8000:
        raise FrameError("malformed", f"unsupported media format {encoding!r} at {rate!r} Hz")
    return Start(stream_sid, call_sid, ids[0], ids[1], encoding, rate)


def media_payload(message: dict[str, Any]) -> tuple[bytes, str]:
    """The caller's audio of a ``media`` frame, and its base64 as received (an agent that
    forwards it to a model as base64 need not encode it again)."""
    media = _section(message, "media")
    if media.get("track", "inbound") not in ("inbound", "inbound_track"):
        return b"", ""  # only the caller's audio is recorded
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise FrameError("malformed", "media.payload must be base64 text")
    try:
        # strict_mode: what b64decode(validate=True) checks, without its regular expression.
        return binascii.a2b_base64(payload, strict_mode=True), payload
    except (binascii.Error, ValueError):
        raise FrameError("malformed", "media.payload is not valid base64") from None


def dtmf_digit(message: dict[str, Any]) -> str:
    digit = _section(message, "dtmf").get("digit")
    if not isinstance(digit, str) or digit not in DTMF_DIGITS:
        raise FrameError("malformed", "dtmf.digit must be one keypad character")
    return digit


def mark_name(message: dict[str, Any]) -> str:
    name = _section(message, "mark").get("name")
    if not isinstance(name, str) or len(name) > 200:
        raise FrameError("malformed", "mark.name must be a string")
    return name


def outgoing_media(stream_sid: str, audio: bytes) -> str:
    payload = binascii.b2a_base64(audio, newline=False).decode("ascii")
    return _dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def outgoing_media_parts(stream_sid: str) -> tuple[str, str]:
    """What goes before and after a frame's base64 in ``outgoing_media``: a stream's playout
    builds each frame by concatenation (no dict, no encoder, 50 times a second)."""
    prefix, _, suffix = outgoing_media(stream_sid, b"").partition('"payload":""')
    return prefix + '"payload":"', '"' + suffix


def outgoing_mark(stream_sid: str, name: str) -> str:
    return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def outgoing_clear(stream_sid: str) -> str:
    return _dumps({"event": "clear", "streamSid": stream_sid})


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode("utf-8")
