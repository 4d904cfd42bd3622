"""Inbound calls: the call log opened when Twilio asks for TwiML, closed when the stream ends.

An inbound call has no job: it starts ``in-progress`` (Twilio asks for the voice webhook once
the call is answered) and ends ``completed`` when its stream stops, or with the final status
callback if the caller hung up first (``status.apply_status``). Its follow-ups are a lead (only
when the caller's number is known: ``conditions.NEEDS_LEAD``) and the recording's description.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle import customer_events, followups
from libs.campaigns.lifecycle import statements as sql
from libs.common import metrics
from libs.common.db import insert_ignoring_conflicts
from libs.common.models import utcnow
from libs.queueops.outbox import Outgoing

_CALL_BY_SID = select(sql.CALLS.c.id).where(sql.CALLS.c.provider_call_sid == bindparam("sid"))

#: The stream's end closes the call log: an inbound call still in progress is completed (the
#: status callback that says so may come later and is then a no-op), with the stream's length.
_STREAM_CLOSED = (
    update(sql.CALLS)
    .where(sql.CALLS.c.id == bindparam("call_id"))
    .values(
        ended_at=func.coalesce(
            sql.CALLS.c.ended_at, bindparam("now", type_=sql.CALLS.c.ended_at.type)
        ),
        status=case(
            (
                (sql.CALLS.c.direction == "inbound") & (sql.CALLS.c.status == "in-progress"),
                "completed",
            ),
            else_=sql.CALLS.c.status,
        ),
        duration_s=case(
            (sql.CALLS.c.direction == "inbound", bindparam("duration_s")),
            else_=sql.CALLS.c.duration_s,
        ),
    )
    .returning(
        sql.CALLS.c.direction,
        sql.CALLS.c.provider_call_sid,
        sql.CALLS.c.status,
        sql.CALLS.c.business_id,
    )
)
_STATUS_FOR_UPDATE = (
    select(sql.CALLS.c.status).where(sql.CALLS.c.id == bindparam("call_id")).with_for_update()
)


def open_call(session: Session, business_id: int, to: str, from_: str, sid: str) -> int:
    """The call log of an answered inbound call, created once per CallSid (Twilio retries a
    slow webhook); its id. A withheld caller's number is stored as ""."""
    values: dict[str, Any] = {
        "business_id": business_id,
        "direction": "inbound",
        "to_number": to,
        "from_number": from_,
        "provider_call_sid": sid,
        "status": "in-progress",
        "answered_at": utcnow(),
        "attempt": 1,
    }
    call_id = insert_ignoring_conflicts(session, sql.CALLS, values)
    if call_id is None:
        call_id = session.connection().execute(_CALL_BY_SID, {"sid": sid}).scalar_one()
    else:
        metrics.CALL_STATUSES.labels("in-progress").inc()
    return int(call_id)


def close_stream(session: Session, call_id: int, duration_ms: int, now: datetime) -> list[Outgoing]:
    """The media stream of a call ended: close its log; the follow-ups to send after commit
    (the lead of an inbound call, the recording's description, and the outcome of an inbound
    call this completed)."""
    before = session.connection().execute(_STATUS_FOR_UPDATE, {"call_id": call_id}).scalar_one()
    row = (
        session.connection()
        .execute(
            _STREAM_CLOSED, {"call_id": call_id, "now": now, "duration_s": duration_ms // 1000}
        )
        .one()
    )
    direction, sid, status, business_id = row
    sid = sid or ""
    outgoing = [followups.recording(sid)]
    if direction == "inbound":  # an outbound call already has its lead
        outgoing.insert(0, followups.lead_from_call(sid))
    if status != before:  # this completed the inbound call
        metrics.CALL_STATUSES.labels(status).inc()
        customer_events.call_completed(session, business_id, call_id)
        outgoing.append(followups.outcome(call_id))
    return outgoing
