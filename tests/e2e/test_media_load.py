"""100 concurrent inbound calls streaming audio for 10 s through one calls service (its default
configuration, under gunicorn), none dropped: every socket stays open until the caller's stop,
every frame is recorded, every greeting is played."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from libs.common.audio import wav
from libs.common.db import Database
from libs.common.models import Call
from simulators.twilio.media_client import Target, peak_open, run_streams
from tests.e2e.conftest import BUSINESS_NUMBER, CallsService
from tests.support.twilio_sim import AUTH_TOKEN

STREAMS = 100
SECONDS = 10
FRAMES = SECONDS * 50


def test_one_hundred_concurrent_streams_for_ten_seconds_none_dropped(
    calls_service: CallsService, db: Database
) -> None:
    target = Target(
        ws_url="",  # taken from each call's TwiML
        voice_url=f"{calls_service.public}/webhook/twilio/voice",
        auth_token=AUTH_TOKEN,
        to=BUSINESS_NUMBER,
    )
    results = asyncio.run(run_streams(target, STREAMS, seconds=SECONDS, ramp_s=2.0))

    log = calls_service.log.read_text()
    failed = [r for r in results if not r.ok]
    assert failed == [], (failed[:3], log[-3000:])
    assert peak_open(results) == STREAMS
    assert {r.sent for r in results} == {FRAMES}
    # Each caller heard the whole 1-s greeting, then got its mark (and echoed it, as Twilio).
    assert {(r.received_media, r.received_marks) for r in results} == {(50, 1)}
    assert "media stream failed" not in log and "dropped a frame" not in log, log[-3000:]

    with db.session() as session:
        calls = session.scalars(select(Call).where(Call.direction == "inbound")).all()
        assert len(calls) == STREAMS
        assert {c.provider_call_sid for c in calls} == {r.call_sid for r in results}
        for call in calls:
            assert call.status == "completed"
            _, _, audio = wav.read(calls_service.recordings / str(call.recording_path))
            assert len(audio) == FRAMES * 160, call.provider_call_sid
