"""An inbound call end to end, spoken in Twilio's own protocol against a real gunicorn calls
service: signed voice webhook → TwiML with the stream; signed WebSocket upgrade → connected,
start, media x N, dtmf, stop; then a worker makes the lead and measures the recording."""

from __future__ import annotations

import base64
import json
import secrets
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import simple_websocket
from sqlalchemy import select

from libs.common.audio import wav
from libs.common.db import Database
from libs.common.models import Call, DncEntry, Lead
from libs.telephony.twilio_signature import sign
from tests.e2e.conftest import BUSINESS_NUMBER, CallsService
from tests.support.brokers import on_every_broker
from tests.support.twilio_sim import AUTH_TOKEN

#: The calls service's follow-ups reach the worker through each broker.
pytestmark = on_every_broker


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _voice(service: CallsService, call_sid: str, caller: str, to: str = BUSINESS_NUMBER,
           signature: str | None = None) -> requests.Response:  # fmt: skip
    params = {"CallSid": call_sid, "From": caller, "To": to, "AccountSid": _sid("AC"),
              "CallStatus": "ringing", "Direction": "inbound"}  # fmt: skip
    url = f"{service.public}/webhook/twilio/voice"
    headers = {"X-Twilio-Signature": signature or sign(AUTH_TOKEN, url, params)}
    return requests.post(url, data=params, headers=headers, timeout=10)


def _stream_params(twiml: str) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    assert stream is not None, twiml
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), params


def _connect(service: CallsService, signature: str | None = None) -> simple_websocket.Client:
    ws_url = service.stream_url
    signature = signature or sign(AUTH_TOKEN, ws_url, {})
    return simple_websocket.Client.connect(ws_url, headers={"X-Twilio-Signature": signature})


def _frames(stream_sid: str, call_sid: str, params: dict[str, str], media: int,
            digits: str) -> list[dict[str, Any]]:  # fmt: skip
    out: list[dict[str, Any]] = [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {"event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
         "start": {"streamSid": stream_sid, "callSid": call_sid, "accountSid": _sid("AC"),
                   "tracks": ["inbound"], "customParameters": params,
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                   "channels": 1}}},
    ]  # fmt: skip
    for i in range(media):
        # Mostly quiet, not silent: the line's VAD must not take it for speech (barge-in).
        payload = base64.b64encode(bytes([0xFF - (i + j) % 4 for j in range(160)])).decode()
        out.append({"event": "media", "sequenceNumber": str(i + 2), "streamSid": stream_sid,
                    "media": {"track": "inbound", "chunk": str(i + 1),
                              "timestamp": str(i * 20), "payload": payload}})  # fmt: skip
    for digit in digits:
        out.append({"event": "dtmf", "streamSid": stream_sid,
                    "dtmf": {"track": "inbound_track", "digit": digit}})  # fmt: skip
    out.append({"event": "stop", "streamSid": stream_sid,
                "stop": {"accountSid": _sid("AC"), "callSid": call_sid}})  # fmt: skip
    return out


Frames = list[dict[str, Any]]


def _call(service: CallsService, caller: str, media: int = 50, digits: str = "",
          garbage: list[str | bytes] | None = None) -> tuple[str, Frames]:  # fmt: skip
    """One whole inbound call; returns its CallSid and what the service sent on the stream."""
    call_sid = _sid("CA")
    answer = _voice(service, call_sid, caller)
    assert answer.status_code == 200, answer.text
    url, params = _stream_params(answer.text)
    assert url == service.stream_url
    ws = _connect(service)
    frames = _frames(_sid("MZ"), call_sid, params, media, digits)
    for frame in frames[:2]:
        ws.send(json.dumps(frame))
    for junk in garbage or []:
        ws.send(junk)
    for frame in frames[2:]:
        ws.send(json.dumps(frame))
        if frame["event"] == "media":
            time.sleep(0.02)  # Twilio's pace: the agent's audio plays meanwhile
    received = []
    try:
        while (raw := ws.receive(timeout=5)) is not None:
            received.append(json.loads(raw))
    except simple_websocket.ConnectionClosed:
        pass  # the service closes the socket after stop, as Twilio expects
    return call_sid, received


def _wait(db: Database, predicate: Any, timeout_s: float = 40) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with db.session() as session:
            value = predicate(session)
            if value:
                return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_call_is_answered_recorded_and_keypad_1_asks_for_a_callback(
    calls_service: CallsService, db: Database
) -> None:
    caller = "+14155550111"
    call_sid, sent = _call(calls_service, caller, media=20, digits="1")
    # The greeting (1 s) starts at once, paced at real time; the key pressed 0.4 s in cleared
    # the rest of it: its mark never went out.
    events = [m["event"] for m in sent]
    assert events[-1] == "clear" and set(events[:-1]) == {"media"}, events
    assert 1 <= len(events) - 1 < 50, len(events)
    lead = _wait(db, lambda s: s.scalar(select(Lead).where(Lead.phone_e164 == caller)))
    assert lead.callback_requested is True and lead.source == "call"
    call = _wait(
        db,
        lambda s: s.scalar(
            select(Call).where(
                Call.provider_call_sid == call_sid, Call.recording_sha256.is_not(None)
            )
        ),
    )
    assert call.lead_id == lead.id and call.direction == "inbound"
    fmt, rate, audio = wav.read(calls_service.recordings / str(call.recording_path))
    assert (fmt, rate) == (wav.FORMAT_MULAW, 8000)
    assert len(audio) == 20 * 160 and call.recording_duration_ms == 400  # 20 x 20 ms
    assert (
        call.recording_bytes == (calls_service.recordings / str(call.recording_path)).stat().st_size
    )


def test_keypad_2_puts_the_caller_on_the_dnc_list(
    calls_service: CallsService, db: Database
) -> None:
    caller = "+14155550122"
    _call(calls_service, caller, media=5, digits="2")
    entry = _wait(db, lambda s: s.scalar(select(DncEntry).where(DncEntry.phone_e164 == caller)))
    assert entry.business_id == calls_service.business_id


def test_the_same_caller_twice_is_one_lead(calls_service: CallsService, db: Database) -> None:
    caller = "+14155550133"
    _call(calls_service, caller, media=3)
    _call(calls_service, caller, media=3, digits="1")
    _wait(db, lambda s: s.scalar(select(Lead).where(Lead.callback_requested.is_(True))))
    with db.session() as session:
        assert len(session.scalars(select(Lead).where(Lead.phone_e164 == caller)).all()) == 1


def test_garbage_frames_are_survived_and_other_streams_unaffected(
    calls_service: CallsService, db: Database
) -> None:
    garbage: list[str | bytes] = [
        "not json", "[]", '{"event": 3}', '{"event": "dance"}', '{"event": "media"}',
        json.dumps({"event": "media", "media": {"payload": "%%%"}}),
        json.dumps({"event": "dtmf", "dtmf": {"digit": "x"}}),
        json.dumps({"event": "start", "start": {}}), "x" * 20_000, b"\xff\xfe",
    ]  # fmt: skip
    # The garbage stream runs alongside three clean calls: none of them may notice it.
    with ThreadPoolExecutor(4) as pool:
        dirty = pool.submit(_call, calls_service, "+14155550144", 10, "", garbage)
        clean = [pool.submit(_call, calls_service, f"+1415555015{i}", 30) for i in range(3)]
        expected = {dirty.result()[0]: 200} | {f.result()[0]: 600 for f in clean}
    for call_sid, duration_ms in expected.items():
        call = _wait(
            db,
            lambda s, sid=call_sid: s.scalar(
                select(Call).where(
                    Call.provider_call_sid == sid, Call.recording_sha256.is_not(None)
                )
            ),
        )
        # Exactly the good frames each call sent (10 or 30 x 20 ms), nothing from the garbage.
        assert call.recording_duration_ms == duration_ms, call_sid


def test_bad_signatures_are_refused_and_store_nothing(
    calls_service: CallsService, db: Database
) -> None:
    refused = _voice(calls_service, _sid("CA"), "+14155550155", signature="bm90IGl0")
    assert refused.status_code == 403
    with pytest.raises(simple_websocket.ConnectionError):
        _connect(calls_service, signature="bm90IGl0")
    with db.session() as session:
        assert session.scalars(select(Call)).all() == []


def test_an_unknown_number_gets_a_polite_goodbye(calls_service: CallsService, db: Database) -> None:
    answer = _voice(calls_service, _sid("CA"), "+14155550166", to="+14155559999")
    assert answer.status_code == 200
    root = ET.fromstring(answer.text)
    assert root.find("Say") is not None and root.find("Hangup") is not None
    assert "not in service" in (root.findtext("Say") or "")
    assert "no business owns this number" in calls_service.log.read_text()


def test_a_caller_who_hangs_up_before_the_stream_is_still_a_lead(
    calls_service: CallsService, db: Database
) -> None:
    caller, call_sid = "+14155550177", _sid("CA")
    assert _voice(calls_service, call_sid, caller).status_code == 200
    # No stream ever connects; Twilio's final status callback for the number arrives.
    url = f"{calls_service.public}/webhook/twilio/status"
    params = {"CallSid": call_sid, "CallStatus": "completed", "CallDuration": "2",
              "From": caller, "To": BUSINESS_NUMBER, "Direction": "inbound"}  # fmt: skip
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, url, params)}
    assert requests.post(url, data=params, headers=headers, timeout=10).status_code == 204
    lead = _wait(db, lambda s: s.scalar(select(Lead).where(Lead.phone_e164 == caller)))
    assert lead.business_id == calls_service.business_id and lead.source == "call"
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.provider_call_sid == call_sid)).one()
    assert (call.status, call.duration_s, call.lead_id) == ("completed", 2, lead.id)
    assert call.ended_at is not None and call.recording_path is None


def test_a_person_answering_a_campaign_call_reaches_the_same_agent(
    calls_service: CallsService, db: Database
) -> None:
    from tests.campaign_factories import make_campaign, start_attempt

    campaign = make_campaign(db, 1)
    call_sid = _sid("CA")
    call_id = start_attempt(db, campaign.job_ids[0], call_sid)
    url = f"{calls_service.public}/webhook/twilio/voice?job={campaign.job_ids[0]}&attempt=1"
    params = {"CallSid": call_sid, "From": "+15005550006", "To": "+14155550100",
              "Direction": "outbound-api", "CallStatus": "in-progress"}  # fmt: skip
    answer = requests.post(
        url, data=params, timeout=10, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, params)}
    )
    assert answer.status_code == 200, answer.text
    stream_url, stream_params = _stream_params(answer.text)
    assert stream_url == calls_service.stream_url
    ws = _connect(calls_service)
    for frame in _frames(_sid("MZ"), call_sid, stream_params, media=0, digits="")[:2]:
        ws.send(json.dumps(frame))
    first = json.loads(ws.receive(timeout=5))
    assert first["event"] == "media"  # the greeting, as an inbound caller hears it
    ws.close()
    call = _wait(
        db, lambda s: s.scalar(select(Call).where(Call.id == call_id, Call.ended_at.is_not(None)))
    )
    assert call.stream_sid and call.direction == "outbound"
