"""Fixtures shared by the end-to-end tests of inbound calls."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from libs.common.db import Database
from libs.common.models import Business, PhoneNumber
from tests.support.processes import gunicorn_argv, running, service_env, switchboard_argv
from tests.support.services import free_port
from tests.support.twilio_sim import AUTH_TOKEN

BUSINESS_NUMBER = "+14155550000"


@dataclass
class CallsService:
    url: str
    public: str
    business_id: int
    recordings: Path
    log: Path
    #: The media server: its stream URL (what the TwiML names and Twilio signs) and its log.
    stream_url: str = ""
    media_log: Path | None = None
    env: dict[str, str] | None = None


@pytest.fixture
def calls_env() -> dict[str, str]:
    """Extra environment for the calls service (a test module overrides it)."""
    return {}


@pytest.fixture
def calls_service(
    database_url: str,
    redis_url: str,
    broker_url: str | None,
    redis_client: object,
    db: Database,
    tmp_path: Path,
    calls_env: dict[str, str],
) -> Iterator[CallsService]:
    port, media_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    stream_url = f"ws://127.0.0.1:{media_port}/ws/media"
    with db.session() as session:
        business = Business(name="Inbound Co", timezone="UTC")
        session.add(business)
        session.flush()
        session.add(PhoneNumber(business_id=business.id, number_e164=BUSINESS_NUMBER))
        session.commit()
        business_id = business.id
    extra_env = calls_env
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        **({"BROKER_URL": broker_url} if broker_url else {}),
        SWITCHBOARD_VAR_DIR=str(tmp_path),
        PUBLIC_BASE_URL=url,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        CALLS_BIND=f"127.0.0.1:{port}",
        CALLS_MEDIA_BIND=f"127.0.0.1:{media_port}",
        MEDIA_STREAM_URL=stream_url,
        SERVICE_ROLE="calls",
        **extra_env,
    )
    with ExitStack() as stack:
        stack.enter_context(
            running(gunicorn_argv("calls"), env, tmp_path / "calls.log", f"{url}/readyz")
        )
        stack.enter_context(
            running(gunicorn_argv("calls/media"), env, tmp_path / "media.log",
                    f"http://127.0.0.1:{media_port}/readyz")
        )  # fmt: skip
        stack.enter_context(
            running([*switchboard_argv("worker"), "--processes", "1", "--threads", "2"],
                    {**env, "SERVICE_ROLE": "worker"}, tmp_path / "worker.log")
        )  # fmt: skip
        yield CallsService(url, url, business_id, tmp_path / "recordings", tmp_path / "calls.log",
                           stream_url, tmp_path / "media.log", env)  # fmt: skip
