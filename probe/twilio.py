"""Twilio's side, played from outside: signed (or forged) webhooks and media streams, and the
webhook/WebSocket checks. Twilio signs a webhook over the public URL and its POST parameters,
and a stream's upgrade over the wss:// URL alone (ARCHITECTURE.md)."""

from __future__ import annotations

import base64
import json
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import simple_websocket

from libs.telephony.twilio_signature import sign
from probe.model import TWILIO, Check, judge
from probe.target import Client

#: The Twilio-facing routes (the calls service has no OpenAPI document).
STATUS_PATH, VOICE_PATH, MEDIA_PATH = "/webhook/twilio/status", "/webhook/twilio/voice", "/ws/media"
TWILIO_ROUTES = (f"POST {STATUS_PATH}", f"POST {VOICE_PATH}", f"GET {MEDIA_PATH}")
#: A stream the service must refuse is closed within this long (issue 24, item 3).
CLOSE_WITHIN_S = 1.0
FORGED = base64.b64encode(b"not twilio's signature").decode()


def sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class InboundCall:
    """A call A answered and streamed to its end: what a replay would resend."""

    call_sid: str
    ws_url: str
    params: dict[str, str]
    stream_sid: str


def ws_url_of(http_url: str) -> str:
    return http_url.replace("https://", "wss://").replace("http://", "ws://")


def voice_form(call_sid: str, caller: str, to: str) -> dict[str, str]:
    return {"CallSid": call_sid, "From": caller, "To": to, "AccountSid": sid("AC"),
            "CallStatus": "ringing", "Direction": "inbound"}  # fmt: skip


def signed_post(client: Client, token: str, path: str, form: dict[str, str]) -> Any:
    url = client.target.calls + path
    return client.calls(
        "POST", path, data=form, headers={"X-Twilio-Signature": sign(token, url, form)}
    )


def answer(client: Client, token: str, caller: str, to: str) -> tuple[str, str, dict[str, str]]:
    """The signed voice webhook of a new call: (CallSid, stream URL, stream parameters)."""
    call_sid = sid("CA")
    response = signed_post(client, token, VOICE_PATH, voice_form(call_sid, caller, to))
    response.raise_for_status()
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    if stream is None:
        raise RuntimeError(f"no <Stream> in the voice webhook's answer: {response.text[:200]}")
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return call_sid, stream.get("url", ""), params


def connect(ws_url: str, signature: str | None) -> simple_websocket.Client:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return simple_websocket.Client.connect(ws_url, headers=headers)


CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start_frame(stream_sid: str, call_sid: str, params: dict[str, str] | None) -> str:
    start: dict[str, Any] = {
        "streamSid": stream_sid, "callSid": call_sid, "accountSid": "AC" + "0" * 32,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }  # fmt: skip
    if params is not None:
        start["customParameters"] = params
    return json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
                       "start": start})  # fmt: skip


def media_frame(stream_sid: str, i: int) -> str:
    payload = base64.b64encode(bytes([(i * 7 + j) % 256 for j in range(160)])).decode()
    return json.dumps({"event": "media", "sequenceNumber": str(i + 2), "streamSid": stream_sid,
                       "media": {"track": "inbound", "chunk": str(i + 1),
                                 "timestamp": str(i * 20), "payload": payload}})  # fmt: skip


def stop_frame(stream_sid: str, call_sid: str) -> str:
    return json.dumps({"event": "stop", "streamSid": stream_sid, "stop": {"callSid": call_sid}})


def _close(ws: simple_websocket.Client) -> None:
    try:
        ws.close()
    except simple_websocket.ConnectionClosed:
        pass  # the service closed it first


def whole_call(client: Client, token: str, caller: str, to: str) -> InboundCall:
    """A genuine inbound call: webhook, stream from connected to stop, as Twilio plays it."""
    call_sid, ws_url, params = answer(client, token, caller, to)
    stream_sid = sid("MZ")
    ws = connect(ws_url, sign(token, ws_url, {}))
    try:
        ws.send(CONNECTED)
        ws.send(start_frame(stream_sid, call_sid, params))
        for i in range(10):
            ws.send(media_frame(stream_sid, i))
        ws.send(stop_frame(stream_sid, call_sid))
        while ws.receive(timeout=5) is not None:
            pass
    except simple_websocket.ConnectionClosed:
        pass  # closed by the service after stop
    finally:
        _close(ws)
    return InboundCall(call_sid, ws_url, params, stream_sid)


def refused_stream(ws_url: str, signature: str, first: list[str], stream_sid: str,
                   seconds: float = 3.0) -> tuple[int, float | None]:  # fmt: skip
    """Open a signed stream, send ``first``, then media every 20 ms as Twilio does: (frames the
    service sent back, seconds until it closed the socket after ``first``; None: still open)."""
    ws = connect(ws_url, signature)
    received = 0
    try:
        for frame in first:
            ws.send(frame)
        began, i = time.monotonic(), 0
        while time.monotonic() - began < seconds:
            ws.send(media_frame(stream_sid, i))
            i += 1
            if ws.receive(timeout=0.02) is not None:
                received += 1
        return received, None
    except simple_websocket.ConnectionClosed:
        return received, time.monotonic() - began
    finally:
        _close(ws)


def check_webhooks(client: Client, record: Callable[[Check], Check], to: str | None,
                   inbound: InboundCall | None) -> None:  # fmt: skip
    token = client.target.twilio_auth_token
    forms = {
        STATUS_PATH: {"CallSid": sid("CA"), "CallStatus": "completed", "CallDuration": "3",
                      "From": "+14155550998", "To": to or "+14155550000", "Direction": "inbound"},
        VOICE_PATH: voice_form(sid("CA"), "+14155550997", to or "+14155550000"),
    }  # fmt: skip
    for path, form in forms.items():
        operation = f"POST {path}"
        url = client.target.calls + path
        cases: dict[str, tuple[dict[str, str], dict[str, str]]] = {
            "unsigned": (form, {}),
            "a forged signature": (form, {"X-Twilio-Signature": FORGED}),
            "signed with another auth token": (
                form, {"X-Twilio-Signature": sign("not-the-auth-token", url, form)}),
        }  # fmt: skip
        if token:
            genuine = {"X-Twilio-Signature": sign(token, url, form)}
            altered = {**form, "CallStatus": "busy" if path == STATUS_PATH else "completed"}
            cases |= {
                "a genuine signature, one parameter altered": (altered, genuine),
                "a genuine signature, one parameter added": ({**form, "Extra": "1"}, genuine),
                "signed for another host": (form, {"X-Twilio-Signature": sign(
                    token, url.replace(urlsplit(url).netloc, "calls.internal:5050"), form)}),
            }  # fmt: skip
        for case, (data, headers) in cases.items():
            response = client.calls("POST", path, data=data, headers=headers)
            problem, server_error = judge(response, {403})
            record(Check(TWILIO, operation, case, response.status_code, problem, server_error,
                         leak=response.status_code < 400))  # fmt: skip
        if token:
            _hostile_signed_forms(client, record, token, path, form)
    _check_streams(client, record, inbound)


def _hostile_signed_forms(client: Client, record: Callable[[Check], Check], token: str,
                          path: str, form: dict[str, str]) -> None:  # fmt: skip
    """Genuinely signed nonsense: Twilio's signature does not make the parameters sane."""
    hostile = {
        "CallSid of 10,000 characters": {**form, "CallSid": "CA" + "f" * 10_000},
        "CallSid not a Twilio sid": {**form, "CallSid": "../../etc/passwd"},
        "a NUL in CallSid": {**form, "CallSid": "CA\x00" + "f" * 31},
        "an unknown CallStatus": {**form, "CallStatus": "dancing"},
        "To not a phone number": {**form, "To": "x" * 300},
        "no parameters": {},
    }
    for case, data in hostile.items():
        response = signed_post(client, token, path, data)
        problem, server_error = judge(response, allow_success=True)
        record(Check(TWILIO, f"POST {path}", f"signed, {case}", response.status_code, problem,
                     server_error))  # fmt: skip


def _check_streams(client: Client, record: Callable[[Check], Check],
                   inbound: InboundCall | None) -> None:  # fmt: skip
    operation = f"GET {MEDIA_PATH}"
    ws_url = client.target.stream_url or ws_url_of(client.target.calls) + MEDIA_PATH
    plain = client.send("GET", "http" + ws_url.removeprefix("ws"))
    problem, server_error = judge(plain)
    record(Check(TWILIO, operation, "a plain GET, no upgrade", plain.status_code, problem,
                 server_error))  # fmt: skip
    for case, signature in (("unsigned upgrade", None), ("forged upgrade signature", FORGED)):
        try:
            _close(connect(ws_url, signature))
            outcome: str | None = "the upgrade was accepted"
        except simple_websocket.ConnectionError as exc:
            outcome = None if exc.status_code == 403 else f"refused with {exc.status_code}"
        record(Check(TWILIO, operation, case, None, outcome, leak=outcome is not None))
    token = client.target.twilio_auth_token
    if not token:
        return
    signature = sign(token, ws_url, {})
    other_call = sid("CA")
    cases: dict[str, list[str]] = {
        "start without customParameters": [CONNECTED, start_frame(sid("MZ"), other_call, None)],
        "media before any start": [CONNECTED],
        "not JSON before start": [CONNECTED, "not json"],
        "start naming a call nobody answered": [
            CONNECTED, start_frame(sid("MZ"), other_call, {"business_id": "1", "call_id": "1"})],
    }  # fmt: skip
    if inbound is not None:
        other_business = str(int(inbound.params.get("business_id", "0")) + 1)
        cases |= {
            "A's ended call, its start replayed": [
                CONNECTED, start_frame(inbound.stream_sid, inbound.call_sid, inbound.params)],
            "A's ended call, replayed with a new stream sid": [
                CONNECTED, start_frame(sid("MZ"), inbound.call_sid, inbound.params)],
            "A's call claimed for another business": [
                CONNECTED, start_frame(sid("MZ"), inbound.call_sid,
                                       {**inbound.params, "business_id": other_business})],
        }  # fmt: skip
    for case, first in cases.items():
        received, closed_after = refused_stream(ws_url, signature, first, sid("MZ"))
        problem = None
        if received:
            problem = f"the service sent {received} frames on a stream it should refuse"
        elif closed_after is None:
            problem = "still open after 3 s"
        elif closed_after > CLOSE_WITHIN_S:
            problem = f"closed after {closed_after:.2f} s (bound {CLOSE_WITHIN_S} s)"
        record(Check(TWILIO, operation, f"signed, {case}", None, problem, leak=received > 0))
