"""POST /webhook/twilio/status: call status callbacks.

Checked (signature, parameters: a bad one is a 400 and stores nothing), then stored once per
(CallSid, CallStatus) in one statement, and answered. The worker applies it
(``calls.status_changed``: the call moves only forward, the job, lead and run follow, the
freed slot is filled), so the calls service's part is what any durable ingest must do.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from flask import Blueprint, Response, request

from libs.campaigns.lifecycle import followups
from libs.campaigns.lifecycle import status as lifecycle
from libs.campaigns.lifecycle.status import StatusUpdate
from libs.common import metrics
from libs.common.call_status import STATUS_RANK
from libs.queueops.outbox import send_committed
from libs.web.db import get_database
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
    status = status_update.status
    # One statement on a pooled connection, committed before the answer: once Twilio has its
    # 204 the callback is durable. No Session and no lock: applying it (call, job, lead, run,
    # the next dispatch) is the worker's, under the call's lock (``calls.status_changed``).
    with get_database().engine.connect() as connection:
        event_id = lifecycle.store_callback(
            connection, sid, status, sequence, request.form.to_dict(flat=True), datetime.now(UTC)
        )
    if event_id is None:  # Twilio retried or repeated it: already stored, its message sent
        metrics.CALL_EVENTS.labels(status, "duplicate").inc()
        return Response(status=204)
    response = Response(status=204)
    # Built now (it carries this request's id), sent after the answer: Twilio's answer need
    # not wait for a broker round trip. The WSGI server closes the response after writing it.
    # A message lost here (a broker outage, a crash) is what the reconciler re-sends
    # (``conditions.callback_unapplied``); a call not known yet gets its callbacks applied
    # when its id is stored.
    outgoing = [followups.status_changed(sid, status, job_id, attempt)]
    response.call_on_close(lambda: send_committed(outgoing))
    return response
