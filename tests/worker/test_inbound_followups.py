"""leads.create_from_call and recordings.process: self-contained and idempotent."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from dramatiq import Message, Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from libs.common.audio.wav import MulawWavWriter
from libs.common.contracts import (
    LEADS_CREATE_FROM_CALL,
    MAINTENANCE_RECONCILE,
    RECORDINGS_PROCESS,
)
from libs.common.db import Database
from libs.common.models import Business, Call, Lead, utcnow
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


def test_the_reconciler_makes_the_lead_of_a_call_whose_message_was_lost(
    db: Database, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    """A caller who hung up before any stream: only the final status callback's message would
    make the lead, and Redis lost it. The reconciler finds the ended call without a lead."""
    _inbound_call(db, "+14155550199", callback=False)
    with db.session() as session:
        call = session.scalars(select(Call)).one()
        call.recording_path = None
        call.ended_at = utcnow() - timedelta(minutes=10)
        session.commit()
    MAINTENANCE_RECONCILE.send(stub_broker, period_start=0)
    for queue in ("maintenance", "default"):  # the reconcile, then the message it sent
        stub_broker.join(queue, fail_fast=True)
        stub_worker.join()
    with db.session() as session:
        lead = session.scalars(select(Lead)).one()
        call = session.scalars(select(Call)).one()
    assert lead.phone_e164 == "+14155550199" and call.lead_id == lead.id


def test_the_reconciler_resends_nothing_for_a_withheld_caller(
    db: Database, stub_broker: StubBroker
) -> None:
    """A withheld caller is stored as "" and never makes a lead, so it never "lacks" one: the
    reconciler must not re-send its create_from_call on every pass (it once did, for 24 hours)."""
    withheld = _inbound_call(db, "", callback=False)
    known = _inbound_call(db, "+14155550166", callback=False)
    with db.session() as session:
        for call in session.scalars(select(Call)):
            call.recording_path = None
            call.ended_at = utcnow() - timedelta(minutes=10)
        session.commit()
    # Only the reconcile runs, so what it sent stays in the queue to be read.
    worker = Worker(stub_broker, queues={"maintenance"}, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        for period in (0, 1):  # two passes: the known caller is re-sent each time, until served
            MAINTENANCE_RECONCILE.send(stub_broker, period_start=period)
            stub_broker.join("maintenance", fail_fast=True)
            worker.join()
    finally:
        worker.stop()
    sent = [Message.decode(raw) for raw in list(stub_broker.queues["default"].queue)]
    assert [(m.actor_name, m.kwargs["call_sid"]) for m in sent] == [
        (LEADS_CREATE_FROM_CALL.name, known)
    ] * 2
    assert withheld not in {m.kwargs["call_sid"] for m in sent}
