"""Lead recycling: what a call's disposition does to its lead once the call has ended.

Applied by the worker (outcomes.apply), once per disposition of a call. It acts on the job
only while the job still belongs to this call's attempt: a job already moved on (a later
attempt started) is the newer call's to decide.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle import followups
from libs.campaigns.lifecycle import recycle as job_recycle
from libs.common.call_status import ACTIVE_JOB_STATUSES
from libs.common.db import insert_ignoring_conflicts
from libs.common.models import (
    Call,
    CallJob,
    CallJobStatus,
    Disposition,
    DncEntry,
    RecycleAction,
    Run,
    RunStatus,
)
from libs.queueops.outbox import enqueue_after_commit

logger = logging.getLogger(__name__)

#: Runs a recycled retry may go back into; a completed run is reopened by it.
_RETRY_RUNS = (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.COMPLETED)
#: Runs a lead may be moved into.
_MOVE_TARGETS = (RunStatus.DRAFT, RunStatus.RUNNING, RunStatus.PAUSED)


def recycle(session: Session, call: Call, disposition: Disposition, now: datetime) -> str:
    """Apply ``disposition``'s action to the lead of ``call`` (locked by the caller); the
    result, as counted in switchboard_lead_recycles_total."""
    action = RecycleAction(disposition.action)
    if action is RecycleAction.NONE:
        return "none"
    job = None
    if call.job_id is not None:
        job = session.scalar(select(CallJob).where(CallJob.id == call.job_id).with_for_update())
    if action is RecycleAction.NEVER:
        return _never(session, call, job, disposition, now)
    if job is None or job.attempt != call.attempt or job.status in ACTIVE_JOB_STATUSES:
        return "superseded"
    if action is RecycleAction.RETRY:
        return _retry(session, call, job, disposition, now)
    return _move(session, call, job, disposition, now)


def _never(
    session: Session, call: Call, job: CallJob | None, disposition: Disposition, now: datetime
) -> str:
    # The do-not-call list is what the dialer already honours in every run, now and later.
    insert_ignoring_conflicts(
        session,
        DncEntry.__table__,
        {"business_id": call.business_id, "phone_e164": call.to_number if call.direction ==
         "outbound" else call.from_number, "reason": f"disposition {disposition.code}"},
    )  # fmt: skip
    if job is not None and job.attempt == call.attempt:
        # A queued no-answer retry of this attempt must not dial again.
        job_recycle.close_queued(session, job, CallJobStatus.SKIPPED_DNC.value, now)
    return "never"


def _retry(
    session: Session, call: Call, job: CallJob, disposition: Disposition, now: datetime
) -> str:
    run = session.scalar(select(Run).where(Run.id == job.run_id).with_for_update(key_share=True))
    if run is None or run.status not in _RETRY_RUNS:
        return "run_closed"
    if job.attempt >= run.max_attempts:
        return "exhausted"
    hours = disposition.retry_after_h or 24
    if not job_recycle.requeue(session, job, (call.ended_at or now) + timedelta(hours=hours)):
        return "superseded"
    if run.status == RunStatus.COMPLETED:
        # The run has work again; the reconciler dispatches it when the retry is due.
        run.status, run.finished_at = RunStatus.RUNNING, None
        logger.info("run %d reopened by a %s retry of job %d", run.id, disposition.code, job.id)
    return "retry"


def _move(
    session: Session, call: Call, job: CallJob, disposition: Disposition, now: datetime
) -> str:
    target = session.scalar(
        select(Run).where(
            Run.id == disposition.move_to_run_id,
            Run.business_id == call.business_id,
            Run.status.in_(_MOVE_TARGETS),
        )
    )
    if target is None or target.id == job.run_id:
        return "target_closed"
    insert_ignoring_conflicts(
        session,
        CallJob.__table__,
        {"run_id": target.id, "business_id": job.business_id, "lead_id": job.lead_id,
         "phone_e164": job.phone_e164, "timezone": job.timezone,
         "status": CallJobStatus.QUEUED.value, "attempt": 0},
    )  # fmt: skip
    # A queued retry of the old run gives way to the new run.
    job_recycle.close_queued(session, job, CallJobStatus.CANCELED.value, now)
    if target.status == RunStatus.RUNNING:
        enqueue_after_commit(session, followups.dispatch(target.business_id))
    return "move"
