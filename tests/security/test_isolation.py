"""Tenant isolation matrix: every api route, called by business B with business A's ids, is a
404 (indistinguishable from a missing row) and changes nothing of A's; B's listings never show
A's rows; operator routes are closed to business tokens. The routes come from the app's url map:
a new route that is not in the matrix fails ``test_every_route_is_in_the_matrix``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from libs.common.db import Database
from libs.common.models import (
    BackgroundJob,
    Call,
    Disposition,
    DncEntry,
    GmailConnection,
    Lead,
    Receipt,
    Run,
    RunStatus,
    Schedule,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from libs.common.settings import Settings
from tests.conftest import Tenant
from tests.receipt_factories import make_attachment, make_receipts

MARKER = "isolation-marker-a"


@dataclass
class Owned:
    """Business A's rows, one of each kind a route can name."""

    lead_id: int
    dnc_id: int
    run_id: int
    call_id: int
    job_id: int
    schedule_id: int
    receipt_id: int
    attachment_id: int
    connection_id: int
    endpoint_id: int
    delivery_id: int
    disposition_id: int


def _own(db: Database, business_id: int) -> Owned:
    with db.session() as session:
        lead = Lead(business_id=business_id, name=MARKER, phone_e164="+14155557001")
        dnc = DncEntry(business_id=business_id, phone_e164="+14155557002", reason=MARKER)
        run = Run(business_id=business_id, name=MARKER, status=RunStatus.DRAFT)
        job = BackgroundJob(business_id=business_id, kind="leads.import_csv")
        connection = GmailConnection(business_id=business_id, email=f"{MARKER}@example.com",
                                     refresh_token_encrypted="x")  # fmt: skip
        session.add_all([lead, dnc, run, job, connection])
        session.flush()
        call = Call(business_id=business_id, run_id=run.id, lead_id=lead.id,
                    direction="outbound", to_number=lead.phone_e164, status="completed",
                    provider_call_sid="CA" + "9" * 32, attempt=1)  # fmt: skip
        schedule = Schedule(business_id=business_id, lead_id=lead.id, local_time="09:00",
                            timezone="UTC")  # fmt: skip
        session.add_all([call, schedule])
        session.commit()
        ids = (lead.id, dnc.id, run.id, call.id, job.id, schedule.id, connection.id)
    receipt_id = make_receipts(db, business_id, ids[6])[0]
    attachment_id = make_attachment(db, receipt_id, f"{MARKER}.pdf", "application/pdf", b"%PDF")
    with db.session() as session:
        endpoint = WebhookEndpoint(business_id=business_id, url=f"https://{MARKER}.test/",
                                   description=MARKER, event_types=["*"],
                                   secret_encrypted="x")  # fmt: skip
        event = WebhookEvent(public_id=f"evt_{MARKER}", business_id=business_id,
                             type="lead.created", payload={"marker": MARKER})  # fmt: skip
        session.add_all([endpoint, event])
        session.flush()
        delivery = WebhookDelivery(event_id=event.id, endpoint_id=endpoint.id,
                                   business_id=business_id, event_type="lead.created",
                                   status="failed", last_error=MARKER)  # fmt: skip
        session.add(delivery)
        session.commit()
        hooks = (endpoint.id, delivery.id)
        disposition = Disposition(business_id=business_id, code="isolation_marker_a",
                                  label=MARKER, outcomes=["busy"], action="move",
                                  move_to_run_id=ids[2])  # fmt: skip
        session.add(disposition)
        session.commit()
        disposition_id = disposition.id
    return Owned(*ids[:6], receipt_id, attachment_id, ids[6], *hooks, disposition_id)


#: Routes that name one of A's rows, with the body B sends: each must be a 404 for B.
SCOPED: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/api/calls/<int:call_id>"): None,
    ("PUT", "/api/calls/<int:call_id>/disposition"): {"code": "isolation_marker_a"},
    ("GET", "/api/calls/<int:call_id>/recording"): None,
    ("GET", "/api/dispositions/<int:disposition_id>"): None,
    ("PATCH", "/api/dispositions/<int:disposition_id>"): {"label": "taken over"},
    ("DELETE", "/api/dispositions/<int:disposition_id>"): None,
    ("DELETE", "/api/dnc/<int:entry_id>"): None,
    ("DELETE", "/api/gmail/connections/<int:connection_id>"): None,
    ("GET", "/api/jobs/<int:job_id>"): None,
    ("GET", "/api/leads/<int:lead_id>"): None,
    ("PATCH", "/api/leads/<int:lead_id>"): {"name": "taken over"},
    ("DELETE", "/api/leads/<int:lead_id>"): None,
    ("GET", "/api/receipts/<int:receipt_id>"): None,
    ("GET", "/api/receipts/<int:receipt_id>/attachments/<int:attachment_id>"): None,
    ("GET", "/api/runs/<int:run_id>"): None,
    ("GET", "/api/runs/<int:run_id>/analytics"): None,
    ("POST", "/api/runs/<int:run_id>/cancel"): None,
    ("POST", "/api/runs/<int:run_id>/pause"): None,
    ("POST", "/api/runs/<int:run_id>/resume"): None,
    ("POST", "/api/runs/<int:run_id>/start"): None,
    ("PUT", "/api/runs/<int:run_id>/voicemail"): None,
    ("DELETE", "/api/runs/<int:run_id>/voicemail"): None,
    ("GET", "/api/schedules/<int:schedule_id>"): None,
    ("PATCH", "/api/schedules/<int:schedule_id>"): {"enabled": False},
    ("DELETE", "/api/schedules/<int:schedule_id>"): None,
    ("GET", "/api/schedules/<int:schedule_id>/occurrences"): None,
    ("GET", "/api/webhooks/endpoints/<int:endpoint_id>"): None,
    ("PATCH", "/api/webhooks/endpoints/<int:endpoint_id>"): {"enabled": False},
    ("DELETE", "/api/webhooks/endpoints/<int:endpoint_id>"): None,
    ("POST", "/api/webhooks/endpoints/<int:endpoint_id>/rotate-secret"): {"grace_s": 0},
    ("GET", "/api/webhooks/endpoints/<int:endpoint_id>/deliveries"): None,
    ("POST", "/api/webhooks/endpoints/<int:endpoint_id>/redeliver-failed"): None,
    ("GET", "/api/webhooks/deliveries/<int:delivery_id>"): None,
    ("POST", "/api/webhooks/deliveries/<int:delivery_id>/redeliver"): None,
}
#: Routes that create or act within the caller's business, naming A's rows in the body: B
#: gets a 404 (or 400) and nothing of A's is touched or created.
BODY_NAMES_A = {
    ("POST", "/api/receipts/sync"): lambda a: {"connection_id": a.connection_id},
    ("POST", "/api/dispositions"): lambda a: {
        "code": "steal",
        "action": "move",
        "move_to_run_id": a.run_id,
    },
    ("POST", "/api/schedules"): lambda a: {"lead_id": a.lead_id, "local_time": "10:00"},
    ("POST", "/api/runs"): lambda a: {"name": "steal", "lead_ids": [a.lead_id]},
}
#: Listings: B's response must not show any of A's rows.
LISTS = ["/api/calls", "/api/dispositions", "/api/dnc", "/api/gmail/connections", "/api/leads",
         "/api/receipts", "/api/runs", "/api/schedules", "/api/webhooks/endpoints"]  # fmt: skip
#: Routes only operators may use: 403 for a business token.
OPERATOR = {
    ("GET", "/api/admin/failed"), ("DELETE", "/api/admin/failed/<dead_letter_id>"),
    ("POST", "/api/admin/failed/<dead_letter_id>/retry"), ("POST", "/api/admin/failed/retry"),
    ("GET", "/api/admin/queues"), ("GET", "/api/admin/workers"), ("GET", "/api/queue/status"),
}  # fmt: skip
#: Routes that act only on the caller's own business or are public, each with why it is safe.
OWN_OR_PUBLIC = {
    ("GET", "/api/agent"): "the caller's own business's agent (tests/api/test_agent.py)",
    ("GET", "/api/analytics/daily"): "the caller's own business's calls "
    "(tests/api/test_analytics.py)",
    ("PUT", "/api/agent"): "sets the caller's own business's agent (tests/api/test_agent.py)",
    ("POST", "/api/dnc"): "adds to the caller's own list",
    ("GET", "/api/recordings/settings"): "the caller's own business's retention",
    ("PUT", "/api/recordings/settings"): "sets the caller's own business's retention",
    ("GET", "/api/gmail/callback"): "no token: the signed, single-use, browser-bound state names "
    "the business (tests/api/test_gmail.py)",
    ("GET", "/api/gmail/connect"): "a consent for the caller's own business",
    ("GET", "/api/healthz"): "public",
    ("POST", "/api/leads"): "creates in the caller's business",
    ("POST", "/api/leads/bulk"): "creates in the caller's business",
    ("POST", "/api/leads/import"): "imports into the caller's business",
    ("GET", "/api/me"): "the caller's own token",
    ("GET", "/api/openapi.json"): "public",
    ("GET", "/api/readyz"): "public",
    ("POST", "/api/schedules/trigger"): "business_id other than the caller's is refused "
    "(tests/api/test_schedules.py)",
    ("POST", "/api/system/ping"): "a ping message, no business data",
    ("POST", "/api/webhooks/endpoints"): "creates in the caller's business",
    ("GET", "/api/webhooks/event-types"): "the catalogue, the same for everyone",
    ("GET", "/healthz"): "internal, not routed by nginx",
    ("GET", "/metrics"): "internal, not routed by nginx",
    ("GET", "/readyz"): "internal, not routed by nginx",
    ("GET", "/static/<path:filename>"): "Flask's static files (none)",
}


def _routes(app: Flask) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}  # fmt: skip


def test_every_route_is_in_the_matrix(api_app: Flask) -> None:
    covered = set(SCOPED) | set(BODY_NAMES_A) | OPERATOR | set(OWN_OR_PUBLIC)
    covered |= {("GET", path) for path in LISTS}
    assert _routes(api_app) == covered


def _path(rule: str, a: Owned) -> str:
    values = {"call_id": a.call_id, "entry_id": a.dnc_id, "connection_id": a.connection_id,
              "job_id": a.job_id, "lead_id": a.lead_id, "receipt_id": a.receipt_id,
              "attachment_id": a.attachment_id, "run_id": a.run_id,
              "schedule_id": a.schedule_id, "endpoint_id": a.endpoint_id,
              "delivery_id": a.delivery_id,
              "disposition_id": a.disposition_id}  # fmt: skip
    for name, value in values.items():
        rule = rule.replace(f"<int:{name}>", str(value))
    return rule


def _counts(db: Database, business_id: int) -> dict[str, Any]:
    """A fingerprint of A's data: any change by B's calls shows here."""
    with db.session() as session:
        counts: dict[str, Any] = {
            model.__tablename__: session.scalar(
                select(func.count()).select_from(model).where(model.business_id == business_id)
            )
            for model in (
                Lead,
                DncEntry,
                Run,
                Call,
                Schedule,
                Receipt,
                GmailConnection,
                WebhookEndpoint,
                WebhookEvent,
                WebhookDelivery,
                Disposition,
            )
        }
        counts["endpoints"] = [
            (e.url, e.enabled, e.event_types, e.secret_encrypted, e.previous_secret_encrypted)
            for e in session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.business_id == business_id))
        ]  # fmt: skip
        counts["deliveries"] = [
            (d.status, d.next_attempt_at, d.retries_used)
            for d in session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.business_id == business_id))
        ]  # fmt: skip
        counts["dispositions"] = [
            (d.code, d.label, d.outcomes, d.action, d.move_to_run_id)
            for d in session.scalars(
                select(Disposition).where(Disposition.business_id == business_id))
        ]  # fmt: skip
        counts["call dispositions"] = sorted(str(c) for c in session.scalars(
            select(Call.disposition).where(Call.business_id == business_id)))  # fmt: skip
        counts["lead names"] = sorted(session.scalars(
            select(Lead.name).where(Lead.business_id == business_id)))  # fmt: skip
        counts["run statuses"] = sorted(str(s) for s in session.scalars(
            select(Run.status).where(Run.business_id == business_id)))  # fmt: skip
        counts["schedules enabled"] = sorted(session.scalars(
            select(Schedule.enabled).where(Schedule.business_id == business_id)))  # fmt: skip
    return counts


@pytest.fixture
def owned(db: Database, tenant_a: Tenant, settings: Settings) -> Owned:
    owned = _own(db, tenant_a.business_id)
    # A's call has a recording on disk: only A may download it.
    relative = f"outbound/{tenant_a.business_id}/{MARKER}.wav"
    path = settings.recordings_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + MARKER.encode())
    with db.session() as session:
        call = session.get_one(Call, owned.call_id)
        call.recording_path, call.recording_sha256 = relative, "0" * 64
        session.commit()
    return owned


@pytest.mark.parametrize(("method", "rule"), sorted(SCOPED))
def test_another_business_s_ids_are_404(
    method: str, rule: str, client: FlaskClient, db: Database, owned: Owned,
    tenant_a: Tenant, tenant_b: Tenant,
) -> None:  # fmt: skip
    before = _counts(db, tenant_a.business_id)
    body = SCOPED[(method, rule)]
    response = client.open(_path(rule, owned), method=method, json=body,
                           headers=tenant_b.headers)  # fmt: skip
    assert response.status_code == 404, (method, rule, response.status_code, response.data)
    assert response.get_json()["error"]["code"] == "not_found"
    assert MARKER not in response.get_data(as_text=True)
    assert _counts(db, tenant_a.business_id) == before
    if method == "GET":  # A reaches its row: the 404 above was isolation, not a bad path
        assert client.get(_path(rule, owned), headers=tenant_a.headers).status_code == 200


@pytest.mark.parametrize(("method", "rule"), sorted(BODY_NAMES_A))
def test_naming_another_business_s_rows_in_a_body_is_refused(
    method: str, rule: str, client: FlaskClient, db: Database, owned: Owned,
    tenant_a: Tenant, tenant_b: Tenant,
) -> None:  # fmt: skip
    before_a, before_b = _counts(db, tenant_a.business_id), _counts(db, tenant_b.business_id)
    body = BODY_NAMES_A[(method, rule)](owned)
    response = client.open(rule, method=method, json=body, headers=tenant_b.headers)
    assert response.status_code in (400, 404), (rule, response.status_code, response.data)
    assert MARKER not in response.get_data(as_text=True)
    assert _counts(db, tenant_a.business_id) == before_a
    assert _counts(db, tenant_b.business_id) == before_b


@pytest.mark.parametrize("path", LISTS)
def test_listings_never_show_another_business_s_rows(
    path: str, client: FlaskClient, owned: Owned, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    mine = client.get(path, headers=tenant_a.headers)
    theirs = client.get(path, headers=tenant_b.headers)
    assert mine.status_code == theirs.status_code == 200
    assert mine.get_json()["items"], path  # A sees its row: the listing does show rows
    assert theirs.get_json()["items"] == [], path
    assert MARKER not in theirs.get_data(as_text=True)


@pytest.mark.parametrize(("method", "rule"), sorted(OPERATOR))
def test_operator_routes_are_closed_to_business_tokens(
    method: str, rule: str, client: FlaskClient, tenant_b: Tenant
) -> None:
    path = rule.replace("<dead_letter_id>", "0" * 32)
    response = client.open(path, method=method, json={}, headers=tenant_b.headers)
    assert response.status_code == 403, (rule, response.status_code)
    assert response.get_json()["error"]["code"] == "forbidden"
