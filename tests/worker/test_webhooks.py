"""webhooks.deliver and webhooks.sweep against real HTTP receivers (the business's side):
signatures verify with the documented recipe and the reference library, a receiver that fails
three times gets each event once after the retries, redirects are not followed, slow receivers
time out, private addresses are refused in production, rotated secrets sign side by side, an
endpoint failing for days is disabled, and nothing depends on a message surviving."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import standardwebhooks
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select, update

from libs.campaigns.leads import LeadInput, upsert_leads
from libs.common.contracts import WEBHOOKS_SWEEP
from libs.common.crypto import generate_key, secret_box
from libs.common.db import Database
from libs.common.models import (
    AttemptOutcome,
    Business,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from libs.common.settings import Settings
from libs.events import catalogue, endpoints, signing
from services.worker.webhooks import delivery as delivery_module
from tests.support.webhook_receiver import Receiver, Script, webhook_receiver

SCHEDULE = (0.2, 0.3, 0.4, 0.5)
#: Phone numbers for new leads: every call of create_leads makes new ones.
_numbers = itertools.count(3000)


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    return settings.with_overrides(
        service_role="worker",
        encryption_keys=generate_key(),
        webhook_retry_schedule_s=SCHEDULE,
        webhook_timeout_s=1.0,
        webhook_sweep_s=0.2,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


def make_endpoint(db: Database, settings: Settings, url: str, types: list[str] | None = None,
                  business_id: int | None = None) -> tuple[int, int, str]:  # fmt: skip
    """(business id, endpoint id, secret)."""
    with db.session() as session:
        if business_id is None:
            business = Business(name="Hooks Inc", timezone="UTC")
            session.add(business)
            session.flush()
            business_id = business.id
        endpoint, secret = endpoints.create(
            session, secret_box(settings), business_id, url, types or ["*"], "test receiver"
        )
        session.commit()
        return business_id, endpoint.id, secret


def create_leads(db: Database, broker: StubBroker, business_id: int, count: int) -> None:
    """The real producer: new leads, each a lead.created event."""
    inputs = [LeadInput(f"+1415555{next(_numbers):04d}", "Lead") for _ in range(count)]
    with db.session() as session:
        upsert_leads(session, business_id, inputs, "api", broker)
        session.commit()


def run_all(broker: StubBroker, worker: Worker) -> None:
    broker.join("webhooks", fail_fast=True)
    worker.join()


def deliveries(db: Database) -> list[WebhookDelivery]:
    with db.session() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def attempts(db: Database, delivery_id: int) -> list[WebhookAttempt]:
    with db.session() as session:
        query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
        return list(session.scalars(query.order_by(WebhookAttempt.number)))


def recorded(db: Database, delivery_id: int, timeout_s: float = 10) -> WebhookAttempt:
    """The delivery's first attempt, once the worker has recorded its answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tried = attempts(db, delivery_id)
        if tried and tried[0].outcome != "in_flight":
            return tried[0]
        time.sleep(0.05)
    raise AssertionError(f"delivery {delivery_id}: no attempt recorded")


def test_a_new_lead_reaches_the_endpoint_signed_with_its_event_id(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    business_id, _, secret = make_endpoint(db, worker_settings, receiver.url, ["lead.created"])
    create_leads(db, stub_broker, business_id, 1)
    run_all(stub_broker, stub_worker)
    [request] = receiver.received()
    # The documented recipe (libs/events/signing.py) and the reference verifier.
    signing.verify(secret, request.headers, request.body, now=time.time())
    payload = standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    assert request.headers["webhook-id"] == payload["id"] and payload["id"].startswith("evt_")
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/hooks/switchboard"
    kind = catalogue.EVENT_TYPES["lead.created"]
    jsonschema.validate(payload, catalogue.envelope_schema(kind))
    assert payload["type"] == "lead.created" and payload["data"]["phone"].startswith("+1415555")
    [done] = deliveries(db)
    assert done.status == "succeeded" and done.attempt_count == 1 and done.next_attempt_at is None
    [attempt] = attempts(db, done.id)
    assert attempt.outcome == "succeeded" and attempt.http_status == 200
    assert attempt.latency_ms is not None and attempt.response_snippet == '{"ok": true}'
    # A tampered body, or another secret, does not verify.
    with pytest.raises(signing.InvalidSignature):
        signing.verify(secret, request.headers, request.body + b" ", now=time.time())
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(signing.generate_secret()).verify(request.body, request.headers)


def test_a_receiver_failing_three_times_gets_each_event_once_after_retries(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    receiver.script.fail_first = 3
    business_id, _, secret = make_endpoint(db, worker_settings, receiver.url)
    create_leads(db, stub_broker, business_id, 3)
    receiver.wait_for(lambda r: len(r.accepted()) == 3, what="three accepted events")
    time.sleep(sum(SCHEDULE))  # long enough for any stray retry to show
    run_all(stub_broker, stub_worker)
    accepted = [r.event_id for r in receiver.accepted()]
    assert sorted(accepted) == sorted(set(accepted)) and len(accepted) == 3  # each once
    for event_id in accepted:
        tries = receiver.received(event_id)
        assert [r.status for r in tries] == [500, 500, 500, 200]
        # The idempotency key is the same on every attempt; each attempt is signed anew.
        assert {r.headers["webhook-id"] for r in tries} == {event_id}
        for r in tries:
            signing.verify(secret, r.headers, r.body, now=time.time())
        gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
        assert all(gap >= wait * 0.9 for gap, wait in zip(gaps, SCHEDULE, strict=False)), gaps
    for done in deliveries(db):
        assert done.status == "succeeded" and done.attempt_count == 4 and done.retries_used == 3
        assert [a.outcome for a in attempts(db, done.id)] == ["http_error"] * 3 + ["succeeded"]
    with db.session() as session:
        endpoint = session.scalars(select(WebhookEndpoint)).one()
        assert endpoint.failing_since is None and endpoint.last_success_at is not None


def test_retries_run_out_and_the_delivery_fails(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    receiver.script.status = 503
    business_id, _, _ = make_endpoint(db, worker_settings, receiver.url)
    create_leads(db, stub_broker, business_id, 1)
    receiver.wait_for(lambda r: len(r.received()) == 1 + len(SCHEDULE), what="every attempt")
    deadline = time.monotonic() + 10
    while deliveries(db)[0].status == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    [failed] = deliveries(db)
    assert failed.status == "failed" and failed.last_http_status == 503
    assert failed.last_error == "HTTP 503" and failed.next_attempt_at is None
    time.sleep(0.5)
    assert len(receiver.received()) == 1 + len(SCHEDULE)  # nothing after the last retry


def test_redirects_are_not_followed_and_slow_receivers_time_out(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    receiver.script.status = 302
    receiver.script.extra_headers = {"Location": "http://169.254.169.254/latest/meta-data/"}
    business_id, _, _ = make_endpoint(db, worker_settings, receiver.url)
    create_leads(db, stub_broker, business_id, 1)
    receiver.wait_for(lambda r: len(r.received()) == 1, what="the first attempt")
    first = recorded(db, deliveries(db)[0].id)
    assert first.outcome == "http_error" and first.http_status == 302
    assert first.error == ("HTTP 302: redirects are not followed "
                           "(Location: http://169.254.169.254/latest/meta-data/)")  # fmt: skip

    receiver.script = Script(delay_s=2.5)  # beyond WEBHOOK_TIMEOUT_S=1
    create_leads(db, stub_broker, business_id, 1)
    second = [recorded(db, deliveries(db)[1].id)]
    assert second[0].outcome == "timeout" and second[0].error == "no answer within 1 s"
    assert 900 <= (second[0].latency_ms or 0) < 2500


@pytest.fixture
def production_worker(worker_settings: Settings) -> Settings:
    return worker_settings.with_overrides(app_env="production")


def test_a_private_address_is_refused_at_delivery_in_production(
    db: Database, production_worker: Settings, receiver: Receiver
) -> None:
    """An endpoint stored while its name pointed elsewhere (or before the setting changed):
    the check at delivery refuses it before connecting. Production settings, no override."""
    from services.worker.webhooks import sender

    assert production_worker.webhooks_allow_private is False
    body, headers = b"{}", signing.headers([signing.generate_secret()], "evt_x", 1, b"{}")
    answer = sender.post(receiver.url, body, headers, timeout_s=1, allow_private=False)
    assert answer.outcome is AttemptOutcome.REFUSED
    assert "127.0.0.1 is a loopback address" in (answer.error or "")
    # A name that resolves to a private address once the check passed elsewhere (rebinding):
    # the address checked is the one connected to, so it is refused too.
    rebound = sender.post("http://hooks.example.com/x", body, headers, timeout_s=1,
                          allow_private=False, resolver=lambda _h, _p: ["10.1.2.3"])  # fmt: skip
    assert rebound.outcome is AttemptOutcome.REFUSED and "10.1.2.3" in (rebound.error or "")
    assert receiver.received() == []


def test_delivery_in_production_records_a_refused_attempt(
    db: Database, production_worker: Settings, receiver: Receiver
) -> None:
    """The actor itself, with production settings: nothing reaches a loopback receiver, each
    attempt says why."""
    from dramatiq.brokers.stub import StubBroker as Stub

    from libs.queueops.broker import build_broker
    from services.worker.actors import register_actors

    broker = build_broker(production_worker, worker=True, stub=True)
    register_actors(broker)
    assert isinstance(broker, Stub)
    worker = Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        business_id, _, _ = make_endpoint(db, production_worker, receiver.url)
        create_leads(db, broker, business_id, 1)
        broker.join("webhooks", fail_fast=True)
        worker.join()
    finally:
        worker.stop()
    [refused] = deliveries(db)
    tried = attempts(db, refused.id)
    assert len(tried) == 1 + len(SCHEDULE)  # retried on schedule: DNS may point elsewhere later
    assert {a.outcome for a in tried} == {"refused"}
    assert "127.0.0.1 is a loopback address" in (tried[0].error or "")
    assert refused.status == "failed" and receiver.received() == []


def test_a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    business_id, endpoint_id, old = make_endpoint(db, worker_settings, receiver.url)
    box = secret_box(worker_settings)
    with db.session() as session:
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
        new = endpoints.rotate_secret(endpoint, box, utcnow(), grace_s=3600)
        session.commit()
    create_leads(db, stub_broker, business_id, 1)
    run_all(stub_broker, stub_worker)
    [during] = receiver.received()
    assert len(during.headers["webhook-signature"].split()) == 2
    for secret in (new, old):  # a receiver still on the old secret, and one already switched
        standardwebhooks.Webhook(secret).verify(during.body, during.headers)
    with db.session() as session:  # rotate again, at once: the old secrets stop signing
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
        newest = endpoints.rotate_secret(endpoint, box, utcnow(), grace_s=0)
        session.commit()
    create_leads(db, stub_broker, business_id, 2)
    run_all(stub_broker, stub_worker)
    after = receiver.received()[-1]
    assert len(after.headers["webhook-signature"].split()) == 1
    standardwebhooks.Webhook(newest).verify(after.body, after.headers)
    for secret in (new, old):
        with pytest.raises(signing.InvalidSignature):
            signing.verify(secret, after.headers, after.body, now=time.time())


def test_an_endpoint_failing_for_days_is_disabled_with_a_notice(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    receiver.script.status = 500
    business_id, endpoint_id, _ = make_endpoint(db, worker_settings, receiver.url)
    with db.session() as session:  # failing for six days already (WEBHOOK_DISABLE_AFTER_S: 5)
        session.execute(update(WebhookEndpoint).values(failing_since=utcnow() - timedelta(days=6)))
        session.commit()
    with caplog.at_level(logging.WARNING):
        create_leads(db, stub_broker, business_id, 2)
        run_all(stub_broker, stub_worker)
    with db.session() as session:
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
    assert endpoint.enabled is False and endpoint.disabled_at is not None
    assert "every delivery attempt since" in (endpoint.disabled_reason or "")
    assert {d.status for d in deliveries(db)} == {"failed"}  # nothing left pending for it
    assert f"webhook endpoint {endpoint_id} disabled" in caplog.text
    sent = len(receiver.received())
    create_leads(db, stub_broker, business_id, 1)  # a disabled endpoint gets no new events
    run_all(stub_broker, stub_worker)
    assert len(receiver.received()) == sent and len(deliveries(db)) == 2
    # Enabled again and redelivered: the failed ones arrive once the receiver is fixed.
    receiver.script.status = 200
    with db.session() as session:
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
        endpoints.set_enabled(session, endpoint, True)
        count = endpoints.redeliver_failed(session, endpoint, utcnow(), len(SCHEDULE), stub_broker)
        session.commit()
    assert count == 2
    run_all(stub_broker, stub_worker)
    assert {d.status for d in deliveries(db)} == {"succeeded"}
    with db.session() as session:
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
    assert endpoint.enabled and endpoint.disabled_reason is None and endpoint.failing_since is None


def test_a_manual_redelivery_is_one_attempt_with_the_event_as_it_was(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    business_id, endpoint_id, _ = make_endpoint(db, worker_settings, receiver.url)
    create_leads(db, stub_broker, business_id, 1)
    run_all(stub_broker, stub_worker)
    [first] = receiver.received()
    receiver.script.status = 500
    with db.session() as session:
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
        done = session.scalars(select(WebhookDelivery)).one()
        endpoints.redeliver(session, endpoint, done, utcnow(), len(SCHEDULE), stub_broker)
        session.commit()
    run_all(stub_broker, stub_worker)
    time.sleep(sum(SCHEDULE))
    run_all(stub_broker, stub_worker)
    second = receiver.received()[1:]
    assert len(second) == 1 and second[0].body == first.body  # once, not retried
    assert second[0].event_id == first.event_id
    [failed] = deliveries(db)
    assert failed.status == "failed" and failed.attempt_count == 2


def test_only_enabled_subscribed_endpoints_get_an_event(
    db: Database, stub_broker: StubBroker, worker_settings: Settings
) -> None:
    business_id, _, _ = make_endpoint(db, worker_settings, "http://a.test/", ["receipt.synced"])
    _, every, _ = make_endpoint(db, worker_settings, "http://b.test/", ["*"], business_id)
    _, off, _ = make_endpoint(db, worker_settings, "http://c.test/", ["lead.created"], business_id)
    other, _, _ = make_endpoint(db, worker_settings, "http://d.test/", ["*"])
    with db.session() as session:
        session.get_one(WebhookEndpoint, off).enabled = False
        session.commit()
    create_leads(db, stub_broker, business_id, 2)
    assert [d.endpoint_id for d in deliveries(db)] == [every, every]
    with db.session() as session:
        assert {e.business_id for e in session.scalars(select(WebhookEvent))} == {business_id}
    create_leads(db, stub_broker, other, 1)  # nothing subscribes: no event is stored
    with db.session() as session:
        session.execute(update(WebhookEndpoint).values(enabled=False))
        session.commit()
    create_leads(db, stub_broker, business_id, 1)
    with db.session() as session:
        assert len(session.scalars(select(WebhookEvent)).all()) == 3


def test_the_sweep_sends_a_delivery_whose_message_was_lost(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    business_id, _, _ = make_endpoint(db, worker_settings, receiver.url)
    stub_worker.pause()
    create_leads(db, stub_broker, business_id, 2)
    stub_broker.flush_all()  # the broker lost the messages (a Redis flushed, say)
    stub_worker.resume()
    WEBHOOKS_SWEEP.send(stub_broker, period_start=0)  # too early: not due for the grace yet
    stub_broker.join("maintenance", fail_fast=True)
    run_all(stub_broker, stub_worker)
    assert receiver.received() == []
    time.sleep(3 * worker_settings.webhook_sweep_s + 0.1)
    WEBHOOKS_SWEEP.send(stub_broker, period_start=1)
    stub_broker.join("maintenance", fail_fast=True)
    run_all(stub_broker, stub_worker)
    assert len(receiver.accepted()) == 2
    assert {d.status for d in deliveries(db)} == {"succeeded"}


def test_an_attempt_whose_worker_died_is_closed_and_sent_again(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    """The state a SIGKILL leaves (tests/e2e/test_webhooks.py kills a real worker): the claim
    committed, the answer never recorded. After the lease the sweep closes the attempt and the
    delivery goes out again."""
    business_id, _, _ = make_endpoint(db, worker_settings, receiver.url)
    stub_worker.pause()
    create_leads(db, stub_broker, business_id, 1)
    stub_broker.flush_all()
    [pending] = deliveries(db)
    with db.session() as session:
        assert delivery_module.claim(session, pending.id, utcnow(), worker_settings) is not None
        session.commit()
        # ... and the worker dies here. The lease, then the sweep's grace, pass:
        back = utcnow() - timedelta(seconds=delivery_module.lease_s(worker_settings) + 5)
        session.execute(update(WebhookAttempt).values(started_at=back))
        session.execute(update(WebhookDelivery).values(next_attempt_at=back))
        session.commit()
    stub_worker.resume()
    WEBHOOKS_SWEEP.send(stub_broker, period_start=0)
    stub_broker.join("maintenance", fail_fast=True)
    run_all(stub_broker, stub_worker)
    [done] = deliveries(db)
    assert done.status == "succeeded" and len(receiver.accepted()) == 1
    assert [a.outcome for a in attempts(db, done.id)] == ["abandoned", "succeeded"]


def test_events_past_their_retention_are_deleted_with_their_log(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    business_id, _, _ = make_endpoint(db, worker_settings, receiver.url)
    create_leads(db, stub_broker, business_id, 2)
    run_all(stub_broker, stub_worker)
    with db.session() as session:
        old = session.scalars(select(WebhookEvent.id).order_by(WebhookEvent.id)).first()
        session.execute(update(WebhookEvent).where(WebhookEvent.id == old).values(
            created_at=utcnow() - timedelta(days=31)))  # fmt: skip
        session.commit()
    WEBHOOKS_SWEEP.send(stub_broker, period_start=0)
    stub_broker.join("maintenance", fail_fast=True)
    stub_worker.join()
    with db.session() as session:
        assert old not in session.scalars(select(WebhookEvent.id)).all()
        assert len(session.scalars(select(WebhookDelivery)).all()) == 1
        assert len(session.scalars(select(WebhookAttempt)).all()) == 1


def test_every_catalogue_schema_is_valid_json_schema() -> None:
    for kind in catalogue.EVENT_TYPES.values():
        jsonschema.Draft202012Validator.check_schema(catalogue.envelope_schema(kind))
    assert set(catalogue.EVENT_TYPES) >= {"call.completed", "run.completed", "lead.created",
                                          "receipt.synced"}  # fmt: skip


def _readme_verifier() -> Any:
    """The ``verify`` function of the README's "Verifying a delivery" snippet, as printed."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Verifying a delivery", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["verify"]


def test_the_readme_snippet_verifies_a_real_delivery(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    verify = _readme_verifier()
    business_id, endpoint_id, secret = make_endpoint(db, worker_settings, receiver.url)
    with db.session() as session:  # mid-rotation: two signatures in the header
        endpoint = session.get_one(WebhookEndpoint, endpoint_id)
        new = endpoints.rotate_secret(endpoint, secret_box(worker_settings), utcnow(), 3600)
        session.commit()
    create_leads(db, stub_broker, business_id, 1)
    run_all(stub_broker, stub_worker)
    [request] = receiver.received()
    assert verify(new, request.headers, request.body) is True
    assert verify(secret, request.headers, request.body) is True  # the old one, in its grace
    assert verify(signing.generate_secret(), request.headers, request.body) is False
    assert verify(new, request.headers, request.body.replace(b"Lead", b"Lean")) is False
    stale = {**request.headers, "webhook-timestamp": str(int(time.time()) - 301)}
    assert verify(new, stale, request.body) is False


def test_an_event_exists_only_if_its_change_committed(
    db: Database, stub_broker: StubBroker, worker_settings: Settings
) -> None:
    business_id, _, _ = make_endpoint(db, worker_settings, "http://a.test/")
    with db.session() as session:
        upsert_leads(session, business_id, [LeadInput("+14155557777")], "api", stub_broker)
        session.rollback()
    with db.session() as session:
        assert session.scalars(select(WebhookEvent)).all() == []
    assert stub_broker.queues["webhooks"].qsize() == 0  # the outbox dropped the messages


class _DownBroker(StubBroker):
    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        raise ConnectionError("the broker is down")


def test_a_broker_down_at_the_commit_loses_no_event(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The lead is created (no error for its producer); the delivery waits in its row and the
    sweep sends it."""
    business_id, _, _ = make_endpoint(db, worker_settings, receiver.url)
    down = _DownBroker()
    with db.session() as session, caplog.at_level(logging.WARNING):
        upsert_leads(session, business_id, [LeadInput("+14155557778")], "api", down)
        session.commit()
    assert "webhooks.deliver not sent after commit" in caplog.text
    [pending] = deliveries(db)
    assert pending.status == "pending" and receiver.received() == []
    time.sleep(3 * worker_settings.webhook_sweep_s + 0.1)
    WEBHOOKS_SWEEP.send(stub_broker, period_start=0)
    stub_broker.join("maintenance", fail_fast=True)
    run_all(stub_broker, stub_worker)
    assert len(receiver.accepted()) == 1 and deliveries(db)[0].status == "succeeded"


def test_a_binary_answer_is_logged_and_a_deleted_endpoint_ends_its_attempt_quietly(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings,
    receiver: Receiver,
) -> None:  # fmt: skip
    receiver.script.answer = b"\x00\x01\xffbinary\x00"
    business_id, endpoint_id, _ = make_endpoint(db, worker_settings, receiver.url)
    create_leads(db, stub_broker, business_id, 1)
    run_all(stub_broker, stub_worker)
    [attempt] = attempts(db, deliveries(db)[0].id)
    assert attempt.outcome == "succeeded" and attempt.response_snippet is not None
    assert "binary" in attempt.response_snippet and "\x00" not in attempt.response_snippet

    from services.worker.webhooks.sender import Answer

    create_leads(db, stub_broker, business_id, 1)
    stub_broker.flush_all()
    pending = deliveries(db)[1]
    with db.session() as session:
        claimed = delivery_module.claim(session, pending.id, utcnow(), worker_settings)
        session.commit()
    assert claimed is not None
    with db.session() as session:  # deleted while the request was out
        session.delete(session.get_one(WebhookEndpoint, endpoint_id))
        session.commit()
    with db.session() as session:
        answer = Answer(AttemptOutcome.SUCCEEDED, 0.01, 200, "ok")
        assert delivery_module.record(session, claimed, answer, utcnow(), worker_settings) is None
        session.commit()
    assert deliveries(db) == []
