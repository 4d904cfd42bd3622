"""leads.create_from_call and recordings.process: self-contained and idempotent."""

from __future__ import annotations

import hashlib
import secrets

from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from libs.common.audio.wav import MulawWavWriter
from libs.common.contracts import LEADS_CREATE_FROM_CALL, RECORDINGS_PROCESS
from libs.common.db import Database
from libs.common.models import Business, Call, Lead
from libs.common.settings import Settings


def _inbound_call(db: Database, caller: str, callback: bool) -> str:
    sid = "CA" + secrets.token_hex(16)
    with db.session() as session:
        business = Business(name="Inbound", timezone="UTC")
        session.add(business)
        session.flush()
        session.add(
            Call(business_id=business.id, direction="inbound", to_number="+14155550000",
                 from_number=caller, provider_call_sid=sid, status="completed",
                 callback_requested=callback, recording_path=f"{business.id}/{sid}.wav")
        )  # fmt: skip
        session.commit()
    return sid


def test_a_redelivered_create_from_call_still_makes_one_lead(
    db: Database, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    sid = _inbound_call(db, "+14155550177", callback=True)
    for _ in range(3):
        LEADS_CREATE_FROM_CALL.send(stub_broker, call_sid=sid)
    stub_broker.join("default", fail_fast=True)
    stub_worker.join()
    with db.session() as session:
        [lead] = session.scalars(select(Lead)).all()
        call = session.scalars(select(Call)).one()
    assert lead.phone_e164 == "+14155550177" and lead.callback_requested and lead.source == "call"
    assert call.lead_id == lead.id


def test_recordings_process_measures_the_wav(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, worker_settings: Settings
) -> None:
    sid = _inbound_call(db, "+14155550188", callback=False)
    with db.session() as session:
        call = session.scalars(select(Call)).one()
    path = worker_settings.recordings_dir / str(call.recording_path)
    writer = MulawWavWriter(path)
    writer.write(b"\x7f" * 4000)  # half a second
    writer.close()
    RECORDINGS_PROCESS.send(stub_broker, call_sid=sid)
    RECORDINGS_PROCESS.send(stub_broker, call_sid=sid)
    stub_broker.join("recordings", fail_fast=True)
    stub_worker.join()
    with db.session() as session:
        call = session.scalars(select(Call)).one()
    assert call.recording_duration_ms == 500
    assert call.recording_bytes == path.stat().st_size
    assert call.recording_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
