"""Applying a call status: forward-only, and the job and run follow from it.

Used for Twilio's status callbacks and for the reconciler's answers from the provider, so a
status has the same effect whichever way it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.common import metrics
from libs.common.models import (
    OPEN_JOB_STATUSES,
    STATUS_RANK,
    Call,
    CallJob,
    CallJobStatus,
    Lead,
    Run,
    RunStatus,
)
from libs.common.models.call import FINAL_CALL_STATUSES

#: Final call status → job status when no retry follows.
_FINAL_JOB_STATUS = {
    "completed": CallJobStatus.COMPLETED,
    "busy": CallJobStatus.BUSY,
    "no-answer": CallJobStatus.NO_ANSWER,
    "failed": CallJobStatus.FAILED,
    "canceled": CallJobStatus.CANCELED,
}
#: Outcomes that try again after the run's retry delay while attempts remain.
_RETRIED = frozenset({"busy", "no-answer"})
#: The reconciler's failure of an attempt whose call id never came in time. It is an inference
#: ("no call was created"), not the provider's word: the call may exist, its id held up by a
#: database outage or by callbacks that arrived late.
NO_PROVIDER_CALL_ID = "no_provider_call_id"

for _status in STATUS_RANK:  # exported at zero from the start
    metrics.CALL_STATUSES.labels(_status)


@dataclass(frozen=True)
class StatusUpdate:
    status: str
    duration_s: int | None = None
    answered_by: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class Applied:
    """What applying a status changed: whether to dispatch again, and when."""

    moved: bool
    slot_freed: bool = False
    retry_at: datetime | None = None
    business_id: int | None = None


def apply_status(session: Session, call: Call, update: StatusUpdate, now: datetime) -> Applied:
    """Move ``call`` (locked by the caller) forward to ``update.status``; never backwards."""
    if update.status not in STATUS_RANK:
        raise ValueError(f"unknown call status {update.status!r}")
    final = update.status in FINAL_CALL_STATUSES
    if final and _inferred_failure(call):
        return _correct_inferred_failure(session, call, update, now)
    if STATUS_RANK[update.status] <= STATUS_RANK.get(call.status, 0):
        return Applied(moved=False, business_id=call.business_id)
    _move_call(session, call, update, now)
    if call.job_id is None:
        return Applied(moved=True, business_id=call.business_id)
    job = session.get(CallJob, call.job_id, with_for_update=True)
    # A job only follows the call of its current attempt, and only while that call is active.
    if job is None or job.attempt != call.attempt or job.status not in OPEN_JOB_STATUSES:
        return Applied(moved=True, business_id=call.business_id)
    if call.provider_call_sid and not job.provider_call_sid:
        job.provider_call_sid = call.provider_call_sid
    if not final:
        if update.status == "in-progress":
            job.status = CallJobStatus.IN_CALL
        return Applied(moved=True, business_id=call.business_id)
    retry_at = _finish_job(session, job, call, update, now)
    return Applied(moved=True, slot_freed=True, retry_at=retry_at, business_id=call.business_id)


def _move_call(session: Session, call: Call, update: StatusUpdate, now: datetime) -> None:
    call.status = update.status
    if update.answered_by:
        call.answered_by = update.answered_by
    if update.duration_s is not None:
        call.duration_s = update.duration_s
    final = update.status in FINAL_CALL_STATUSES
    if final:
        call.ended_at = now
        if update.error_code:
            call.error_code = update.error_code
            call.error_message = update.error_message
    metrics.CALL_STATUSES.labels(update.status).inc()
    if final and call.lead_id is not None:
        # Only the outcome matters on the lead; intermediate statuses would be three more writes.
        lead = session.get(Lead, call.lead_id)
        if lead is not None:
            lead.last_call_status = update.status
            lead.last_called_at = now


def _inferred_failure(call: Call) -> bool:
    return call.status == "failed" and call.error_code == NO_PROVIDER_CALL_ID


def _correct_inferred_failure(
    session: Session, call: Call, update: StatusUpdate, now: datetime
) -> Applied:
    """The provider's final status for a call the reconciler failed as never created: the
    provider's word replaces the guess, on the call and on its job, so the call log matches
    what happened. Nothing is retried or reopened: the job was already counted as finished and
    its slot given back; a busy or no-answer here is final."""
    call.error_code = call.error_message = None
    _move_call(session, call, update, now)
    job = session.get(CallJob, call.job_id, with_for_update=True) if call.job_id else None
    if (
        job is not None
        and job.attempt == call.attempt
        and job.status is CallJobStatus.FAILED
        and job.error_code == NO_PROVIDER_CALL_ID
    ):
        job.status = _FINAL_JOB_STATUS[update.status]
        job.error_code, job.error_message = update.error_code, update.error_message
        job.provider_call_sid = job.provider_call_sid or call.provider_call_sid
    return Applied(moved=True, business_id=call.business_id)


def _finish_job(
    session: Session, job: CallJob, call: Call, update: StatusUpdate, now: datetime
) -> datetime | None:
    run = session.get(Run, job.run_id)
    retrying = (
        run is not None
        and run.status in (RunStatus.RUNNING, RunStatus.PAUSED)
        and update.status in _RETRIED
        and job.attempt < run.max_attempts
    )
    if retrying and run is not None:
        job.status = CallJobStatus.QUEUED
        job.next_attempt_at = now + timedelta(seconds=run.retry_delay_s)
        job.provider_call_sid = None
        return job.next_attempt_at
    job.status = _FINAL_JOB_STATUS[update.status]
    if update.error_code:
        job.error_code = update.error_code
        job.error_message = update.error_message
    complete_run_if_done(session, job.run_id, now)
    return None


def apply_pending_events(session: Session, call: Call, now: datetime) -> list[Applied]:
    """Apply callbacks that arrived before the call's id was known, in status order."""
    from libs.common.models import CallEvent

    if not call.provider_call_sid:
        return []
    events = session.scalars(
        select(CallEvent)
        .where(CallEvent.provider_call_sid == call.provider_call_sid, CallEvent.applied.is_(False))
        .with_for_update()
    ).all()
    results = []
    for event in sorted(events, key=lambda e: STATUS_RANK.get(e.status, 0)):
        params = event.params or {}
        duration = str(params.get("CallDuration", ""))
        update = StatusUpdate(
            status=event.status,
            duration_s=int(duration) if duration.isdigit() else None,
            answered_by=params.get("AnsweredBy") or None,
            error_code=params.get("ErrorCode") or None,
        )
        applied = apply_status(session, call, update, now)
        event.applied = applied.moved
        results.append(applied)
    return results


def fail_job(
    session: Session, job: CallJob, code: str, message: str, now: datetime, call: Call | None
) -> None:
    """A job that cannot go on (provider refused, no call id in time): final, with the reason."""
    job.status = CallJobStatus.FAILED
    job.error_code, job.error_message = code, message[:2000]
    if call is not None and not call.is_final:
        call.status = "failed"
        call.error_code, call.error_message = code, message[:2000]
        call.ended_at = now
        metrics.CALL_STATUSES.labels("failed").inc()
    complete_run_if_done(session, job.run_id, now)


def complete_run_if_done(session: Session, run_id: int, now: datetime) -> bool:
    """A running (or canceled) run with no open job left is finished."""
    # Not locked: callers hold job rows, and cancel locks the run before the jobs; taking the
    # run here would order the locks both ways. The rare daily run completed while a new job
    # was being added is reopened by the reconciler.
    run = session.get(Run, run_id)
    if run is None or run.status not in (RunStatus.RUNNING, RunStatus.CANCELED):
        return False
    if run.finished_at is not None:
        return False
    open_jobs = session.scalar(
        select(func.count())
        .select_from(CallJob)
        .where(CallJob.run_id == run_id, CallJob.status.in_(OPEN_JOB_STATUSES))
    )
    if open_jobs:
        return False
    if run.status is RunStatus.RUNNING:
        run.status = RunStatus.COMPLETED
    run.finished_at = now
    metrics.RUNS_FINISHED.labels(run.status.value).inc()
    return True
