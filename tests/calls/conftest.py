import uuid
from collections.abc import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from libs.common.db import Database
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from libs.telephony.twilio_signature import sign
from services.calls.app import create_app
from tests.support import secret_scan

AUTH_TOKEN = secret_scan.remember("calls-test-auth-token")
PUBLIC = "https://switchboard.example.com"


@pytest.fixture
def calls_settings(settings: Settings) -> Settings:
    return settings.with_overrides(
        service_role="calls", twilio_auth_token=AUTH_TOKEN, public_base_url=PUBLIC
    )


@pytest.fixture
def calls_app(calls_settings: Settings, db: Database, redis_client: redis.Redis) -> Flask:
    return create_app(calls_settings, broker=build_broker(calls_settings, worker=False))


@pytest.fixture
def calls_client(calls_app: Flask) -> FlaskClient:
    return calls_app.test_client()


Post = Callable[..., TestResponse]


@pytest.fixture
def post_status(calls_client: FlaskClient) -> Post:
    """POST a status callback signed as Twilio signs it (public URL with its query)."""

    def post(params: dict[str, str], query: str = "", signature: str | None = None) -> TestResponse:
        path = "/webhook/twilio/status" + (f"?{query}" if query else "")
        if signature is None:
            signature = sign(AUTH_TOKEN, PUBLIC + path, params)
        # buffered: the response is closed, as a WSGI server closes it after writing it (the
        # route sends its follow-up messages then).
        return calls_client.post(
            path, data=params, headers={"X-Twilio-Signature": signature}, buffered=True
        )

    return post


def new_sid() -> str:
    return "CA" + uuid.uuid4().hex


def callback(sid: str, status: str, sequence: int = 0, **extra: str) -> dict[str, str]:
    params = {
        "AccountSid": "AC" + "1" * 32,
        "CallSid": sid,
        "CallStatus": status,
        "SequenceNumber": str(sequence),
        "To": "+14155550100",
        "From": "+15005550006",
        "Direction": "outbound-api",
    }
    params.update(extra)
    return params
