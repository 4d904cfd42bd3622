"""A run's voicemail audio: uploaded as the request body (WAV or MP3, recognised by its bytes),
served to Twilio by the calls service under an unguessable token, replaced or removed."""

from __future__ import annotations

import io
import wave

from flask.testing import FlaskClient

from libs.campaigns.outcomes import amd
from libs.common.db import Database
from libs.common.models import Run
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from services.calls.app import create_app as create_calls_app
from tests.conftest import Tenant


def wav_file() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(1600))
    return buffer.getvalue()


def test_upload_serve_replace_and_remove(
    client: FlaskClient, db: Database, settings: Settings, tenant_a: Tenant
) -> None:
    client.post("/api/leads", headers=tenant_a.headers, json={"phone": "+14155550123"})
    policy = {"detection": "DetectMessageEnd", "action": "voicemail", "voicemail_text": "Hi"}
    body = {"name": "vm", "filter": {}, "amd": policy}
    run = client.post("/api/runs", headers=tenant_a.headers, json=body).json
    url = f"/api/runs/{run['id']}/voicemail"
    audio = wav_file()
    put = client.put(url, headers={**tenant_a.headers, "Content-Type": "audio/wav"}, data=audio)
    assert put.status_code == 200, put.json
    with db.session() as session:
        row = session.get_one(Run, run["id"])
        token = row.voicemail_audio_token
        twiml = amd.voicemail_twiml(row, "https://calls.example.com")
    assert (
        token
        and f"<Play>https://calls.example.com/webhook/media/voicemail/{run['id']}/{token}" in twiml
    )
    calls = create_calls_app(settings.with_overrides(service_role="calls"),
                             build_broker(settings, worker=False)).test_client()  # fmt: skip
    served = calls.get(amd.voicemail_path(run["id"], token))
    assert served.status_code == 200 and served.data == audio and served.mimetype == "audio/wav"
    assert calls.get(amd.voicemail_path(run["id"], "guessed")).status_code == 404
    # A new upload is a new URL; the old one is gone.
    client.put(
        url, headers={**tenant_a.headers, "Content-Type": "audio/mpeg"}, data=b"ID3" + bytes(64)
    )
    assert calls.get(amd.voicemail_path(run["id"], token)).status_code == 404
    assert client.delete(url, headers=tenant_a.headers).status_code == 200
    with db.session() as session:
        assert session.get_one(Run, run["id"]).voicemail_audio_token is None


def test_refusals(client: FlaskClient, tenant_a: Tenant) -> None:
    client.post("/api/leads", headers=tenant_a.headers, json={"phone": "+14155550124"})
    run = client.post("/api/runs", headers=tenant_a.headers, json={"name": "vm", "filter": {}}).json
    url = f"/api/runs/{run['id']}/voicemail"
    not_audio = client.put(url, headers=tenant_a.headers, data=b"<html>hello</html>")
    assert not_audio.status_code == 400
    too_big = client.put(url, headers=tenant_a.headers, data=b"RIFF" + bytes(3 * 1024 * 1024))
    assert too_big.status_code == 413
    assert client.put("/api/runs/999999/voicemail", headers=tenant_a.headers,
                      data=wav_file()).status_code == 404  # fmt: skip
