"""/api/agent: a business chooses its voice agent; the provider key is stored encrypted and
never returned; /api/calls/{id} carries the call's transcript."""

from __future__ import annotations

from datetime import UTC, datetime

from flask.testing import FlaskClient
from sqlalchemy import select

from libs.common.crypto import secret_box
from libs.common.db import Database
from libs.common.models import AgentSettings, Call, TranscriptLine
from libs.common.settings import Settings
from tests.conftest import Tenant


def test_a_business_without_settings_has_the_default(client: FlaskClient, tenant_a: Tenant) -> None:
    answer = client.get("/api/agent", headers=tenant_a.headers)
    assert answer.status_code == 200
    assert answer.get_json()["kind"] == "default" and answer.get_json()["api_key_set"] is False


def test_settings_are_saved_and_the_key_only_encrypted(
    client: FlaskClient, tenant_a: Tenant, tenant_b: Tenant, db: Database, settings: Settings
) -> None:
    key = "sk-proj-" + "k" * 40
    answer = client.put(
        "/api/agent",
        headers=tenant_a.headers,
        json={
            "kind": "realtime",
            "model": "gpt-realtime",
            "instructions": "Be brief.",
            "voice": "marin",
            "tools": ["update_lead", "transfer"],
            "transfer_number": "(415) 555-0199",
            "api_key": key,
        },
    )
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["kind"], body["voice"], body["tools"]) == (
        "realtime",
        "marin",
        ["update_lead", "transfer"],
    )
    assert body["transfer_number"] == "+14155550199" and body["api_key_set"] is True
    assert key not in answer.get_data(as_text=True)
    with db.session() as session:
        row = session.get_one(AgentSettings, tenant_a.business_id)
    assert row.api_key_encrypted and key not in row.api_key_encrypted
    assert secret_box(settings).decrypt(row.api_key_encrypted) == key
    # A partial update keeps the rest; null removes the key.
    again = client.put("/api/agent", headers=tenant_a.headers, json={"api_key": None})
    assert again.get_json()["api_key_set"] is False and again.get_json()["voice"] == "marin"
    # Another business still has the default.
    assert client.get("/api/agent", headers=tenant_b.headers).get_json()["kind"] == "default"


def test_bad_settings_are_400s_and_change_nothing(
    client: FlaskClient, tenant_a: Tenant, db: Database
) -> None:
    for body in (
        {"kind": "telepathy"},
        {"tools": ["launch_missiles"]},
        {"voice": 3},
        {"transfer_number": "not a number"},
        {"api_key": ""},
        {"colour": "red"},
        {"instructions": "x" * 20_001},
    ):
        answer = client.put("/api/agent", headers=tenant_a.headers, json=body)
        assert answer.status_code == 400, body
        assert answer.get_json()["error"]["code"] == "bad_request"
    with db.session() as session:
        assert session.get(AgentSettings, tenant_a.business_id) is None


def test_a_call_s_transcript_is_in_its_detail(
    client: FlaskClient, tenant_a: Tenant, db: Database
) -> None:
    with db.session() as session:
        call = Call(
            business_id=tenant_a.business_id,
            direction="inbound",
            to_number="+14155550000",
            from_number="+14155550111",
            provider_call_sid="CA" + "9" * 32,
            status="completed",
            disposition="interested",
        )
        session.add(call)
        session.flush()
        at = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
        session.add_all(
            [
                TranscriptLine(call_id=call.id, seq=2, at=at, role="caller", text="Hi"),
                TranscriptLine(
                    call_id=call.id, seq=1, at=at, role="agent", text="Hello, Acme here."
                ),
            ]
        )
        session.commit()
        call_id = call.id
    body = client.get(f"/api/calls/{call_id}", headers=tenant_a.headers).get_json()
    assert [(line["role"], line["text"]) for line in body["transcript"]] == [
        ("agent", "Hello, Acme here."),
        ("caller", "Hi"),
    ]
    assert body["disposition"] == "interested"
    listed = client.get("/api/calls", headers=tenant_a.headers).get_json()["items"]
    assert "transcript" not in listed[0]
    with db.session() as session:
        assert session.scalars(select(TranscriptLine)).all()
