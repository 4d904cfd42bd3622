"""POST /webhook/twilio/status: call status callbacks.

Each (CallSid, CallStatus) is stored once; a status moves the call only forward; the job,
lead and run follow in the same transaction, so the slot is free the moment this commits.
Only the next dispatch is left to the worker: its message is sent once Twilio has its answer.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import dramatiq
from flask import Blueprint, Response, request
from sqlalchemy.orm import Session

from libs.common import metrics
from libs.common.campaigns.call_state import (
    CALLS,
    EVENTS,
    LockedCall,
    StatusUpdate,
    apply_status,
    lock_call,
    moves,
)
from libs.common.contracts import DIALER_DISPATCH, LEADS_CREATE_FROM_CALL, OUTCOMES_APPLY
from libs.common.db import insert_ignoring_conflicts, update_by_id
from libs.common.models import STATUS_RANK
from libs.common.web.db import get_session
from libs.common.web.errors import ApiError
from services.calls.webhooks.signature import twilio_signed

logger = logging.getLogger(__name__)
blueprint = Blueprint("twilio_status", __name__)

CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
ANSWERED_BY = {
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
}
#: A retry whose delay is longer than this waits for the reconciler, not a delayed message.
MAX_DELAYED_DISPATCH_S = 600

# Exported at zero from the start, so alerts on their rate work before the first failure.
metrics.WEBHOOK_SIGNATURE_FAILURES.labels("/webhook/twilio/status")


def _int(name: str, raw: str | None, *, required: bool = False) -> int | None:
    if raw in (None, ""):
        if required:
            raise ApiError(400, "bad_request", f"{name} is required")
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise ApiError(400, "bad_request", f"{name} must be a non-negative integer")
    return int(raw)


def _parse() -> tuple[str, StatusUpdate, int | None, int | None, int | None]:
    form = request.form
    sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
    if not CALL_SID.match(sid):
        raise ApiError(400, "bad_request", "CallSid is missing or malformed")
    if status not in STATUS_RANK:
        raise ApiError(400, "bad_request", f"CallStatus {status[:20]!r} is not a call status")
    answered_by = form.get("AnsweredBy") or None
    if answered_by is not None and answered_by not in ANSWERED_BY:
        raise ApiError(400, "bad_request", "AnsweredBy is not a known value")
    error_code = form.get("ErrorCode") or None
    if error_code is not None and not error_code.isdigit():
        raise ApiError(400, "bad_request", "ErrorCode must be numeric")
    update = StatusUpdate(
        status=status,
        duration_s=_int("CallDuration", form.get("CallDuration")),
        answered_by=answered_by,
        error_code=error_code,
        error_message=(form.get("ErrorMessage") or None) and form["ErrorMessage"][:500],
    )
    sequence = _int("SequenceNumber", form.get("SequenceNumber"))
    job_id = _int("job", request.args.get("job"))
    attempt = _int("attempt", request.args.get("attempt"))
    return sid, update, sequence, job_id, attempt


@blueprint.post("/webhook/twilio/status")
@twilio_signed
def status_callback() -> Response:
    sid, status_update, sequence, job_id, attempt = _parse()
    session = get_session()
    # The call is locked first (as every status writer does), so whether this callback moves
    # it is known when the callback is stored: one INSERT instead of an INSERT and an UPDATE.
    call = _find_call(session, sid, job_id, attempt)
    event_id = insert_ignoring_conflicts(
        session,
        EVENTS,
        {
            "provider_call_sid": sid,
            "status": status_update.status,
            "sequence_number": sequence,
            "applied": call is not None and moves(call, status_update),
            "params": request.form.to_dict(flat=True),
            "received_at": datetime.now(UTC),
        },
    )
    if event_id is None:  # Twilio retried or repeated it: already handled
        session.rollback()
        metrics.CALL_EVENTS.labels(status_update.status, "duplicate").inc()
        return Response(status=204)
    if call is None:
        # Kept unapplied: when a worker stores this call id, it applies pending events.
        session.commit()
        metrics.CALL_EVENTS.labels(status_update.status, "unknown_call").inc()
        logger.warning("status %s for unknown call %s", status_update.status, sid)
        return Response(status=204)
    now = datetime.now(UTC)
    applied = apply_status(session, call, status_update, now)
    follow_ups: list[tuple[dramatiq.Message[Any], int | None]] = []
    if applied.slot_freed and applied.business_id is not None:
        follow_ups.append((DIALER_DISPATCH.message(business_id=applied.business_id), None))
    if applied.moved and call.direction == "inbound" and call.is_final:
        # A caller who hung up before the stream connected is a lead too; when the stream did
        # run, this is the same idempotent message its stop already sent.
        follow_ups.append((LEADS_CREATE_FROM_CALL.message(call_sid=sid), None))
    if applied.moved and call.is_final:  # disposition rules and lead recycling (issue 21)
        follow_ups.append((OUTCOMES_APPLY.message(call_id=call.id), None))
    if applied.retry_at is not None and applied.business_id is not None:
        delay_s = (applied.retry_at - now).total_seconds()
        if delay_s <= MAX_DELAYED_DISPATCH_S:
            message = DIALER_DISPATCH.message(business_id=applied.business_id)
            follow_ups.append((message, int(max(delay_s, 0) * 1000)))
    session.commit()
    metrics.CALL_EVENTS.labels(status_update.status, "applied" if applied.moved else "late").inc()
    response = Response(status=204)
    if follow_ups:
        # Built now (they carry this request's id), sent after the answer: once the state is
        # committed Twilio is done, and its answer need not wait for a Redis round trip. The
        # WSGI server closes the response after writing it. A message lost here (a broker
        # outage, a crash) is what the reconciler's re-dispatch repairs, as before.
        response.call_on_close(lambda: _send(follow_ups))
    return response


def _send(follow_ups: list[tuple[dramatiq.Message[Any], int | None]]) -> None:
    broker = dramatiq.get_broker()
    for message, delay_ms in follow_ups:
        try:
            broker.enqueue(message, delay=delay_ms)
        except Exception as exc:  # the reconciler dispatches due work anyway
            logger.warning("%s not enqueued: %s", message.actor_name, type(exc).__name__)


def _find_call(
    session: Session, sid: str, job_id: int | None, attempt: int | None
) -> LockedCall | None:
    """By call id; failing that by the job and attempt the callback URL names (the worker may
    not have stored the id yet, or died before it could), attaching the id then."""
    call = lock_call(session, sid=sid)
    if call is not None or job_id is None or attempt is None:
        return call
    # No "sid IS NULL" condition here: if the worker stores the id while we wait for the row
    # lock, the row must still be found once the lock is ours.
    call = lock_call(session, job_attempt=(job_id, attempt))
    if call is None:
        return None
    if call.provider_call_sid is None:
        update_by_id(session, CALLS, call.id, {"provider_call_sid": sid})
        call.provider_call_sid = sid
    elif call.provider_call_sid != sid:
        logger.warning("callback for %s names job %s/%s, which has call %s", sid, job_id,
                       attempt, call.provider_call_sid)  # fmt: skip
        return None
    return call
