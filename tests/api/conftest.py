"""An api pointed at the Gmail simulator (a thread), and the browser's consent round trip."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from libs.common.db import Database
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from services.api.app import create_app
from tests.conftest import Tenant
from tests.support.gmail_sim import CLIENT_ID, CLIENT_SECRET, GmailSimulator, gmail_simulator_thread

#: Where Google sends the browser back (the SPA and /api behind one nginx).
PUBLIC = "https://switchboard.test"


@pytest.fixture
def gmail() -> Iterator[GmailSimulator]:
    with gmail_simulator_thread() as simulator:
        yield simulator


@pytest.fixture
def gmail_settings(settings: Settings, gmail: GmailSimulator) -> Settings:
    return settings.with_overrides(
        public_base_url=PUBLIC,
        google_client_id=CLIENT_ID,
        google_client_secret=CLIENT_SECRET,
        google_auth_uri=gmail.auth_uri,
        google_token_uri=gmail.token_uri,
        gmail_api_endpoint=gmail.base_url,
    )


@pytest.fixture
def gmail_app(gmail_settings: Settings, db: Database, redis_client: redis.Redis) -> Flask:
    return create_app(gmail_settings, broker=build_broker(gmail_settings, worker=False))


@pytest.fixture
def gmail_client(gmail_app: Flask) -> FlaskClient:
    return gmail_app.test_client()


def consent(client: FlaskClient, tenant: Tenant, login_hint: str | None = None) -> str:
    """What the browser does: ask for the consent URL, follow it to Google (the simulator, which
    approves at once) and stop at its redirect; the callback path and query Google chose."""
    query = {"login_hint": login_hint} if login_hint else {}
    connect = client.get("/api/gmail/connect", query_string=query, headers=tenant.headers)
    assert connect.status_code == 200, connect.json
    google = requests.get(connect.json["url"], allow_redirects=False, timeout=10)
    assert google.status_code == 302, google.text
    location = urlsplit(google.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == PUBLIC
    return f"{location.path}?{location.query}"


def callback_params(callback: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}


def connect_inbox(
    client: FlaskClient, tenant: Tenant, login_hint: str | None = None
) -> TestResponse:
    """The whole flow; the callback is the browser's request, so it carries no token."""
    return client.get(consent(client, tenant, login_hint))
