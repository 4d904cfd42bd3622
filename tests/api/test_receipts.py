"""Receipts through the API: one sync per inbox at a time (row lock), the broker checked before
anything is written, filters with clear 400s, attachments served safely, tenant isolation."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from libs.common.db import Database
from libs.common.models import BackgroundJob, GmailConnection, JobStatus
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from services.api.app import create_app
from tests.api.conftest import connect_inbox
from tests.conftest import Tenant
from tests.receipt_factories import make_attachment, make_receipts
from tests.support.services import missing_service, unreachable_redis_url

SYNC = "/api/receipts/sync"


@pytest.fixture
def connection_id(gmail_client: FlaskClient, db: Database, tenant_a: Tenant) -> int:
    assert connect_inbox(gmail_client, tenant_a).status_code == 302
    with db.session() as session:
        return int(session.scalars(select(GmailConnection.id)).one())


def _jobs(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(BackgroundJob)) or 0)


def _connection(db: Database, connection_id: int) -> GmailConnection:
    with db.session() as session:
        return session.get_one(GmailConnection, connection_id)


def _add_connection(db: Database, business_id: int, email: str, **fields: object) -> int:
    with db.session() as session:
        row = GmailConnection(business_id=business_id, email=email, **fields)
        session.add(row)
        session.commit()
        return row.id


def test_sync_queues_one_job_and_refuses_a_second_while_it_runs(
    gmail_client: FlaskClient,
    db: Database,
    tenant_a: Tenant,
    connection_id: int,
    redis_client: redis.Redis,
) -> None:
    first = gmail_client.post(SYNC, headers=tenant_a.headers)
    assert first.status_code == 202, first.json
    job = first.json["job"]
    assert (job["kind"], job["status"], job["business_id"]) == (
        "receipts.sync",
        "queued",
        tenant_a.business_id,
    )
    assert _connection(db, connection_id).sync_job_id == job["id"]
    [message_id] = redis_client.lrange("dramatiq:receipts", 0, -1)
    message = json.loads(redis_client.hget("dramatiq:receipts.msgs", message_id) or b"{}")
    assert message["actor_name"] == "receipts.sync"
    assert message["kwargs"] == {"connection_id": connection_id, "background_job_id": job["id"]}

    second = gmail_client.post(
        SYNC, json={"connection_id": connection_id}, headers=tenant_a.headers
    )
    assert second.status_code == 409
    assert second.json["error"]["code"] == "sync_running"
    assert second.json["job"]["id"] == job["id"]
    assert f"/api/jobs/{job['id']}" in second.json["error"]["message"]
    assert _jobs(db) == 1

    # Once the job is final, the next sync may start.
    with db.session() as session:
        session.get_one(BackgroundJob, job["id"]).status = JobStatus.SUCCEEDED
        session.commit()
    third = gmail_client.post(SYNC, headers=tenant_a.headers)
    assert third.status_code == 202
    assert third.json["job"]["id"] != job["id"]
    assert _connection(db, connection_id).sync_job_id == third.json["job"]["id"]


def test_concurrent_syncs_give_one_202_and_one_409(
    gmail_app: Flask, gmail_settings: Settings, db: Database, tenant_a: Tenant, connection_id: int
) -> None:
    if gmail_settings.is_sqlite:
        missing_service("PostgreSQL")  # SQLite has no row locks to race on
    responses: list[tuple[int, dict[str, object]]] = []

    def post() -> None:
        response = gmail_app.test_client().post(SYNC, headers=tenant_a.headers)
        responses.append((response.status_code, response.json or {}))

    # Hold the connection's row lock so both requests are in flight together, then let go:
    # without the endpoint's own lock, both would read "no sync running" and queue one each.
    with db.session() as holder:
        holder.scalar(
            select(GmailConnection).where(GmailConnection.id == connection_id).with_for_update()
        )
        threads = [threading.Thread(target=post) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        assert all(t.is_alive() for t in threads), "the requests did not wait for the row lock"
        holder.rollback()
    for thread in threads:
        thread.join(timeout=30)
    by_status = dict(responses)
    assert sorted(by_status) == [202, 409]
    winner = by_status[202]["job"]
    assert by_status[409]["job"]["id"] == winner["id"]  # type: ignore[index]
    assert _jobs(db) == 1


def test_broker_down_is_503_and_writes_nothing(
    gmail_settings: Settings, db: Database, tenant_a: Tenant, connection_id: int
) -> None:
    dead = gmail_settings.with_overrides(redis_url=unreachable_redis_url())
    client = create_app(dead, broker=build_broker(dead, worker=False)).test_client()
    response = client.post(SYNC, headers=tenant_a.headers)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "queue_unavailable"
    assert _jobs(db) == 0
    assert _connection(db, connection_id).sync_job_id is None


def test_needs_reauth_is_409_telling_the_user_to_reconnect(
    gmail_client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    _add_connection(db, tenant_a.business_id, "old@example.com", status="needs_reauth")
    response = gmail_client.post(SYNC, headers=tenant_a.headers)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "needs_reauth"
    assert "/api/gmail/connect" in response.json["error"]["message"]
    assert _jobs(db) == 0


def test_which_connection_is_synced(
    gmail_client: FlaskClient, db: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    none = gmail_client.post(SYNC, headers=tenant_a.headers)
    assert none.status_code == 404 and none.json["error"]["code"] == "no_connection"
    first = _add_connection(db, tenant_a.business_id, "a@example.com")
    second = _add_connection(db, tenant_a.business_id, "b@example.com")
    foreign = _add_connection(db, tenant_b.business_id, "c@example.com")
    several = gmail_client.post(SYNC, headers=tenant_a.headers)
    assert several.status_code == 400
    assert "connection_id" in several.json["error"]["message"]
    assert str(first) in several.json["error"]["message"]
    other = gmail_client.post(SYNC, json={"connection_id": foreign}, headers=tenant_a.headers)
    assert other.status_code == 404 and other.json["error"]["code"] == "not_found"
    for body in ({"connection_id": "1"}, {"connection_id": 0}, {"id": 1}, [1]):
        bad = gmail_client.post(SYNC, json=body, headers=tenant_a.headers)
        assert bad.status_code == 400, body
    named = gmail_client.post(SYNC, json={"connection_id": second}, headers=tenant_a.headers)
    assert named.status_code == 202
    assert _connection(db, second).sync_job_id == named.json["job"]["id"]
    assert _connection(db, first).sync_job_id is None


PDF = b"%PDF-1.4\n% receipt\n"


def _ids(client: FlaskClient, tenant: Tenant, query: str) -> list[str]:
    response = client.get(f"/api/receipts?{query}", headers=tenant.headers)
    assert response.status_code == 200, (query, response.json)
    return [item["gmail_message_id"] for item in response.json["items"]]


def test_list_filters_and_pages(
    client: FlaskClient, db: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    make_receipts(db, tenant_a.business_id)
    make_receipts(db, tenant_b.business_id)
    assert _ids(client, tenant_a, "") == ["m5", "m4", "m3", "m2", "m1"]  # newest first
    assert _ids(client, tenant_a, "from=2026-02-01&to=2026-03-15") == ["m3", "m2"]
    assert _ids(client, tenant_a, "from=2026-03-16") == ["m4"]
    assert _ids(client, tenant_a, "vendor=amazon") == ["m3", "m1"]
    assert _ids(client, tenant_a, "vendor=%25") == ["m4"]  # a literal %, not a wildcard
    assert _ids(client, tenant_a, "vendor=a_a") == []  # a literal _ too ("ama" would match)
    assert _ids(client, tenant_a, "vendor=E_S") == ["m4"]
    assert _ids(client, tenant_a, "min_amount=12.5&max_amount=120.98") == ["m2", "m1"]
    assert _ids(client, tenant_a, "min_amount=100") == ["m3"]
    assert _ids(client, tenant_a, "currency=usd") == ["m2", "m1"]
    assert _ids(client, tenant_a, "currency=USD&vendor=uber") == ["m2"]
    page = client.get("/api/receipts?page=2&per_page=2", headers=tenant_a.headers).json
    assert (page["total"], page["page"], page["per_page"]) == (5, 2, 2)
    assert [r["gmail_message_id"] for r in page["items"]] == ["m3", "m2"]
    item = page["items"][0]
    assert item["vendor"] == "AMAZON Web Services" and item["total_amount"] == "120.99"
    assert item["date"] == "2026-03-15" and item["attachments"] == []


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("from=2026-13-01", "from"),
        ("from=yesterday", "from"),
        ("to=20260101", "to"),
        ("from=2026-03-02&to=2026-03-01", "from"),
        ("min_amount=ten", "min_amount"),
        ("max_amount=NaN", "max_amount"),
        ("max_amount=Infinity", "max_amount"),
        ("min_amount=1e20", "min_amount"),
        ("min_amount=5&max_amount=1", "min_amount"),
        ("currency=dollars", "currency"),
        ("vendor=" + "x" * 201, "vendor"),
        ("per_page=0", "per_page"),
        ("connection_id=x", "connection_id"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(
    client: FlaskClient, tenant_a: Tenant, query: str, name: str
) -> None:
    response = client.get(f"/api/receipts?{query}", headers=tenant_a.headers)
    assert response.status_code == 400
    assert name in response.json["error"]["message"]


def test_get_and_download_attachments(
    client: FlaskClient, db: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    receipt_id = make_receipts(db, tenant_a.business_id)[0]
    pdf = make_attachment(db, receipt_id, 'inv/../"Invoice"\r\n #12.pdf', "application/pdf", PDF)
    html = make_attachment(db, receipt_id, "page.html", "text/html", b"<script>alert(1)</script>")
    odd = make_attachment(db, receipt_id, "Reçu été.png", "image/png\r\nX-Evil: 1", b"\x89PNG")
    got = client.get(f"/api/receipts/{receipt_id}", headers=tenant_a.headers)
    assert got.status_code == 200
    assert [a["id"] for a in got.json["attachments"]] == [pdf, html, odd]
    assert got.json["attachments"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert "content" not in got.json["attachments"][0]
    listed = client.get("/api/receipts?vendor=amazon.com", headers=tenant_a.headers).json
    assert len(listed["items"][0]["attachments"]) == 3

    url = f"/api/receipts/{receipt_id}/attachments/{pdf}"
    download = client.get(url, headers=tenant_a.headers)
    assert download.status_code == 200
    assert download.data == PDF
    assert download.mimetype == "application/pdf"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Disposition"] == 'attachment; filename="Invoice #12.pdf"'
    etag = download.headers["ETag"]
    assert etag == f'"{hashlib.sha256(PDF).hexdigest()}"'
    cached = client.get(url, headers={**tenant_a.headers, "If-None-Match": etag})
    assert cached.status_code == 304 and cached.data == b""

    page = client.get(f"/api/receipts/{receipt_id}/attachments/{html}", headers=tenant_a.headers)
    assert page.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in page.headers["Content-Security-Policy"]
    strange = client.get(f"/api/receipts/{receipt_id}/attachments/{odd}", headers=tenant_a.headers)
    assert strange.mimetype == "application/octet-stream"
    assert "X-Evil" not in strange.headers
    assert strange.headers["Content-Disposition"] == (
        "attachment; filename=\"Recu ete.png\"; filename*=UTF-8''Re%C3%A7u%20%C3%A9t%C3%A9.png"
    )

    # Another business sees none of it; a wrong receipt/attachment pair is not found either.
    other_receipt = make_receipts(db, tenant_b.business_id)[0]
    assert client.get(f"/api/receipts/{receipt_id}", headers=tenant_b.headers).status_code == 404
    assert client.get(url, headers=tenant_b.headers).status_code == 404
    wrong_pair = f"/api/receipts/{other_receipt}/attachments/{pdf}"
    assert client.get(wrong_pair, headers=tenant_b.headers).status_code == 404
    assert client.get("/api/receipts/999999", headers=tenant_a.headers).status_code == 404
