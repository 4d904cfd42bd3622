"""leads.create_from_call and recordings.process: the follow-up work of an inbound call.

Both load everything from the call log by CallSid and are idempotent, so a redelivered or
re-sent message changes nothing more.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.audio import wav
from libs.common.contracts import LEADS_CREATE_FROM_CALL, RECORDINGS_PROCESS
from libs.common.db import insert_ignoring_conflicts
from libs.common.models import Call, Lead
from libs.events.catalogue import lead_data
from libs.events.emit import emit
from libs.queueops.middleware.worker_context import worker_context
from services.worker.registry import MissingRow, implements

logger = logging.getLogger(__name__)


def _call(session: Session, call_sid: str) -> Call:
    call = session.scalar(select(Call).where(Call.provider_call_sid == call_sid).with_for_update())
    if call is None:
        raise MissingRow(f"no call {call_sid}")
    return call


@implements(LEADS_CREATE_FROM_CALL)
def create_from_call(call_sid: str) -> None:
    ctx = worker_context()
    with ctx.database.session() as session:
        call = _call(session, call_sid)
        if not call.caller_known:
            logger.info("call %s: caller id withheld, no lead", call_sid)
            return
        # One lead per caller number per business: the unique key makes this an upsert.
        new_lead_id = insert_ignoring_conflicts(
            session,
            Lead.__table__,
            {
                "business_id": call.business_id,
                "phone_e164": call.from_number,
                "name": "",
                "source": "call",
                "callback_requested": False,
            },
        )
        lead = session.scalars(
            select(Lead).where(
                Lead.business_id == call.business_id, Lead.phone_e164 == call.from_number
            )
        ).one()
        if call.callback_requested:
            lead.callback_requested = True
        lead.last_call_status = call.status
        lead.last_called_at = call.ended_at or call.created_at
        call.lead_id = lead.id
        if new_lead_id is not None:  # created now, not by an earlier delivery of this message
            session.flush()
            emit(session, call.business_id, "lead.created", lead_data(lead), ctx.broker)
        session.commit()


@implements(RECORDINGS_PROCESS)
def process(call_sid: str) -> None:
    ctx = worker_context()
    with ctx.database.session() as session:
        call = _call(session, call_sid)
        if not call.recording_path:
            raise MissingRow(f"call {call_sid} has no recording")
        path = ctx.settings.recordings_dir / call.recording_path
        # Not there (yet): raised, so the message is retried with backoff.
        digest, size = _sha256(path)
        _, _, audio = wav.read(path)
        call.recording_bytes = size
        call.recording_sha256 = digest
        call.recording_duration_ms = len(audio) * 1000 // wav.SAMPLE_RATE
        session.commit()
        transcribe(call, path)


def transcribe(call: Call, path: Path) -> None:
    """Hook: where a transcription (speech-to-text of ``path``) would be added and stored on
    the call. Nothing is transcribed by default."""


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
