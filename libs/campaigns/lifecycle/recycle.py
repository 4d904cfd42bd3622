"""A finished job given another turn, or a queued one closed, by what its call's outcome
decided after the fact (issue 21: a disposition's recycling rule, a run's machine policy).

The outcome is judged by the worker once the call has ended (``libs.campaigns.outcomes``); the
job's status changes here, beside every other job move, so the table and its diagram list them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle.statements import JOBS
from libs.campaigns.lifecycle.status import complete_run_if_done
from libs.common.call_status import ACTIVE_JOB_STATUSES, JOB_QUEUED, REQUEUED_FROM
from libs.common.models import CallJob

_REQUEUE = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("job_id"),
        JOBS.c.attempt == bindparam("job_attempt"),
        JOBS.c.status.in_((JOB_QUEUED, *REQUEUED_FROM)),
    )
    .values(
        status=JOB_QUEUED,
        next_attempt_at=bindparam("at"),
        provider_call_sid=None,
        error_code=None,
        error_message=None,
    )
)

_CLOSE_QUEUED = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("job_id"),
        JOBS.c.attempt == bindparam("job_attempt"),
        JOBS.c.status == JOB_QUEUED,
    )
    .values(status=bindparam("new_status"), next_attempt_at=None)
)


def requeue(session: Session, job: CallJob, at: datetime) -> bool:
    """Queue ``job`` (its attempt ended, or a retry is queued) for another attempt at ``at``.
    False when the job moved on meanwhile (a later attempt is dialing)."""
    if job.status in ACTIVE_JOB_STATUSES:
        return False
    params = {"job_id": job.id, "job_attempt": job.attempt, "at": at}
    moved = bool(session.connection().execute(_REQUEUE, params).rowcount)
    session.expire(job)
    return moved


def close_queued(session: Session, job: CallJob, new_status: str, now: datetime) -> bool:
    """A queued job (a retry waiting) that must not dial again: ``skipped_dnc`` (its number
    opted out) or ``canceled`` (its lead moved to another run); the run may be done."""
    params = {"job_id": job.id, "job_attempt": job.attempt, "new_status": new_status}
    run_id = job.run_id
    closed = bool(session.connection().execute(_CLOSE_QUEUED, params).rowcount)
    session.expire(job)
    if closed:
        complete_run_if_done(session, run_id, now)
    return closed
