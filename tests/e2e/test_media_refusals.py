"""Streams that are not a call are refused at the WebSocket, against a real calls service (its
webhooks and its media server), with the signed upgrade exactly as Twilio sends it.

Twilio signs the upgrade over the URL alone, so anyone who saw one call's upgrade and ``start``
can replay them: a stream for a call that already streamed or ended is refused and changes
nothing (no agent audio, no new stream sid, no new recording). A signed stream that never
names its call (``start`` without ``customParameters``, media before ``start``) is closed
within a second with one log line, not kept open logging every frame.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import simple_websocket
from sqlalchemy import select

from libs.common.audio import wav
from libs.common.db import Database
from libs.common.models import Call
from libs.telephony.twilio_signature import sign
from services.calls.media.stream import START_TIMEOUT_S
from simulators.twilio.media_client import stream_from_twiml
from tests.e2e.conftest import BUSINESS_NUMBER, CallsService
from tests.support.twilio_sim import AUTH_TOKEN

#: Greeting frames the default agent plays when a stream starts (1 s of audio).
GREETING_FRAMES = 50


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Answered:
    call_sid: str
    ws_url: str
    params: dict[str, str]


def _answer(service: CallsService, caller: str) -> Answered:
    call_sid = _sid("CA")
    form = {"CallSid": call_sid, "From": caller, "To": BUSINESS_NUMBER,
            "AccountSid": _sid("AC"), "CallStatus": "ringing", "Direction": "inbound"}  # fmt: skip
    url = f"{service.public}/webhook/twilio/voice"
    response = requests.post(
        url, data=form, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, form)}, timeout=10
    )
    assert response.status_code == 200, response.text
    ws_url, params = stream_from_twiml(response.text)
    return Answered(call_sid, ws_url, params)


def _connect(ws_url: str) -> simple_websocket.Client:
    """The upgrade as Twilio sends it: signed over the wss:// URL with no parameters."""
    return simple_websocket.Client.connect(
        ws_url, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, ws_url, {})}
    )


def _start(stream_sid: str, call_sid: str, params: dict[str, str] | None) -> str:
    start: dict[str, Any] = {
        "streamSid": stream_sid, "callSid": call_sid, "accountSid": "AC" + "0" * 32,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }  # fmt: skip
    if params is not None:
        start["customParameters"] = params
    return json.dumps(
        {"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": start}
    )


CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def _media(stream_sid: str, i: int) -> str:
    payload = base64.b64encode(bytes([(i + j) % 256 for j in range(160)])).decode()
    return json.dumps({"event": "media", "sequenceNumber": str(i + 2), "streamSid": stream_sid,
                       "media": {"track": "inbound", "chunk": str(i + 1),
                                 "timestamp": str(i * 20), "payload": payload}})  # fmt: skip


def _stop(stream_sid: str, call_sid: str) -> str:
    return json.dumps({"event": "stop", "streamSid": stream_sid, "stop": {"callSid": call_sid}})


def _drain(ws: simple_websocket.Client, timeout_s: float = 5) -> list[dict[str, Any]]:
    """Everything the service sends until it closes the socket (or stays quiet)."""
    received = []
    try:
        while (raw := ws.receive(timeout=timeout_s)) is not None:
            received.append(json.loads(raw))
    except simple_websocket.ConnectionClosed:
        pass
    return received


def _whole_call(service: CallsService, answered: Answered, media: int = 20) -> str:
    """The genuine stream of a call, from connected to stop; returns its stream sid."""
    stream_sid = _sid("MZ")
    ws = _connect(answered.ws_url)
    ws.send(CONNECTED)
    ws.send(_start(stream_sid, answered.call_sid, answered.params))
    for i in range(media):
        ws.send(_media(stream_sid, i))
        time.sleep(0.02)  # Twilio's pace: the greeting plays meanwhile
    ws.send(_stop(stream_sid, answered.call_sid))
    sent = _drain(ws)
    # The greeting began (paced at real time, so the stop sent at once cut it short).
    assert sum(1 for m in sent if m["event"] == "media") >= 1, [m["event"] for m in sent]
    return stream_sid


def _media_until_closed(ws: simple_websocket.Client, stream_sid: str,
                        seconds: float) -> tuple[list[dict[str, Any]], float | None]:  # fmt: skip
    """Send media every 20 ms as Twilio does; what came back, and how long after the call to
    this function the service closed the socket (None: still open after ``seconds``)."""
    began = time.monotonic()
    received: list[dict[str, Any]] = []
    i = 0
    try:
        while time.monotonic() - began < seconds:
            ws.send(_media(stream_sid, i))
            i += 1
            raw = ws.receive(timeout=0.02)
            if raw is not None:
                received.append(json.loads(raw))
    except simple_websocket.ConnectionClosed:
        return received, time.monotonic() - began
    ws.close()
    return received, None


@dataclass(frozen=True)
class CallState:
    stream_sid: str | None
    recording_path: str | None
    status: str
    recording_sha256: str


def _state(db: Database, service: CallsService, call_sid: str) -> CallState:
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.provider_call_sid == call_sid)).one()
    digest = ""
    if call.recording_path:
        path: Path = service.recordings / call.recording_path
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"
    return CallState(call.stream_sid, call.recording_path, call.status, digest)


def _refusals(service: CallsService) -> list[str]:
    assert service.media_log is not None
    return [line for line in service.media_log.read_text().splitlines() if "media stream" in line]


def test_a_replayed_start_after_the_call_is_refused_and_changes_nothing(
    calls_service: CallsService, db: Database
) -> None:
    answered = _answer(calls_service, "+14155550211")
    first_sid = _whole_call(calls_service, answered)
    before = _state(db, calls_service, answered.call_sid)
    assert before.stream_sid == first_sid and before.recording_sha256 not in ("", "absent")
    # The same upgrade and start again, then with a fresh stream sid: neither is a call.
    for stream_sid in (first_sid, _sid("MZ")):
        ws = _connect(answered.ws_url)
        ws.send(CONNECTED)
        ws.send(_start(stream_sid, answered.call_sid, answered.params))
        received, closed_after = _media_until_closed(ws, stream_sid, seconds=3)
        assert received == [], "the agent spoke on a replayed stream"
        assert closed_after is not None and closed_after < 1.0, closed_after
    assert _state(db, calls_service, answered.call_sid) == before
    assert len(_refusals(calls_service)) == 2, _refusals(calls_service)


def test_a_second_socket_for_a_live_call_is_refused_and_the_first_goes_on(
    calls_service: CallsService, db: Database
) -> None:
    answered = _answer(calls_service, "+14155550222")
    first_sid, second_sid = _sid("MZ"), _sid("MZ")
    first = _connect(answered.ws_url)
    first.send(CONNECTED)
    first.send(_start(first_sid, answered.call_sid, answered.params))
    greeting = [first.receive(timeout=5) for _ in range(GREETING_FRAMES)]
    assert all(raw and '"media"' in raw for raw in greeting)

    second = _connect(answered.ws_url)
    second.send(CONNECTED)
    second.send(_start(second_sid, answered.call_sid, answered.params))
    received, closed_after = _media_until_closed(second, second_sid, seconds=3)
    assert received == [] and closed_after is not None and closed_after < 1.0

    for i in range(10):
        first.send(_media(first_sid, i))
    first.send(_stop(first_sid, answered.call_sid))
    _drain(first)
    state = _state(db, calls_service, answered.call_sid)
    assert state.stream_sid == first_sid and state.status == "completed"
    # The recording is the first stream's audio alone: its 10 frames.
    _, _, audio = wav.read(calls_service.recordings / str(state.recording_path))
    assert len(audio) == 10 * 160


def test_a_stream_for_a_call_that_ended_before_streaming_is_refused(
    calls_service: CallsService, db: Database
) -> None:
    answered = _answer(calls_service, "+14155550233")
    url = f"{calls_service.public}/webhook/twilio/status"
    form = {"CallSid": answered.call_sid, "CallStatus": "completed", "CallDuration": "1",
            "From": "+14155550233", "To": BUSINESS_NUMBER, "Direction": "inbound"}  # fmt: skip
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, url, form)}
    assert requests.post(url, data=form, headers=headers, timeout=10).status_code == 204
    # The calls service stored it; the worker applies it (calls.status_changed).
    deadline = time.monotonic() + 30
    while _state(db, calls_service, answered.call_sid).status != "completed":
        assert time.monotonic() < deadline, "the final status was not applied in time"
        time.sleep(0.05)
    before = _state(db, calls_service, answered.call_sid)
    stream_sid = _sid("MZ")
    ws = _connect(answered.ws_url)
    ws.send(CONNECTED)
    ws.send(_start(stream_sid, answered.call_sid, answered.params))
    received, closed_after = _media_until_closed(ws, stream_sid, seconds=3)
    assert received == [] and closed_after is not None and closed_after < 1.0
    after = _state(db, calls_service, answered.call_sid)
    assert after == before and after.stream_sid is None and after.recording_path is None


def test_a_start_without_custom_parameters_is_closed_within_a_second_with_one_line(
    calls_service: CallsService, db: Database
) -> None:
    answered = _answer(calls_service, "+14155550244")
    stream_sid = _sid("MZ")
    ws = _connect(answered.ws_url)
    ws.send(CONNECTED)
    ws.send(_start(stream_sid, answered.call_sid, None))
    received, closed_after = _media_until_closed(ws, stream_sid, seconds=3)
    assert received == [] and closed_after is not None and closed_after < 1.0, closed_after
    time.sleep(0.2)  # the log line is written as the socket closes
    lines = _refusals(calls_service)
    assert len(lines) == 1 and "customParameters" in lines[0], lines
    assert _state(db, calls_service, answered.call_sid).stream_sid is None


def test_media_before_any_start_is_closed_within_a_second_with_one_line(
    calls_service: CallsService,
) -> None:
    answered = _answer(calls_service, "+14155550255")
    stream_sid = _sid("MZ")
    ws = _connect(answered.ws_url)
    ws.send(CONNECTED)
    received, closed_after = _media_until_closed(ws, stream_sid, seconds=3)
    assert received == [] and closed_after is not None and closed_after < 1.0, closed_after
    time.sleep(0.2)
    assert len(_refusals(calls_service)) == 1, _refusals(calls_service)


def test_a_signed_socket_that_never_starts_is_closed_after_the_start_timeout(
    calls_service: CallsService,
) -> None:
    answered = _answer(calls_service, "+14155550266")
    ws = _connect(answered.ws_url)
    ws.send(CONNECTED)
    opened = time.monotonic()
    try:
        assert ws.receive(timeout=START_TIMEOUT_S + 5) is None
    except simple_websocket.ConnectionClosed:
        pass
    waited = time.monotonic() - opened
    # Not the minute an idle call is given: Twilio sends start right after connected.
    assert START_TIMEOUT_S - 0.5 < waited < START_TIMEOUT_S + 3, waited
    assert ws.connected is False
