"""Every database write of the media path, in one place (blocking: the stream runs these in
its bounded thread pool, never on the event loop).

A stream claims its call once (the start), records what the agent did (actions), and closes
the call log at the end with the follow-up messages. Status moves of the call itself belong
to the call lifecycle; the few this path makes are here so they can be routed through it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import dramatiq
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle import inbound
from libs.campaigns.outcomes import compliance
from libs.common.call_status import FINAL_CALL_STATUSES
from libs.common.db import Database, insert_ignoring_conflicts
from libs.common.models import Call, DncEntry, Lead, TranscriptLine, utcnow
from libs.queueops.outbox import enqueue_after_commit
from services.calls.media import protocol
from services.calls.media.frames import CallInfo

logger = logging.getLogger(__name__)


class StreamRefused(Exception):
    """The stream does not belong to a call we answered, or its call already has one."""


def claim_stream(database: Database, start: protocol.Start) -> CallInfo:
    """Bind the stream to its call log, once, with one conditional UPDATE (two starts racing
    for a call cannot both see it unclaimed): the call must be ours, answered, not ended, and
    have no stream yet (Twilio can open a second WebSocket for the same call; a replayed
    ``start`` is refused the same way). Raises StreamRefused and changes nothing otherwise.
    Inbound calls and answered campaign calls alike."""
    recording = str(Path(str(start.business_id)) / f"{start.call_sid}.wav")
    with database.session() as session:
        claimed = session.execute(
            update(Call)
            .where(
                Call.id == start.call_id,
                Call.business_id == start.business_id,
                Call.provider_call_sid == start.call_sid,
                Call.stream_sid.is_(None),
                Call.ended_at.is_(None),
                Call.status.not_in(FINAL_CALL_STATUSES),
            )
            .values(stream_sid=start.stream_sid, recording_path=recording)
            .returning(Call.from_number, Call.to_number, Call.direction)
        ).first()
        if claimed is None:
            session.rollback()
            raise StreamRefused(
                f"start names call {start.call_id}, which we did not answer or which already "
                "has a stream or has ended"
            )
        session.commit()
    from_number, to_number, direction = claimed
    if direction == "outbound":
        # The person we called is the "caller" an agent talks to.
        from_number = to_number
    return CallInfo(
        start.business_id, start.call_id, start.call_sid, from_number, to_number, direction
    )


def record_choice(
    database: Database,
    call_id: int,
    *,
    callback: bool = False,
    opt_out: bool = False,
    reason: str = "caller opted out",
) -> None:
    with database.session() as session:
        call = session.get_one(Call, call_id)
        if callback:
            call.callback_requested = True
        if opt_out:
            call.opted_out = True
            # At once, not after the call: the dialer must never call this number again.
            number = call.from_number if call.direction == "inbound" else call.to_number
            if number:
                insert_ignoring_conflicts(
                    session,
                    DncEntry.__table__,
                    {"business_id": call.business_id, "phone_e164": number, "reason": reason},
                )
        session.commit()


def update_call(database: Database, call_id: int, **values: Any) -> None:
    """Set plain columns of the call log (disposition, agent notes, errors)."""
    with database.session() as session:
        session.execute(update(Call).where(Call.id == call_id).values(**values))
        session.commit()


def finish(
    database: Database,
    broker: dramatiq.Broker,
    call_id: int,
    duration_ms: int,
    transcript: Sequence[tuple[datetime, str, str]] = (),
    first_audio_at: datetime | None = None,
) -> None:
    """The stream ended: close the call log, store the transcript, and send the follow-ups
    (lead, recording)."""
    with database.session() as session:
        _add_transcript(session, call_id, transcript)
        call = session.get_one(Call, call_id)
        compliance.stream_finished(session, call, first_audio_at, broker)  # issue 21
        # The status move is the lifecycle's; its follow-ups are repairable (the reconciler
        # finds calls without a processed recording or a lead and sends them again).
        for outgoing in inbound.close_stream(session, call_id, duration_ms, utcnow()):
            enqueue_after_commit(session, outgoing, broker)
        session.commit()


def _add_transcript(
    session: Session, call_id: int, lines: Sequence[tuple[datetime, str, str]]
) -> None:
    if not lines:
        return
    last = (
        session.scalar(
            select(func.max(TranscriptLine.seq)).where(TranscriptLine.call_id == call_id)
        )
        or 0
    )
    session.add_all(
        TranscriptLine(call_id=call_id, seq=last + i, at=at, role=role, text=text[:10_000])
        for i, (at, role, text) in enumerate(lines, 1)
    )


def call_sid_of(database: Database, call_id: int) -> str:
    with database.session() as session:
        return session.scalar(select(Call.provider_call_sid).where(Call.id == call_id)) or ""


#: UpdateLead fields stored in the lead's own columns; anything else goes under attributes.
LEAD_COLUMNS = {"name": 200, "email": 320, "notes": 10_000, "timezone": 64}


def update_lead(database: Database, call_id: int, fields: dict[str, Any]) -> int | None:
    """Create the caller's lead if needed (one per number per business) and set ``fields``;
    the lead's id, or None for a withheld caller (no number, no lead)."""
    with database.session() as session:
        call = session.get_one(Call, call_id)
        number = call.from_number if call.direction == "inbound" else call.to_number
        if call.lead_id is None and not number:
            return None
        if call.lead_id is None:
            insert_ignoring_conflicts(
                session,
                Lead.__table__,
                {
                    "business_id": call.business_id,
                    "phone_e164": number,
                    "name": "",
                    "source": "call",
                    "callback_requested": False,
                },
            )
            lead = session.scalars(
                select(Lead).where(Lead.business_id == call.business_id, Lead.phone_e164 == number)
            ).one()
            call.lead_id = lead.id
        else:
            lead = session.get_one(Lead, call.lead_id)
        extra = dict(lead.attributes or {})
        for key, value in fields.items():
            if key in LEAD_COLUMNS and isinstance(value, str):
                setattr(lead, key, value[: LEAD_COLUMNS[key]])
            elif isinstance(key, str) and len(key) <= 64:
                extra[key] = value
        lead.attributes = extra or None
        session.commit()
        return lead.id


def record_transfer(database: Database, call_id: int, number: str, mode: str) -> None:
    update_call(database, call_id, transferred_to=number, transfer_mode=mode)
