"""Claiming a job: in one transaction, under the business row's lock, count and mark.

The count of jobs ``dialing`` or ``in_call`` *is* the concurrency: there is no slot store to
drift. The attempt and its Call row are committed before the provider is asked, so a message
delivered twice, or a worker that dies after the provider answered, can never create a second
call for the same attempt (``calls`` is unique on job and attempt).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from libs.common import metrics
from libs.common.campaigns.call_state import complete_run_if_done
from libs.common.models import (
    ACTIVE_JOB_STATUSES,
    Business,
    Call,
    CallJob,
    CallJobStatus,
    DncEntry,
    Run,
    RunStatus,
)
from libs.common.telephony.calling_window import next_allowed

DAILY_RUN_KIND = "daily"

#: Jobs looked at per claim; those outside their window are pushed to its opening.
CANDIDATES = 20


@dataclass(frozen=True)
class Claim:
    job_id: int
    call_id: int
    attempt: int
    business_id: int
    phone: str


def active_calls(session: Session, business_id: int) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(CallJob)
        .where(CallJob.business_id == business_id, CallJob.status.in_(ACTIVE_JOB_STATUSES))
    )
    return int(count or 0)


def _due_jobs(business_id: int, now: datetime) -> select:  # type: ignore[type-arg]
    return (
        select(CallJob, Run)
        .join(Run, Run.id == CallJob.run_id)
        .where(
            CallJob.business_id == business_id,
            CallJob.status == CallJobStatus.QUEUED,
            Run.status == RunStatus.RUNNING,
            or_(CallJob.next_attempt_at.is_(None), CallJob.next_attempt_at <= now),
        )
    )


def has_due_work(session: Session, business_id: int, now: datetime) -> bool:
    """A cheap, unlocked look: free capacity and at least one due job."""
    business = session.get(Business, business_id)
    if business is None or active_calls(session, business_id) >= business.max_concurrent_calls:
        return False
    return session.execute(_due_jobs(business_id, now).limit(1)).first() is not None


def claim_next(session: Session, business_id: int, now: datetime) -> Claim | None:
    """Mark the next due job ``dialing`` with a new attempt and its Call row; caller commits."""
    business = session.get(Business, business_id, with_for_update=True)
    if business is None or active_calls(session, business_id) >= business.max_concurrent_calls:
        return None
    rows = session.execute(
        _due_jobs(business_id, now)
        .order_by(Run.id, CallJob.id)
        .limit(CANDIDATES)
        .with_for_update(of=CallJob, skip_locked=True)
    ).all()
    if not rows:
        return None
    blocked = set(
        session.scalars(
            select(DncEntry.phone_e164).where(
                DncEntry.business_id == business_id,
                DncEntry.phone_e164.in_({job.phone_e164 for job, _ in rows}),
            )
        )
    )
    for job, run in rows:
        if job.phone_e164 in blocked:
            job.status = CallJobStatus.SKIPPED_DNC
            job.error_code, job.error_message = "dnc", "the number is on the do-not-call list"
            complete_run_if_done(session, run.id, now)
            continue
        # A daily schedule fires at the time chosen for that contact: no campaign window.
        allowed = (
            now
            if run.kind == DAILY_RUN_KIND
            else next_allowed(now, job.timezone, run.window_start, run.window_end)
        )
        if allowed > now:
            job.next_attempt_at = allowed  # outside calling hours: wait, do not fail
            continue
        _observe_dispatch_gap(session, business_id, now)
        job.status = CallJobStatus.DIALING
        job.attempt += 1
        job.dialing_started_at = now
        job.next_attempt_at = None
        job.provider_call_sid = None
        job.error_code = job.error_message = None
        call = Call(
            business_id=business_id,
            run_id=run.id,
            job_id=job.id,
            lead_id=job.lead_id,
            attempt=job.attempt,
            to_number=job.phone_e164,
            status="queued",
        )
        session.add(call)
        session.flush()
        return Claim(job.id, call.id, job.attempt, business_id, job.phone_e164)
    return None


def _observe_dispatch_gap(session: Session, business_id: int, now: datetime) -> None:
    # The gap is measured only when a slot was freed since the last call was created:
    # otherwise nothing was waiting on a slot.
    last_end, last_create = session.execute(
        select(func.max(Call.ended_at), func.max(Call.created_at)).where(
            Call.business_id == business_id
        )
    ).one()
    if last_end is not None and (last_create is None or last_end >= last_create):
        metrics.DISPATCH_GAP.observe(max(0.0, (now - last_end).total_seconds()))
