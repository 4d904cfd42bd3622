"""Connecting Gmail through the real OAuth round trip (the Gmail simulator): the state binds the
consent to one business once, the refresh token is stored only encrypted, and disconnecting
deletes it and revokes it at Google."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.auth.exceptions import RefreshError
from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from libs.common.crypto import secret_box
from libs.common.db import Database
from libs.common.models import BackgroundJob, GmailConnection, JobStatus, Receipt
from libs.common.settings import Settings
from tests.api.conftest import PUBLIC, callback_params, connect_inbox, consent
from tests.conftest import Tenant
from tests.support.gmail_sim import EMAIL, GmailSimulator


def _connections(db: Database) -> list[GmailConnection]:
    with db.session() as session:
        return list(session.scalars(select(GmailConnection).order_by(GmailConnection.id)))


def _state_nonce(callback: str) -> str:
    state = callback_params(callback)["state"]
    return str(URLSafeSerializer("x").load_payload(state.split(".")[0].encode())["n"])


def _exchanges(gmail: GmailSimulator) -> int:
    return int(gmail.counts()["calls"]["token.authorization_code"])


def test_connect_flow_stores_the_inbox_with_its_token_encrypted(
    gmail_client: FlaskClient,
    gmail_settings: Settings,
    gmail: GmailSimulator,
    db: Database,
    tenant_a: Tenant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    callback = consent(gmail_client, tenant_a)
    assert callback.startswith("/api/gmail/callback?")
    code = callback_params(callback)["code"]
    response = gmail_client.get(callback)  # no Authorization header: the browser's redirect
    assert response.status_code == 302
    assert response.headers["Location"] == f"{PUBLIC}/receipts?gmail=connected"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    [row] = _connections(db)
    assert (row.business_id, row.email, row.status) == (tenant_a.business_id, EMAIL, "connected")
    assert row.scope == "https://www.googleapis.com/auth/gmail.readonly"
    assert row.refresh_token_encrypted is not None
    token = secret_box(gmail_settings).decrypt(row.refresh_token_encrypted)
    assert token not in row.refresh_token_encrypted and token.startswith("1//")
    # The stored token is the live grant: it reads the mailbox it was given for.
    service = gmail.service(gmail.credentials(token))
    assert service.users().getProfile(userId="me").execute()["emailAddress"] == EMAIL
    # Neither the code nor the token reaches a log line.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "gmail connection" in logged
    assert code not in logged and token not in logged
    listed = gmail_client.get("/api/gmail/connections", headers=tenant_a.headers)
    assert [c["email"] for c in listed.json["items"]] == [EMAIL]
    assert listed.json["items"][0]["status"] == "connected"


def test_login_hint_picks_the_account_and_a_reconnect_updates_the_same_row(
    gmail_client: FlaskClient, gmail_settings: Settings, db: Database, tenant_a: Tenant
) -> None:
    assert connect_inbox(gmail_client, tenant_a, "Books@Example.com").status_code == 302
    [first] = _connections(db)
    assert first.email == "books@example.com"
    with db.session() as session:
        row = session.get_one(GmailConnection, first.id)
        row.status, row.last_error, row.history_id = "needs_reauth", "invalid_grant", "42"
        session.commit()
    assert connect_inbox(gmail_client, tenant_a, "books@example.com").status_code == 302
    [again] = _connections(db)
    assert again.id == first.id
    assert (again.status, again.last_error, again.history_id) == ("connected", None, "42")
    assert again.refresh_token_encrypted != first.refresh_token_encrypted
    box = secret_box(gmail_settings)
    assert box.decrypt(again.refresh_token_encrypted or "") != box.decrypt(
        first.refresh_token_encrypted or ""
    )


def test_forged_state_is_refused_before_google_is_asked(
    gmail_client: FlaskClient, gmail: GmailSimulator, db: Database, tenant_a: Tenant
) -> None:
    callback = consent(gmail_client, tenant_a)
    params = callback_params(callback)
    state = params["state"]
    # A character inside the payload: every bit of it counts (the last character of a base64
    # string may carry unused bits, so changing it can leave the bytes, and the signature, valid).
    tampered = state[:5] + ("A" if state[5] != "A" else "B") + state[6:]
    for forged in (tampered, "", "not-a-state"):
        response = gmail_client.get(
            "/api/gmail/callback", query_string={"code": params["code"], "state": forged}
        )
        assert response.status_code == 400, forged
        assert response.json["error"]["code"] == "invalid_state"
    assert _connections(db) == []
    assert _exchanges(gmail) == 0
    # The genuine state was not spent by the forgeries.
    assert gmail_client.get(callback).status_code == 302


def test_replayed_callback_is_refused(
    gmail_client: FlaskClient, gmail: GmailSimulator, db: Database, tenant_a: Tenant
) -> None:
    callback = consent(gmail_client, tenant_a)
    assert gmail_client.get(callback).status_code == 302
    replay = gmail_client.get(callback)  # the callback spent the browser's cookie
    assert replay.status_code == 400
    assert replay.json["error"]["code"] == "invalid_state"
    # Even with the cookie put back, the state's single use is gone.
    nonce = _state_nonce(callback)
    gmail_client.set_cookie("sb_gmail_consent", nonce, path="/api/gmail/callback")
    replay = gmail_client.get(callback)
    assert replay.status_code == 400
    assert "already used" in replay.json["error"]["message"]
    assert len(_connections(db)) == 1
    assert _exchanges(gmail) == 1


def test_a_consent_link_opened_in_another_browser_connects_nothing(
    gmail_app: Flask, gmail_client: FlaskClient, gmail: GmailSimulator, db: Database,
    tenant_a: Tenant,
) -> None:  # fmt: skip
    """Business A's owner sends their consent link to someone else, who approves it: that
    browser lacks the cookie /gmail/connect set in A's, so the victim's inbox stays theirs."""
    callback = consent(gmail_client, tenant_a)
    victims_browser = gmail_app.test_client()
    response = victims_browser.get(callback)
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_state"
    assert "another browser" in response.json["error"]["message"]
    assert _connections(db) == [] and _exchanges(gmail) == 0
    # In the browser that asked, the same callback still works, and spends the cookie.
    done = gmail_client.get(callback)
    assert done.status_code == 302 and "sb_gmail_consent=;" in done.headers["Set-Cookie"]


def test_the_business_comes_from_the_state_not_the_caller(
    gmail_client: FlaskClient, db: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    callback = consent(gmail_client, tenant_a)
    # Business B's browser (or token) replaying A's callback connects nothing to B.
    response = gmail_client.get(callback, headers=tenant_b.headers)
    assert response.status_code == 302
    assert [c.business_id for c in _connections(db)] == [tenant_a.business_id]
    assert gmail_client.get("/api/gmail/connections", headers=tenant_b.headers).json == {
        "items": []
    }


def test_denied_consent_and_a_refused_code_go_back_to_the_spa_with_the_reason(
    gmail_client: FlaskClient, gmail: GmailSimulator, db: Database, tenant_a: Tenant
) -> None:
    gmail.scenario(consent_denied=True)
    denied = connect_inbox(gmail_client, tenant_a)
    assert denied.status_code == 302
    assert denied.headers["Location"] == f"{PUBLIC}/receipts?gmail=error&reason=access_denied"
    gmail.scenario(consent_denied=False)
    state = callback_params(consent(gmail_client, tenant_a))["state"]
    bad_code = gmail_client.get(
        "/api/gmail/callback", query_string={"code": "4/0forged", "state": state}
    )
    assert bad_code.status_code == 302
    assert bad_code.headers["Location"].endswith("?gmail=error&reason=invalid_grant")
    assert _connections(db) == []


def test_gmail_not_configured_is_503(client: FlaskClient, tenant_a: Tenant) -> None:
    response = client.get("/api/gmail/connect", headers=tenant_a.headers)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "gmail_not_configured"
    assert client.get("/api/gmail/callback?state=x&code=y").status_code == 503


def test_connect_needs_a_business_token(
    gmail_client: FlaskClient, operator_headers: dict[str, str]
) -> None:
    assert gmail_client.get("/api/gmail/connect").status_code == 401
    assert gmail_client.get("/api/gmail/connect", headers=operator_headers).status_code == 403
    assert gmail_client.get("/api/gmail/connections").status_code == 401


def test_disconnect_deletes_the_token_revokes_it_and_keeps_the_receipts(
    gmail_client: FlaskClient,
    gmail_settings: Settings,
    gmail: GmailSimulator,
    db: Database,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    connect_inbox(gmail_client, tenant_a)
    [row] = _connections(db)
    token = secret_box(gmail_settings).decrypt(row.refresh_token_encrypted or "")
    with db.session() as session:
        job = BackgroundJob(
            business_id=tenant_a.business_id, kind="receipts.sync", status=JobStatus.RUNNING
        )
        session.add(job)
        session.flush()
        session.get_one(GmailConnection, row.id).sync_job_id = job.id
        session.add(
            Receipt(
                business_id=tenant_a.business_id,
                connection_id=row.id,
                gmail_message_id="m1",
                received_at=datetime(2026, 1, 2, tzinfo=UTC),
            )
        )
        session.commit()
        job_id = job.id
    url = f"/api/gmail/connections/{row.id}"
    assert gmail_client.delete(url, headers=tenant_b.headers).status_code == 404
    assert gmail_client.delete(url, headers=tenant_a.headers).status_code == 204
    assert _connections(db) == []
    assert gmail_client.delete(url, headers=tenant_a.headers).status_code == 404
    with db.session() as session:
        [receipt] = session.scalars(select(Receipt))
        assert receipt.connection_id is None and receipt.gmail_message_id == "m1"
        stopped = session.get_one(BackgroundJob, job_id)
        assert (stopped.status, stopped.error_code) == (JobStatus.FAILED, "disconnected")
    # Revoked at Google: the token no longer gets an access token.
    with pytest.raises(RefreshError):
        gmail.service(gmail.credentials(token)).users().getProfile(userId="me").execute()
