"""POST /webhook/twilio/amd: the asynchronous answering-machine verdict of a run's call.

Signed like every Twilio route. The verdict is stored on the call once (the first one wins);
when the run's machine policy has something to do now (hang up, leave the voicemail), the
worker does it (``amd.act``): this answers Twilio at once.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import dramatiq
from flask import Blueprint, Response, request
from sqlalchemy import select, update

from libs.campaigns.outcomes import amd
from libs.common import metrics
from libs.common.contracts import AMD_ACT
from libs.common.models import Call, CallJob, Run
from libs.web.db import get_session
from libs.web.errors import ApiError
from services.calls.webhooks.signature import twilio_signed

logger = logging.getLogger(__name__)
blueprint = Blueprint("twilio_amd", __name__)

CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")

metrics.WEBHOOK_SIGNATURE_FAILURES.labels("/webhook/twilio/amd")


@blueprint.post("/webhook/twilio/amd")
@twilio_signed
def amd_callback() -> Response:
    call_sid = request.form.get("CallSid", "")
    answered_by = request.form.get("AnsweredBy", "")
    if not CALL_SID.match(call_sid):
        raise ApiError(400, "bad_request", "CallSid must be CA followed by 32 hex digits")
    if answered_by not in amd.ANSWERED_BY:
        raise ApiError(
            400, "bad_request", f"AnsweredBy must be one of {', '.join(amd.ANSWERED_BY)}"
        )
    session = get_session()
    stored = session.execute(
        update(Call)
        .where(Call.provider_call_sid == call_sid, Call.amd_at.is_(None))
        .values(answered_by=answered_by, amd_at=datetime.now(UTC))
        .returning(Call.id, Call.job_id)
    ).first()
    if stored is None:
        session.rollback()
        known = session.scalar(select(Call.id).where(Call.provider_call_sid == call_sid))
        if known is None:  # the worker has not stored the call's id yet: Twilio tries again
            raise ApiError(503, "call_not_ready", f"no call {call_sid} yet")
        return Response(status=204)  # a repeat: the first verdict stands
    run_action = session.scalar(
        select(Run.machine_action).join(CallJob, CallJob.run_id == Run.id)
        .where(CallJob.id == stored.job_id)
    )  # fmt: skip
    session.commit()
    if run_action is None or amd.action_for(run_action, answered_by) in (None, "agent"):
        return Response(status=204)
    message = AMD_ACT.message(call_id=stored.id)
    response = Response(status=204)
    response.call_on_close(lambda: _send(message))
    return response


def _send(message: dramatiq.Message) -> None:  # type: ignore[type-arg]
    try:
        dramatiq.get_broker().enqueue(message)
    except Exception as exc:  # any broker's error: the call goes on as the agent's
        logger.warning("%s not enqueued: %s", message.actor_name, type(exc).__name__)
