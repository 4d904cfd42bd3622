"""Every Twilio-facing route refuses requests Twilio did not sign: unsigned, wrongly signed,
and a genuine signature replayed with altered parameters, query or URL. A refused request
stores nothing. The route list is read from the app: a new Twilio-facing route without a case
here fails the test."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from dramatiq.brokers.stub import StubBroker
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from libs.common.db import Database
from libs.common.models import Call, CallEvent
from libs.common.settings import Settings
from libs.telephony.twilio_signature import sign
from services.calls.media import server as media_server
from tests.calls.conftest import AUTH_TOKEN, PUBLIC, callback, new_sid

WS_HEADERS = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode()}  # fmt: skip
WRONG = base64.b64encode(b"not twilio's signature").decode()

Send = Callable[[FlaskClient, str | None, dict[str, str], str], Any]


def _post(path: str) -> Send:
    def send(client: FlaskClient, signature: str | None, params: dict[str, str],
             query: str) -> TestResponse:  # fmt: skip
        headers = {"X-Twilio-Signature": signature} if signature is not None else {}
        return client.post(path + (f"?{query}" if query else ""), data=params, headers=headers)

    return send


@dataclass
class _Answer:
    """The media server's answer to an upgrade, shaped like Flask's test response."""

    status_code: int
    body: Any

    def get_json(self) -> Any:
        return self.body


def _upgrade(client: FlaskClient, signature: str | None, params: dict[str, str],
             query: str) -> _Answer:  # fmt: skip
    """The upgrade, sent to the media server (aiohttp) with the calls service's settings."""
    settings: Settings = client.application.config["SETTINGS"]
    headers = dict(WS_HEADERS)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature

    async def send() -> _Answer:
        database = Database(settings.database_url)
        app = media_server.create_app(settings, broker=StubBroker(), database=database)
        async with TestClient(TestServer(app)) as http:
            response = await http.get("/ws/media" + (f"?{query}" if query else ""),
                                      headers=headers)  # fmt: skip
            body = await response.json() if response.status != 101 else None
            return _Answer(response.status, body)

    return asyncio.run(send())


VOICE = {"CallSid": "CA" + "7" * 32, "From": "+14155550111", "To": "+14155550000",
         "AccountSid": "AC" + "1" * 32, "CallStatus": "ringing",
         "Direction": "inbound"}  # fmt: skip
RECORDING = {"CallSid": "CA" + "8" * 32, "RecordingSid": "RE" + "8" * 32,
             "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE8",
             "RecordingStatus": "completed", "RecordingChannels": "2"}  # fmt: skip
#: route → (how to send, parameters Twilio would sign, the URL it signs them for)
ROUTES: dict[str, tuple[Send, dict[str, str], str]] = {
    "/webhook/twilio/status": (_post("/webhook/twilio/status"),
                               callback(new_sid(), "completed"), "/webhook/twilio/status"),
    "/webhook/twilio/voice": (_post("/webhook/twilio/voice"), VOICE, "/webhook/twilio/voice"),
    "/webhook/twilio/recording": (_post("/webhook/twilio/recording"), RECORDING,
                                  "/webhook/twilio/recording"),
    "/webhook/twilio/amd": (_post("/webhook/twilio/amd"),
                            {"CallSid": "CA" + "9" * 32, "AnsweredBy": "machine_start"},
                            "/webhook/twilio/amd"),
    "/ws/media": (_upgrade, {}, "/ws/media"),
}  # fmt: skip


def _public_url(rule: str, query: str = "") -> str:
    base = PUBLIC.replace("https://", "wss://") if rule.startswith("/ws/") else PUBLIC
    return base + rule + (f"?{query}" if query else "")


def test_every_twilio_facing_route_has_a_case(calls_app: Flask, calls_settings: Settings) -> None:
    facing = {r.rule for r in calls_app.url_map.iter_rules()
              if r.rule.startswith(("/webhook/twilio/", "/ws/"))}  # fmt: skip
    media = media_server.create_app(calls_settings, broker=StubBroker(), database=None)
    facing |= {r.resource.canonical for r in media.router.routes()
               if r.resource is not None and r.resource.canonical.startswith("/ws/")}  # fmt: skip
    assert facing == set(ROUTES)


def _stored(db: Database) -> tuple[int, int]:
    with db.session() as session:
        calls = session.scalar(select(func.count()).select_from(Call)) or 0
        events = session.scalar(select(func.count()).select_from(CallEvent)) or 0
    return calls, events


@pytest.mark.parametrize("rule", sorted(ROUTES))
def test_unsigned_wrong_and_altered_requests_are_refused(
    rule: str, calls_client: FlaskClient, db: Database
) -> None:
    send, params, _ = ROUTES[rule]
    before = _stored(db)
    genuine = sign(AUTH_TOKEN, _public_url(rule), params)
    attempts = {
        "unsigned": send(calls_client, None, params, ""),
        "wrong": send(calls_client, WRONG, params, ""),
        "signed over other parameters": send(
            calls_client, sign(AUTH_TOKEN, _public_url(rule), {**params, "extra": "1"}), params, ""
        ),
        "altered query": send(calls_client, sign(AUTH_TOKEN, _public_url(rule, "job=1"), params),
                              params, "job=2"),
        "signed for another host": send(
            calls_client, sign(AUTH_TOKEN, _public_url(rule).replace(
                "switchboard.example.com", "calls:5050"), params), params, ""),
        "signed for another scheme": send(
            calls_client, sign(AUTH_TOKEN, _public_url(rule).replace("s://", "://", 1), params),
            params, ""),
    }  # fmt: skip
    if params:  # a genuine signature replayed with one parameter changed
        altered = {**params, "CallStatus": "busy"}
        attempts["replayed, altered parameters"] = send(calls_client, genuine, altered, "")
    for what, response in attempts.items():
        assert response.status_code == 403, (rule, what, response.status_code)
        assert response.get_json()["error"]["code"] == "invalid_signature", (rule, what)
    assert _stored(db) == before


@pytest.mark.parametrize("rule", ["/webhook/twilio/status", "/webhook/twilio/voice"])
def test_the_genuine_request_is_accepted(rule: str, calls_client: FlaskClient) -> None:
    send, params, _ = ROUTES[rule]
    response = send(calls_client, sign(AUTH_TOKEN, _public_url(rule), params), params, "")
    assert response.status_code in (200, 204), response.get_data()


def test_the_genuine_upgrade_is_accepted(calls_client: FlaskClient) -> None:
    answer = _upgrade(calls_client, sign(AUTH_TOKEN, _public_url("/ws/media"), {}), {}, "")
    assert answer.status_code == 101
