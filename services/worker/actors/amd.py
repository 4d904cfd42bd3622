"""amd.act: what a run's machine policy does once AMD says a machine (or fax) answered."""

from __future__ import annotations

import logging

from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException

from libs.campaigns.outcomes import amd
from libs.common import metrics
from libs.common.call_status import FINAL_CALL_STATUSES
from libs.common.contracts import AMD_ACT
from libs.common.models import Call, CallJob, Run
from libs.queueops.middleware.worker_context import worker_context
from services.worker.registry import MissingRow, implements

logger = logging.getLogger(__name__)

for _action in ("hang_up", "voicemail"):
    metrics.MACHINE_ACTIONS.labels(_action)


@implements(AMD_ACT)
def act(call_id: int) -> None:
    """Once per call: the action is recorded on the call under its lock before the provider
    is asked, so a redelivered message does nothing (a lost provider request leaves the call
    to end by itself, which is safe)."""
    ctx = worker_context()
    with ctx.database.session() as session:
        row = session.execute(
            select(Call, Run).join(CallJob, CallJob.id == Call.job_id)
            .join(Run, Run.id == CallJob.run_id).where(Call.id == call_id)
            .with_for_update(of=Call)
        ).first()  # fmt: skip
        if row is None:
            raise MissingRow(f"no run call {call_id}")
        call, run = row
        action = amd.action_for(run.machine_action, call.answered_by or "")
        if (
            call.machine_action is not None
            or call.status in FINAL_CALL_STATUSES
            or action in (None, "agent")
        ):
            return
        sid = call.provider_call_sid
        base = ctx.settings.public_base_url
        twiml = amd.voicemail_twiml(run, base) if action == "voicemail" else None
        call.machine_action = "voicemail" if action == "voicemail" else "hung_up"
        session.commit()
    try:
        if twiml is not None:
            ctx.twilio.calls(sid).update(twiml=twiml)
        else:
            ctx.twilio.calls(sid).update(status="completed")
    except TwilioRestException as exc:
        # 21220: the call ended meanwhile (the machine hung up first): nothing left to do.
        logger.info("amd.act: call %s: %s %s", sid, exc.code, exc.msg)
        return
    metrics.MACHINE_ACTIONS.labels(str(action)).inc()
