"""POST /webhook/twilio/status: call status callbacks.

Each (CallSid, CallStatus) is stored once; a status moves the call only forward; the job,
lead and run follow in the same transaction, so the slot is free the moment this commits.
Only the next dispatch is left to the worker: its message is sent once Twilio has its answer.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from flask import Blueprint, Response, request
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle import status as lifecycle
from libs.campaigns.lifecycle.statements import EVENTS
from libs.campaigns.lifecycle.status import StatusUpdate
from libs.common import metrics
from libs.common.call_status import STATUS_RANK
from libs.common.db import insert_ignoring_conflicts
from libs.queueops.outbox import Outgoing, send_committed
from libs.web.db import get_session
from libs.web.errors import ApiError
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
    now = datetime.now(UTC)
    # The call is locked first (as every status writer does), so whether this callback moves
    # it is known when the callback is stored: one INSERT instead of an INSERT and an UPDATE.
    call, outgoing = _find_call(session, sid, job_id, attempt, now)
    event_id = insert_ignoring_conflicts(
        session,
        EVENTS,
        {
            "provider_call_sid": sid,
            "status": status_update.status,
            "sequence_number": sequence,
            "applied": call is not None and lifecycle.moves(call, status_update),
            "params": request.form.to_dict(flat=True),
            "received_at": now,
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
    applied = lifecycle.apply_status(session, call, status_update, now)
    outgoing.extend(applied.followups)
    session.commit()
    metrics.CALL_EVENTS.labels(status_update.status, "applied" if applied.moved else "late").inc()
    response = Response(status=204)
    if outgoing:
        # Built now (they carry this request's id), sent after the answer: once the state is
        # committed Twilio is done, and its answer need not wait for a broker round trip. The
        # WSGI server closes the response after writing it. Every follow-up is repairable: a
        # message lost here (a broker outage, a crash) is what the reconciler repairs.
        response.call_on_close(lambda: send_committed(outgoing))
    return response


def _find_call(
    session: Session, sid: str, job_id: int | None, attempt: int | None, now: datetime
) -> tuple[lifecycle.LockedCall | None, list[Outgoing]]:
    """By call id; failing that by the job and attempt the callback URL names (the worker may
    not have stored the id yet, or died before it could), attaching the id then."""
    call = lifecycle.lock_call(session, sid=sid)
    if call is not None or job_id is None or attempt is None:
        return call, []
    # No "sid IS NULL" condition here: if the worker stores the id while we wait for the row
    # lock, the row must still be found once the lock is ours.
    call = lifecycle.lock_call(session, job_attempt=(job_id, attempt))
    if call is None:
        return None, []
    if call.provider_call_sid not in (None, sid):
        logger.warning("callback for %s names job %s/%s, which has call %s", sid, job_id,
                       attempt, call.provider_call_sid)  # fmt: skip
        return None, []
    applied = lifecycle.attach_sid(session, call, sid, now)
    return call, [o for a in applied for o in a.followups]
