"""Event webhooks end to end: real api, worker and scheduler processes on PostgreSQL and Redis,
the business's receiver a real HTTP server. Issue 21, acceptance 2: a receiver failing three
times gets each event once after the retries, the signatures verify with the documented
recipe, and a worker SIGKILLed mid-delivery loses nothing."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
import standardwebhooks
from sqlalchemy import select

from libs.common.crypto import generate_key
from libs.common.db import Database
from libs.common.models import WebhookAttempt, WebhookDelivery
from tests.conftest import empty_database
from tests.support.stack import Business, Stack, campaign_stack, make_business
from tests.support.webhook_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 2
#: The claim's lease: two request timeouts and the margin (services/worker/webhooks/delivery.py).
LEASE_S = 2 * TIMEOUT_S + 10


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    empty_database(database)
    yield database
    empty_database(database)
    database.dispose()


@pytest.fixture(scope="module")
def stack(
    db: Database, database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        "ENCRYPTION_KEYS": generate_key(),
        "WEBHOOK_TIMEOUT_S": str(TIMEOUT_S),
        "WEBHOOK_RETRY_SCHEDULE_S": "0.5,1,1,2,2",
        "WEBHOOK_SWEEP_S": "0.5",
        "WORKER_BACKGROUND_POLL_MS": "100",
    }
    log_dir = tmp_path_factory.mktemp("webhooks")
    with campaign_stack(database_url, redis_url, log_dir, workers=1, extra_env=env) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


def register(stack: Stack, business: Business, url: str) -> str:
    body = {"url": url, "event_types": ["lead.created"]}
    answer = requests.post(f"{stack.api}/api/webhooks/endpoints", headers=business.headers,
                           json=body, timeout=10)  # fmt: skip
    assert answer.status_code == 201, answer.text
    return str(answer.json()["secret"])


def create_leads(stack: Stack, business: Business, first: int, count: int) -> None:
    leads = [{"phone": f"+1415555{first + i:04d}"} for i in range(count)]
    answer = requests.post(f"{stack.api}/api/leads/bulk", json={"leads": leads},
                           headers=business.headers, timeout=10)  # fmt: skip
    assert answer.json() == {"created": count, "updated": 0}, answer.text


def test_a_receiver_failing_three_times_gets_each_event_once(
    stack: Stack, db: Database, receiver: Receiver
) -> None:
    business = make_business(db, "Hooked Bakery")
    receiver.script.fail_first = 3
    secret = register(stack, business, receiver.url)
    create_leads(stack, business, 4000, 3)
    receiver.wait_for(lambda r: len(r.accepted()) == 3, timeout_s=60, what="three events")
    time.sleep(3)  # any stray retry would arrive by now
    accepted = [r.event_id for r in receiver.accepted()]
    assert len(accepted) == len(set(accepted)) == 3, receiver.summary()
    verifier = standardwebhooks.Webhook(secret)  # the documented recipe's reference library
    for event_id in accepted:
        tries = receiver.received(event_id)
        assert [r.status for r in tries] == [500, 500, 500, 200]
        for r in tries:
            assert verifier.verify(r.body, r.headers)["id"] == event_id
    with db.session() as session:
        done = session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.business_id == business.id)).all()  # fmt: skip
        assert {(d.status, d.attempt_count) for d in done} == {("succeeded", 4)}


def test_a_worker_killed_mid_delivery_loses_nothing(
    stack: Stack, db: Database, receiver: Receiver
) -> None:
    business = make_business(db, "Killed Kitchen")
    receiver.script.delay_s = 1.5  # under the timeout: the answer would have come
    secret = register(stack, business, receiver.url)
    create_leads(stack, business, 5000, 5)
    assert receiver.arrived.wait(30), "no delivery reached the receiver"
    stack.kill_worker(0)  # SIGKILL, with requests in flight and messages not yet taken
    killed_at = time.monotonic()
    receiver.script.delay_s = 0
    stack.start_worker(0)
    events = _business_events(db, business)
    assert len(events) == 5
    # The receiver already took what was in flight (it answered after the worker died): the
    # deliveries are done when the worker has recorded them, after the lease and a new attempt.
    deadline = time.monotonic() + LEASE_S + 60
    while time.monotonic() < deadline:
        with db.session() as session:
            statuses = session.scalars(select(WebhookDelivery.status).where(
                WebhookDelivery.business_id == business.id)).all()  # fmt: skip
        if set(statuses) == {"succeeded"}:
            break
        time.sleep(0.25)
    recovered_s = time.monotonic() - killed_at
    assert statuses and set(statuses) == {"succeeded"}, statuses
    verifier = standardwebhooks.Webhook(secret)
    for request in receiver.received():
        if request.event_id in events:
            verifier.verify(request.body, request.headers)
    with db.session() as session:
        outcomes = session.scalars(select(WebhookAttempt.outcome).join(
            WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id).where(
            WebhookDelivery.business_id == business.id)).all()  # fmt: skip
    # The attempt in flight when the worker died is in the log as abandoned, not lost.
    assert "abandoned" in outcomes and "in_flight" not in outcomes, outcomes
    # A receiver that keys on webhook-id takes each event once (at least once, same id).
    taken = {r.event_id for r in receiver.accepted() if r.event_id in events}
    assert taken == events
    log = (stack.log_dir / "worker0.log").read_text()
    assert not re.search(r"whsec_[A-Za-z0-9+/=]{20,}", log)  # secrets never logged
    print(f"recovered {len(events)} deliveries {recovered_s:.1f} s after the SIGKILL")


def _business_events(db: Database, business: Business) -> set[str]:
    from libs.common.models import WebhookEvent

    with db.session() as session:
        return set(session.scalars(select(WebhookEvent.public_id).where(
            WebhookEvent.business_id == business.id)))  # fmt: skip
