"""Placing a schedule's call for one local date: once, through the campaigns dialer.

The occurrence row (unique per schedule and local date) is locked and moved from ``pending``
exactly once, in the same transaction that adds the call job to the business's daily run; the
job is unique per run and lead. A redelivered message, a retry after a crash, or a schedule
deleted and re-created the same day therefore still make one call per contact per local day.
The dialer then applies the business's concurrency limit, the CPS limit, the DNC list and the
status callbacks exactly as for a campaign.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle import followups
from libs.campaigns.lifecycle.conditions import DAILY_RUN_KIND
from libs.common import metrics
from libs.common.db import insert_ignoring_conflicts
from libs.common.models import (
    Business,
    CallJob,
    CallJobStatus,
    Lead,
    OccurrenceStatus,
    Run,
    RunStatus,
    Schedule,
    ScheduleOccurrence,
)
from libs.queueops.middleware.worker_context import WorkerContext
from libs.queueops.outbox import enqueue_after_commit
from services.worker.registry import MissingRow

logger = logging.getLogger(__name__)

for _status in ("queued", "missed", "placed", "skipped", "failed"):
    metrics.SCHEDULE_OCCURRENCES.labels(_status)


def parse_local_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise MissingRow(f"local_date {value!r} is not a YYYY-MM-DD date") from None


def place(ctx: WorkerContext, schedule_id: int, local_date: date, now: datetime) -> str:
    """Move the occurrence out of ``pending``; returns its status (unchanged if not pending)."""
    with ctx.database.session() as session:
        occurrence = session.scalar(
            select(ScheduleOccurrence)
            .where(
                ScheduleOccurrence.schedule_id == schedule_id,
                ScheduleOccurrence.local_date == local_date,
            )
            .with_for_update()
        )
        if occurrence is None:
            raise MissingRow(f"schedule {schedule_id} has no occurrence on {local_date}")
        if occurrence.status is not OccurrenceStatus.PENDING:
            return occurrence.status.value  # redelivered, or done by an earlier attempt
        schedule = session.get_one(Schedule, schedule_id)
        late = now - occurrence.due_at
        if not schedule.enabled:
            _finish(occurrence, OccurrenceStatus.SKIPPED, "the schedule was disabled")
        elif late > timedelta(seconds=ctx.settings.schedule_grace_s):
            _finish(
                occurrence,
                OccurrenceStatus.MISSED,
                f"placed {int(late.total_seconds())} s late, past the grace window",
            )
        else:
            _add_to_daily_run(session, ctx, schedule, occurrence, now)
        session.commit()
        return occurrence.status.value


def _add_to_daily_run(
    session: Session,
    ctx: WorkerContext,
    schedule: Schedule,
    occurrence: ScheduleOccurrence,
    now: datetime,
) -> None:
    business = session.get_one(Business, schedule.business_id)
    lead = session.get_one(Lead, schedule.lead_id)
    run = daily_run(session, business.id, occurrence.local_date, now)
    if run.status is RunStatus.CANCELED:
        _finish(occurrence, OccurrenceStatus.SKIPPED, "the daily run for this date was canceled")
        return
    values = {
        "run_id": run.id,
        "business_id": business.id,
        "lead_id": lead.id,
        "phone_e164": lead.phone_e164,
        "timezone": schedule.timezone,
        "status": CallJobStatus.QUEUED,
        "attempt": 0,
    }
    job_id = insert_ignoring_conflicts(session, CallJob.__table__, values)
    if job_id is None:
        # The contact already has today's call in this run (e.g. a re-created schedule).
        job_id = session.scalar(
            select(CallJob.id).where(CallJob.run_id == run.id, CallJob.lead_id == lead.id)
        )
    occurrence.call_job_id = job_id
    _finish(occurrence, OccurrenceStatus.PLACED, None)
    enqueue_after_commit(session, followups.dispatch(business.id, repairable=False), ctx.broker)


def daily_run(session: Session, business_id: int, local_date: date, now: datetime) -> Run:
    """The business's run for ``local_date``, created running, reopened if it had completed."""
    insert_ignoring_conflicts(
        session,
        Run.__table__,
        {
            "business_id": business_id,
            "name": f"Daily calls {local_date.isoformat()}",
            "kind": DAILY_RUN_KIND,
            "daily_date": local_date,
            "status": RunStatus.RUNNING,
            "started_at": now,
            # Not used for daily runs: a schedule's time is the contact's chosen time.
            "window_start": "00:00",
            "window_end": "23:59",
            "max_attempts": 1,
            "retry_delay_s": 0,
        },
    )
    run = session.scalars(
        select(Run)
        .where(Run.business_id == business_id, Run.daily_date == local_date)
        # NO KEY UPDATE: claims insert call rows referencing this run meanwhile (see runs API).
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()
    if run.status is RunStatus.COMPLETED:
        run.status, run.finished_at = RunStatus.RUNNING, None
    return run


def mark_failed(ctx: WorkerContext, schedule_id: int, local_date: date, error: str) -> None:
    """After the last attempt: the occurrence shows failed, with why."""
    with ctx.database.session() as session:
        occurrence = session.scalar(
            select(ScheduleOccurrence)
            .where(
                ScheduleOccurrence.schedule_id == schedule_id,
                ScheduleOccurrence.local_date == local_date,
            )
            .with_for_update()
        )
        if occurrence is None or occurrence.status is not OccurrenceStatus.PENDING:
            return
        _finish(occurrence, OccurrenceStatus.FAILED, error)
        session.commit()


def _finish(occurrence: ScheduleOccurrence, status: OccurrenceStatus, why: str | None) -> None:
    occurrence.status, occurrence.error_message = status, why
    metrics.SCHEDULE_OCCURRENCES.labels(status.value).inc()
    if status is not OccurrenceStatus.PLACED:
        logger.info(
            "schedule %s on %s: %s (%s)",
            occurrence.schedule_id,
            occurrence.local_date,
            status.value,
            why,
        )
