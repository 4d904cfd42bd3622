"""Recordings API: a call's WAV downloaded with its checksum as ETag (304 when the browser has
it), 410 once retention deleted it, 404 without one; the retention setting; a run's record."""

from __future__ import annotations

import hashlib

from flask.testing import FlaskClient

from libs.common.db import Database
from libs.common.models import Call, utcnow
from libs.common.settings import Settings
from tests.conftest import Tenant

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32)


def make_call(db: Database, business_id: int, **fields: object) -> int:
    with db.session() as session:
        call = Call(business_id=business_id, direction="outbound", to_number="+14155550100",
                    status="completed", **fields)  # fmt: skip
        session.add(call)
        session.commit()
        return call.id


def test_download_with_checksum(
    client: FlaskClient, db: Database, settings: Settings, tenant_a: Tenant
) -> None:
    relative = f"outbound/{tenant_a.business_id}/CAtest.wav"
    (settings.recordings_dir / relative).parent.mkdir(parents=True)
    (settings.recordings_dir / relative).write_bytes(WAV)
    digest = hashlib.sha256(WAV).hexdigest()
    call_id = make_call(db, tenant_a.business_id, recording_path=relative, recording_sha256=digest,
                        recording_bytes=len(WAV), recording_channels=2,
                        recording_sid="RE" + "1" * 32)  # fmt: skip
    answer = client.get(f"/api/calls/{call_id}/recording", headers=tenant_a.headers)
    assert answer.status_code == 200 and answer.data == WAV
    assert answer.mimetype == "audio/wav"
    assert answer.headers["ETag"] == f'"{digest}"'
    assert answer.headers["Content-Disposition"] == f'attachment; filename="call-{call_id}.wav"'
    again = client.get(f"/api/calls/{call_id}/recording",
                       headers={**tenant_a.headers, "If-None-Match": f'"{digest}"'})  # fmt: skip
    assert again.status_code == 304
    shown = client.get(f"/api/calls/{call_id}", headers=tenant_a.headers).json["recording"]
    assert shown == {"available": True, "bytes": len(WAV), "duration_ms": None,
                     "sha256": digest, "channels": 2, "expired_at": None}  # fmt: skip


def test_expired_and_missing(client: FlaskClient, db: Database, tenant_a: Tenant) -> None:
    expired = make_call(db, tenant_a.business_id, recording_sha256="0" * 64,
                        recording_expired_at=utcnow())  # fmt: skip
    answer = client.get(f"/api/calls/{expired}/recording", headers=tenant_a.headers)
    assert answer.status_code == 410 and answer.json["error"]["code"] == "recording_expired"
    shown = client.get(f"/api/calls/{expired}", headers=tenant_a.headers).json["recording"]
    assert shown["available"] is False and shown["expired_at"]
    none = make_call(db, tenant_a.business_id)
    assert client.get(f"/api/calls/{none}/recording", headers=tenant_a.headers).status_code == 404
    assert client.get(f"/api/calls/{none}", headers=tenant_a.headers).json["recording"] is None


def test_retention_setting(client: FlaskClient, tenant_a: Tenant) -> None:
    url = "/api/recordings/settings"
    assert client.get(url, headers=tenant_a.headers).json == {"retention_days": None}
    put = client.put(url, headers=tenant_a.headers, json={"retention_days": 30})
    assert put.status_code == 200 and put.json == {"retention_days": 30}
    assert client.put(url, headers=tenant_a.headers, json={"retention_days": 0}).status_code == 400
    assert client.put(url, headers=tenant_a.headers, json={"retention_days": None}).json == {
        "retention_days": None
    }


def test_a_run_records_when_asked(client: FlaskClient, tenant_a: Tenant) -> None:
    client.post("/api/leads", headers=tenant_a.headers, json={"phone": "+14155550123"})
    body = {"name": "recorded", "filter": {}, "record": True}
    run = client.post("/api/runs", headers=tenant_a.headers, json=body)
    assert run.status_code == 201 and run.json["record"] is True
    plain = client.post("/api/runs", headers=tenant_a.headers, json={"name": "p", "filter": {}})
    assert plain.json["record"] is False
