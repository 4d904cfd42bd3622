"""The reconciler's repairs. Each is idempotent and counted; together they make a run survive
the loss of every worker and of the whole Redis data set."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from twilio.base.exceptions import TwilioException

from libs.common import metrics
from libs.common.campaigns.call_state import (
    NEEDS_LEAD,
    NO_PROVIDER_CALL_ID,
    StatusUpdate,
    apply_status,
    complete_run_if_done,
    fail_job,
    lock_call,
)
from libs.common.contracts import (
    DIALER_DISPATCH,
    LEADS_CREATE_FROM_CALL,
    RECORDINGS_PROCESS,
    SCHEDULES_PLACE_CALL,
)
from libs.common.middleware.worker_context import WorkerContext
from libs.common.models import (
    ACTIVE_JOB_STATUSES,
    FINAL_CALL_STATUSES,
    OPEN_JOB_STATUSES,
    BackgroundJob,
    Call,
    CallJob,
    CallJobStatus,
    JobStatus,
    OccurrenceStatus,
    Run,
    RunStatus,
    ScheduleOccurrence,
)
from services.worker.dialer.claim import has_due_work

logger = logging.getLogger(__name__)

#: A pending occurrence older than this lost its place_call message (retries end well before).
OCCURRENCE_REQUEUE_AFTER_S = 120
#: Provider look-ups per pass, so one pass stays short however much is stale.
MAX_PROVIDER_LOOKUPS = 100

#: Every kind of repair, exported at zero from the start so rate() and alerts see it.
REPAIRS = (
    "stalled_background_job",
    "dialing_without_call_id",
    "call_status_from_provider",
    "redispatch",
    "run_completed",
    "schedule_occurrence_requeued",
    "inbound_followup_resent",
    "daily_run_reopened",
)
for _kind in REPAIRS:
    metrics.RECONCILER_REPAIRS.labels(_kind)


def _repaired(kind: str, count: int) -> int:
    if count:
        metrics.RECONCILER_REPAIRS.labels(kind).inc(count)
        logger.warning("reconciler: %s x %d", kind, count)
    return count


def fail_stalled_background_jobs(ctx: WorkerContext, now: datetime) -> int:
    """Jobs queued or running with no progress past the stall limit lost their message or
    their worker: fail them visibly rather than leave a progress bar spinning."""
    stall_s = ctx.settings.background_job_stall_s
    with ctx.database.session() as session:
        result = session.execute(
            update(BackgroundJob)
            .where(
                BackgroundJob.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                BackgroundJob.updated_at < now - timedelta(seconds=stall_s),
            )
            .values(
                status=JobStatus.FAILED,
                error_code="stalled",
                error_message=f"no progress for {stall_s:g} s; the work was lost and stopped",
                finished_at=now,
            )
        )
        session.commit()
    return _repaired("stalled_background_job", int(result.rowcount or 0))  # type: ignore[attr-defined]


def fail_dialing_without_call_id(ctx: WorkerContext, now: datetime) -> int:
    """A job dialing with no provider call id after the timeout never got its call created
    (or its creator died before the provider answered): it must not block a slot forever."""
    timeout_s = ctx.settings.dialing_timeout_s
    count = 0
    with ctx.database.session() as session:
        jobs = session.scalars(
            select(CallJob)
            .where(
                CallJob.status == CallJobStatus.DIALING,
                CallJob.provider_call_sid.is_(None),
                CallJob.dialing_started_at < now - timedelta(seconds=timeout_s),
            )
            .with_for_update(skip_locked=True)
        ).all()
        for job in jobs:
            call = session.scalar(
                select(Call).where(Call.job_id == job.id, Call.attempt == job.attempt)
            )
            if call is not None and call.provider_call_sid:
                job.provider_call_sid = call.provider_call_sid  # a callback attached it
                continue
            fail_job(
                session,
                job,
                NO_PROVIDER_CALL_ID,
                f"no provider call id {timeout_s:g} s after dialing started",
                now,
                call,
            )
            count += 1
        session.commit()
    return _repaired("dialing_without_call_id", count)


def check_calls_without_final_status(ctx: WorkerContext, now: datetime) -> int:
    """Calls past the maximum duration with no final status lost their callbacks: ask the
    provider and apply its answer, exactly as a callback would be applied. So are calls failed
    as never created whose id turned up later (their final callback may be lost too)."""
    cutoff = now - timedelta(seconds=ctx.settings.call_max_duration_s)
    with ctx.database.session() as session:
        stale = session.execute(
            select(Call.id, Call.provider_call_sid)
            .where(
                or_(
                    Call.status.not_in(FINAL_CALL_STATUSES),
                    (Call.status == "failed") & (Call.error_code == NO_PROVIDER_CALL_ID),
                ),
                Call.provider_call_sid.is_not(None),
                Call.created_at < cutoff,
            )
            .limit(MAX_PROVIDER_LOOKUPS)
        ).all()
    count = 0
    for call_id, sid in stale:
        try:
            remote = ctx.twilio.calls(sid).fetch()
        except TwilioException as exc:
            logger.warning("reconciler: provider look-up of %s failed: %s", sid, exc)
            continue
        update_ = StatusUpdate(
            status=str(remote.status),
            duration_s=int(remote.duration) if remote.duration else None,
            answered_by=remote.answered_by,
        )
        with ctx.database.session() as session:
            call = lock_call(session, call_id=call_id)
            if call is None or update_.status not in FINAL_CALL_STATUSES:
                continue
            applied = apply_status(session, call, update_, now)
            session.commit()
        if applied.moved:
            count += 1
    return _repaired("call_status_from_provider", count)


def redispatch(ctx: WorkerContext, now: datetime) -> int:
    """Businesses with due work and free capacity get a dispatch: messages lost with Redis,
    or retries whose delay has passed, are picked up here."""
    with ctx.database.session() as session:
        business_ids = session.scalars(
            select(CallJob.business_id)
            .join(Run, Run.id == CallJob.run_id)
            .where(
                Run.status == RunStatus.RUNNING,
                CallJob.status == CallJobStatus.QUEUED,
                or_(CallJob.next_attempt_at.is_(None), CallJob.next_attempt_at <= now),
            )
            .distinct()
        ).all()
        due = [b for b in business_ids if has_due_work(session, b, now)]
    for business_id in due:
        ctx.broker.enqueue(DIALER_DISPATCH.message(business_id=business_id))
    if due:
        metrics.RECONCILER_REPAIRS.labels("redispatch").inc(len(due))
    return len(due)


def requeue_pending_occurrences(ctx: WorkerContext, now: datetime) -> int:
    """Occurrences still pending long after their message was sent lost it (a Redis flush, a
    crash between commit and send): send it again. Placing is idempotent per occurrence."""
    with ctx.database.session() as session:
        rows = session.execute(
            select(ScheduleOccurrence.schedule_id, ScheduleOccurrence.local_date)
            .where(
                ScheduleOccurrence.status == OccurrenceStatus.PENDING,
                ScheduleOccurrence.created_at < now - timedelta(seconds=OCCURRENCE_REQUEUE_AFTER_S),
            )
            .order_by(ScheduleOccurrence.created_at)
            .limit(1000)
        ).all()
    for schedule_id, local_date in rows:
        message = SCHEDULES_PLACE_CALL.message(
            schedule_id=schedule_id, local_date=local_date.isoformat()
        )
        ctx.broker.enqueue(message)
    return _repaired("schedule_occurrence_requeued", len(rows))


def resend_inbound_followups(ctx: WorkerContext, now: datetime) -> int:
    """Inbound calls that ended a while ago with an unprocessed recording lost their follow-up
    messages: send both again (each is idempotent)."""
    with ctx.database.session() as session:
        sids = session.scalars(
            select(Call.provider_call_sid)
            .where(
                Call.direction == "inbound",
                Call.recording_path.is_not(None),
                Call.recording_sha256.is_(None),
                Call.ended_at < now - timedelta(seconds=OCCURRENCE_REQUEUE_AFTER_S),
                Call.ended_at > now - timedelta(days=1),
            )
            .limit(500)
        ).all()
        # A call that never streamed (the caller hung up first) still makes a lead, from its
        # final status callback; one whose message was lost has no lead yet.
        leadless = session.scalars(
            select(Call.provider_call_sid)
            .where(
                NEEDS_LEAD,
                Call.ended_at < now - timedelta(seconds=OCCURRENCE_REQUEUE_AFTER_S),
                Call.ended_at > now - timedelta(days=1),
            )
            .limit(500)
        ).all()
    for sid in sids:
        assert sid is not None
        ctx.broker.enqueue(LEADS_CREATE_FROM_CALL.message(call_sid=sid))
        ctx.broker.enqueue(RECORDINGS_PROCESS.message(call_sid=sid))
    for sid in set(leadless) - set(sids):
        assert sid is not None
        ctx.broker.enqueue(LEADS_CREATE_FROM_CALL.message(call_sid=sid))
    return _repaired("inbound_followup_resent", len(set(sids) | set(leadless)))


def reopen_daily_runs_with_queued_jobs(ctx: WorkerContext, now: datetime) -> int:
    """A daily run can complete in the instant a schedule adds a job to it (the completing
    transaction did not see the new job yet). Such a run is reopened so the job is dialed."""
    with ctx.database.session() as session:
        queued = select(CallJob.run_id).where(CallJob.status == CallJobStatus.QUEUED)
        result = session.execute(
            update(Run)
            .where(
                Run.kind == "daily",
                Run.status == RunStatus.COMPLETED,
                Run.id.in_(queued),
            )
            .values(status=RunStatus.RUNNING, finished_at=None)
        )
        session.commit()
    return _repaired("daily_run_reopened", int(result.rowcount or 0))  # type: ignore[attr-defined]


def complete_finished_runs(ctx: WorkerContext, now: datetime) -> int:
    with ctx.database.session() as session:
        open_runs = select(CallJob.run_id).where(CallJob.status.in_(OPEN_JOB_STATUSES))
        run_ids = session.scalars(
            select(Run.id).where(
                Run.status.in_([RunStatus.RUNNING, RunStatus.CANCELED]),
                Run.finished_at.is_(None),
                Run.id.not_in(open_runs),
            )
        ).all()
        count = sum(1 for run_id in run_ids if complete_run_if_done(session, run_id, now))
        session.commit()
    return _repaired("run_completed", count)


#: Businesses this process has exported an active-calls value for.
_seen_active: set[str] = set()


def export_gauges(ctx: WorkerContext) -> None:
    """Active calls and runs by status, from rows: the gauges never drift from the truth."""
    with ctx.database.session() as session:
        active = session.execute(
            select(CallJob.business_id, func.count())
            .where(CallJob.status.in_(ACTIVE_JOB_STATUSES))
            .group_by(CallJob.business_id)
        ).all()
        runs = Counter(
            {status: n for status, n in session.execute(
                select(Run.status, func.count()).group_by(Run.status)
            ).all()}
        )  # fmt: skip
    # Gauges cannot be cleared in multiprocess mode: businesses seen active before and idle
    # now are set back to zero explicitly.
    current = {str(business_id): n for business_id, n in active}
    for business_id in _seen_active - current.keys():
        metrics.ACTIVE_CALLS.labels(business_id).set(0)
    for business_id, n in current.items():
        metrics.ACTIVE_CALLS.labels(business_id).set(n)
    _seen_active.update(current)
    for status in RunStatus:
        metrics.RUNS_BY_STATUS.labels(status.value).set(runs.get(status, 0))
