"""/api/webhooks: endpoints (secret shown once, stored encrypted, rotatable), the SSRF guard in
production, the delivery log and redelivery; events emitted by the API's own lead creation and
their payloads equal to what the API shows for the same resource."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update

from libs.campaigns.lifecycle import status as lifecycle
from libs.common.db import Database
from libs.common.models import (
    Call,
    CallJob,
    CallJobStatus,
    Lead,
    Receipt,
    ReceiptAttachment,
    Run,
    RunStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from libs.common.settings import Settings
from libs.events import catalogue
from libs.queueops.broker import build_broker
from services.api.app import create_app
from tests.conftest import Tenant
from tests.receipt_factories import make_attachment, make_receipts

URL = "https://hooks.example.com/switchboard"


def _create(client: FlaskClient, tenant: Tenant, **fields: Any) -> Any:
    body = {"url": URL, "event_types": ["*"], **fields}
    return client.post("/api/webhooks/endpoints", json=body, headers=tenant.headers)


def _events(db: Database) -> list[WebhookEvent]:
    with db.session() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def test_an_endpoint_s_secret_is_shown_once_and_stored_encrypted(
    client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    created = _create(client, tenant_a, description="CRM", event_types=["lead.created"])
    assert created.status_code == 201, created.json
    secret = created.json["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created.json["event_types"] == ["lead.created"] and created.json["enabled"] is True
    endpoint_id = created.json["id"]
    shown = client.get(f"/api/webhooks/endpoints/{endpoint_id}", headers=tenant_a.headers)
    listed = client.get("/api/webhooks/endpoints", headers=tenant_a.headers)
    for answer in (shown, listed):
        assert answer.status_code == 200 and secret not in answer.get_data(as_text=True)
        assert "secret" not in (answer.json if "id" in answer.json else answer.json["items"][0])
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT secret_encrypted FROM webhook_endpoints")).scalar_one()
    assert secret not in stored and secret.removeprefix("whsec_") not in stored


def test_rotating_keeps_the_old_secret_for_its_grace(client: FlaskClient, tenant_a: Tenant) -> None:
    endpoint = _create(client, tenant_a).json
    path = f"/api/webhooks/endpoints/{endpoint['id']}/rotate-secret"
    rotated = client.post(path, json={"grace_s": 600}, headers=tenant_a.headers)
    assert rotated.status_code == 200 and rotated.json["secret"] != endpoint["secret"]
    assert rotated.json["previous_secret_expires_at"] is not None
    default = client.post(path, headers=tenant_a.headers)  # no body: 24 h of grace
    assert default.status_code == 200 and default.json["previous_secret_expires_at"]
    at_once = client.post(path, json={"grace_s": 0}, headers=tenant_a.headers)
    assert at_once.json["previous_secret_expires_at"] is None
    too_long = client.post(path, json={"grace_s": 8 * 86400}, headers=tenant_a.headers)
    assert too_long.status_code == 400 and "grace_s" in too_long.json["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": URL}, "event_types is required"),
        ({"url": URL, "event_types": []}, "event_types must be an array of at least 1 items"),
        ({"url": URL, "event_types": ["lead.deleted"]}, "event_types[0] must be one of"),
        ({"url": "ftp://x.test/", "event_types": ["*"]}, "https:// or http://"),
        ({"url": URL, "event_types": ["*"], "secret": "mine"}, "unknown fields: secret"),
        ({"url": 5, "event_types": ["*"]}, "url must be a string"),
        ({"url": URL, "event_types": ["*"], "enabled": "yes"}, "enabled must be true or false"),
    ],
)
def test_bad_endpoints_are_refused(
    client: FlaskClient, tenant_a: Tenant, body: dict[str, Any], message: str
) -> None:
    answer = client.post("/api/webhooks/endpoints", json=body, headers=tenant_a.headers)
    assert answer.status_code == 400 and message in answer.json["error"]["message"], answer.json


@pytest.fixture
def production_client(settings: Settings, db: Database, redis_client: redis.Redis) -> FlaskClient:
    production = settings.with_overrides(app_env="production")
    assert production.webhooks_allow_private is False
    app: Flask = create_app(production, broker=build_broker(production, worker=False))
    return app.test_client()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook", "http://localhost/hook", "https://10.0.0.8/",
        "https://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/", "http://192.168.1.20:9000/", "http://2130706433/",
    ],
)  # fmt: skip
def test_private_addresses_are_refused_in_production(
    production_client: FlaskClient, db: Database, tenant_a: Tenant, url: str
) -> None:
    answer = production_client.post("/api/webhooks/endpoints", headers=tenant_a.headers,
                                    json={"url": url, "event_types": ["*"]})  # fmt: skip
    assert answer.status_code == 400, answer.json
    assert answer.json["error"]["code"] == "url_not_allowed"
    assert "deliveries may not go there" in answer.json["error"]["message"]
    with db.session() as session:
        assert session.scalars(select(WebhookEndpoint)).all() == []


def test_changing_the_url_to_a_private_one_is_refused_in_production(
    production_client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    with db.session() as session:  # stored while it pointed elsewhere
        session.add(WebhookEndpoint(business_id=tenant_a.business_id, url="https://8.8.8.8/",
                                    event_types=["*"], secret_encrypted="x"))  # fmt: skip
        session.commit()
        endpoint_id = session.scalars(select(WebhookEndpoint.id)).one()
    answer = production_client.patch(
        f"/api/webhooks/endpoints/{endpoint_id}",
        json={"url": "http://10.9.9.9/"},
        headers=tenant_a.headers,
    )
    assert answer.status_code == 400 and answer.json["error"]["code"] == "url_not_allowed"


def test_a_business_has_at_most_twenty_endpoints(client: FlaskClient, tenant_a: Tenant) -> None:
    for _ in range(20):
        assert _create(client, tenant_a).status_code == 201
    refused = _create(client, tenant_a)
    assert refused.status_code == 409 and "at most 20" in refused.json["error"]["message"]


def test_creating_a_lead_emits_lead_created_with_the_api_s_own_lead(
    client: FlaskClient, db: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    _create(client, tenant_a, event_types=["lead.created"])
    _create(client, tenant_b, event_types=["*"])
    lead = client.post("/api/leads", json={"phone": "(415) 555-0111", "name": "Ada"},
                       headers=tenant_a.headers)  # fmt: skip
    assert lead.status_code == 201
    bulk = client.post(
        "/api/leads/bulk",
        headers=tenant_a.headers,
        json={"leads": [{"phone": "+14155550112"}, {"phone": "+14155550111"}]},
    )
    assert bulk.json == {"created": 1, "updated": 1}
    conflict = client.post("/api/leads", json={"phone": "+14155550111"}, headers=tenant_a.headers)
    assert conflict.status_code == 409  # rolled back: no event for it
    events = _events(db)
    assert [e.type for e in events] == ["lead.created", "lead.created"]
    assert {e.business_id for e in events} == {tenant_a.business_id}  # B's endpoint hears nothing
    first = events[0].payload
    jsonschema.validate(first, catalogue.envelope_schema(catalogue.EVENT_TYPES["lead.created"]))
    assert first["data"] == client.get(f"/api/leads/{lead.json['id']}",
                                       headers=tenant_a.headers).json  # fmt: skip
    with db.session() as session:
        assert len(session.scalars(select(WebhookDelivery)).all()) == 2


def test_the_lifecycle_emits_call_completed_and_run_completed_once(
    client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    """A call that ends emits call.completed (the API's Call); the run it finishes emits
    run.completed: once each, in the transaction of the transition."""
    _create(client, tenant_a, event_types=["call.completed", "run.completed"])
    business_id = tenant_a.business_id
    with db.session() as session:
        lead = Lead(business_id=business_id, phone_e164="+14155550123")
        run = Run(business_id=business_id, name="Spring", status=RunStatus.RUNNING)
        session.add_all([lead, run])
        session.flush()
        job = CallJob(
            run_id=run.id,
            business_id=business_id,
            lead_id=lead.id,
            timezone="UTC",
            phone_e164=lead.phone_e164,
            status=CallJobStatus.IN_CALL,
            attempt=1,
        )
        session.add(job)
        session.flush()
        call = Call(business_id=business_id, run_id=run.id, job_id=job.id, lead_id=lead.id,
                    to_number=lead.phone_e164, status="in-progress", attempt=1,
                    provider_call_sid="CA" + "1" * 32)  # fmt: skip
        session.add(call)
        session.commit()
        call_id = call.id
    # The provider's final status through the lifecycle: the call ends, its job completes, the
    # run has nothing open and finishes; each transition emits its event in that transaction.
    with db.session() as session:
        locked = lifecycle.lock_call(session, call_id=call_id)
        assert locked is not None
        completed = lifecycle.StatusUpdate("completed", duration_s=42)
        assert lifecycle.apply_status(session, locked, completed, utcnow()).moved
        session.commit()
    with db.session() as session:  # a callback delivered twice emits nothing more
        locked = lifecycle.lock_call(session, call_id=call_id)
        assert locked is not None
        assert not lifecycle.apply_status(session, locked, completed, utcnow()).moved
        session.commit()
    events = _events(db)
    assert [e.type for e in events] == ["call.completed", "run.completed"]
    called, finished = (e.payload for e in events)
    for payload in (called, finished):
        jsonschema.validate(
            payload, catalogue.envelope_schema(catalogue.EVENT_TYPES[payload["type"]])
        )
    listed = client.get("/api/calls", headers=tenant_a.headers).json["items"]
    assert called["data"] == next(c for c in listed if c["id"] == call_id)  # the API's Call
    assert called["data"]["status"] == "completed" and called["data"]["duration_s"] == 42
    assert finished["data"]["jobs"]["completed"] == 1 and finished["data"]["attempts"] == 1


def test_receipt_synced_gives_the_api_s_receipt(
    client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    """The data builder the sync uses (tests/worker/test_receipts_sync.py runs the sync)."""
    _create(client, tenant_a, event_types=["receipt.synced"])
    receipt_id = make_receipts(db, tenant_a.business_id)[0]
    make_attachment(db, receipt_id, "r.pdf", "application/pdf", b"%PDF-1.4")
    with db.session() as session:
        receipt = session.get_one(Receipt, receipt_id)
        attachments = list(session.scalars(select(ReceiptAttachment)))
        data = catalogue.receipt_data(receipt, attachments)
    assert data == client.get(f"/api/receipts/{receipt_id}", headers=tenant_a.headers).json


def _delivery_rows(db: Database, business_id: int, endpoint_id: int, count: int) -> list[int]:
    """Deliveries as the worker leaves them: ``count`` failed after their attempts."""
    ids = []
    with db.session() as session:
        for n in range(count):
            event = WebhookEvent(public_id=f"evt_{n:026d}", business_id=business_id,
                                 type="lead.created", payload={"id": f"evt_{n:026d}"})  # fmt: skip
            session.add(event)
            session.flush()
            delivery = WebhookDelivery(event_id=event.id, endpoint_id=endpoint_id,
                                       business_id=business_id, event_type="lead.created",
                                       status="failed", attempt_count=2, retries_used=1,
                                       last_http_status=500, last_error="HTTP 500")  # fmt: skip
            session.add(delivery)
            session.flush()
            for number, status in ((1, 500), (2, 502)):
                session.add(
                    WebhookAttempt(
                        delivery_id=delivery.id,
                        number=number,
                        outcome="http_error",
                        http_status=status,
                        latency_ms=12,
                        response_snippet="oops",
                        error=f"HTTP {status}",
                        finished_at=utcnow(),
                    )
                )
            ids.append(delivery.id)
        session.commit()
    return ids


def test_the_delivery_log_and_redelivery(
    client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    endpoint = _create(client, tenant_a).json
    ids = _delivery_rows(db, tenant_a.business_id, endpoint["id"], 3)
    base = f"/api/webhooks/endpoints/{endpoint['id']}"
    log = client.get(f"{base}/deliveries?status=failed&per_page=2", headers=tenant_a.headers)
    assert log.status_code == 200 and log.json["total"] == 3
    first = log.json["items"][0]
    assert first["id"] == ids[-1]  # newest first
    assert first["last_attempt"]["number"] == 2 and first["last_attempt"]["http_status"] == 502
    assert first["last_attempt"]["latency_ms"] == 12
    assert first["last_attempt"]["response_snippet"] == "oops"
    detail = client.get(f"/api/webhooks/deliveries/{ids[0]}", headers=tenant_a.headers).json
    assert [a["http_status"] for a in detail["attempt_log"]] == [500, 502]
    assert detail["payload"] == {"id": "evt_" + "0" * 26}
    shown = client.get(base, headers=tenant_a.headers).json
    assert shown["deliveries"] == {"pending": 0, "succeeded": 0, "failed": 3}

    one = client.post(f"/api/webhooks/deliveries/{ids[0]}/redeliver", headers=tenant_a.headers)
    assert one.status_code == 202 and one.json["status"] == "pending"
    rest = client.post(f"{base}/redeliver-failed", headers=tenant_a.headers)
    assert rest.status_code == 202 and rest.json == {"redelivered": 2}
    with db.session() as session:
        rows = session.scalars(select(WebhookDelivery)).all()
        assert {d.status for d in rows} == {"pending"}
        assert all(d.next_attempt_at is not None for d in rows)
    # Disabled: redelivery is refused until it is enabled again.
    client.patch(base, json={"enabled": False}, headers=tenant_a.headers)
    refused = client.post(f"{base}/redeliver-failed", headers=tenant_a.headers)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "endpoint_disabled"
    again = client.patch(base, json={"enabled": True}, headers=tenant_a.headers)
    assert again.status_code == 200 and again.json["enabled"] is True


def test_a_disabled_endpoint_shows_why_until_it_is_enabled(
    client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    endpoint = _create(client, tenant_a).json
    with db.session() as session:
        session.execute(update(WebhookEndpoint).values(
            enabled=False, disabled_at=utcnow(), disabled_reason="failing since Monday",
            failing_since=utcnow() - timedelta(days=5)))  # fmt: skip
        session.commit()
    path = f"/api/webhooks/endpoints/{endpoint['id']}"
    shown = client.get(path, headers=tenant_a.headers).json
    assert shown["enabled"] is False and shown["disabled_reason"] == "failing since Monday"
    enabled = client.patch(path, json={"enabled": True}, headers=tenant_a.headers).json
    assert enabled["disabled_reason"] is None and enabled["failing_since"] is None


def test_the_catalogue_is_served_with_its_schemas(client: FlaskClient, tenant_a: Tenant) -> None:
    served = client.get("/api/webhooks/event-types", headers=tenant_a.headers).json["items"]
    assert {t["name"] for t in served} == set(catalogue.EVENT_TYPES)
    document = client.get("/api/openapi.json").json
    assert set(document["webhooks"]) == set(catalogue.EVENT_TYPES)
    for item in served:
        jsonschema.Draft202012Validator.check_schema(item["schema"])


def test_the_api_s_literals_are_the_catalogue_s_and_the_models() -> None:
    from typing import get_args

    from libs.common.models import AttemptOutcome, DeliveryStatus
    from services.api.webhooks import schemas

    assert set(get_args(schemas.EventTypeName)) == {*catalogue.EVENT_TYPES, catalogue.ALL_TYPES}
    assert set(get_args(schemas.DeliveredType)) == set(catalogue.EVENT_TYPES)
    assert set(get_args(schemas.Status)) == {s.value for s in DeliveryStatus}
    assert set(get_args(schemas.Outcome)) == {o.value for o in AttemptOutcome}
