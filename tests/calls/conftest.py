import uuid
from collections.abc import Callable, Iterator

import dramatiq
import pytest
import redis
from dramatiq import Worker
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from libs.common.db import Database
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from libs.telephony.twilio_signature import sign
from services.calls.app import create_app
from services.worker.actors import register_actors
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


#: The messages the calls service sends; the worker's actor for each is run by ``run_worker``.
STATUS_CHANGED = "calls.status_changed"

RunWorker = Callable[[], list[dramatiq.Message]]  # type: ignore[type-arg]


@pytest.fixture
def run_worker(
    calls_settings: Settings, db: Database, redis_client: redis.Redis
) -> Iterator[RunWorker]:
    """Take the ``calls.status_changed`` messages the calls service left in Redis and run the
    worker's actor on them (a Worker on a StubBroker, as a worker process would); returns
    what the actor sent on (its own follow-ups, left on the stub broker's queues)."""
    settings = calls_settings.with_overrides(service_role="worker")
    broker = build_broker(settings, worker=True, stub=True)
    register_actors(broker)
    worker = Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    sent: list[dramatiq.Message] = []  # type: ignore[type-arg]
    enqueue = broker.enqueue

    def keep(message: dramatiq.Message, *, delay: int | None = None) -> dramatiq.Message:  # type: ignore[type-arg]  # fmt: skip
        """The actor's own follow-ups are recorded, not run (they are other tests' subject)."""
        if message.actor_name == STATUS_CHANGED:
            return enqueue(message, delay=delay)
        sent.append(message)
        return message

    setattr(broker, "enqueue", keep)  # noqa: B010

    def run() -> list[dramatiq.Message]:  # type: ignore[type-arg]
        sent.clear()
        for message_id in redis_client.lrange("dramatiq:high", 0, -1):
            raw = redis_client.hget("dramatiq:high.msgs", message_id)
            message = dramatiq.Message.decode(bytes(raw))  # type: ignore[arg-type]
            if message.actor_name != STATUS_CHANGED:
                continue
            redis_client.lrem("dramatiq:high", 0, message_id)  # type: ignore[arg-type]
            redis_client.hdel("dramatiq:high.msgs", message_id)
            broker.enqueue(message)
        broker.join("high", fail_fast=True)  # type: ignore[call-arg]
        worker.join()
        return list(sent)

    yield run
    worker.stop()


@pytest.fixture
def post_only(calls_client: FlaskClient) -> Post:
    """POST a status callback signed as Twilio signs it (public URL with its query)."""

    def post(params: dict[str, str], query: str = "", signature: str | None = None) -> TestResponse:
        path = "/webhook/twilio/status" + (f"?{query}" if query else "")
        if signature is None:
            signature = sign(AUTH_TOKEN, PUBLIC + path, params)
        # buffered: the response is closed, as a WSGI server closes it after writing it (the
        # route sends its message then).
        return calls_client.post(
            path, data=params, headers={"X-Twilio-Signature": signature}, buffered=True
        )

    return post


@pytest.fixture
def post_status(post_only: Post, run_worker: RunWorker) -> Post:
    """``post_only``, then the worker's ``calls.status_changed`` on what the calls service
    sent: the whole path of a callback."""

    def post(params: dict[str, str], query: str = "", signature: str | None = None) -> TestResponse:
        response = post_only(params, query, signature)
        run_worker()
        return response

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
