"""The reconciler's repairs. Each is idempotent and counted; together they make a run survive
the loss of every worker and of the whole Redis data set."""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import func, select, update
from twilio.base.exceptions import TwilioException

from libs.campaigns.lifecycle import conditions, followups
from libs.campaigns.lifecycle import status as lifecycle
from libs.campaigns.lifecycle.dialing import Claim, businesses_with_due_work
from libs.campaigns.lifecycle.status import complete_run_if_done
from libs.common import metrics
from libs.common.call_status import (
    ACTIVE_JOB_STATUSES,
    FINAL_CALL_STATUSES,
    NO_PROVIDER_CALL_ID,
    OPEN_JOB_STATUSES,
    STATUS_RANK,
)
from libs.common.contracts import SCHEDULES_PLACE_CALL
from libs.common.models import (
    BackgroundJob,
    Call,
    CallEvent,
    CallJob,
    CallJobStatus,
    JobStatus,
    OccurrenceStatus,
    Run,
    RunStatus,
    ScheduleOccurrence,
)
from libs.queueops.middleware.worker_context import WorkerContext
from libs.queueops.outbox import enqueue_after_commit, send_committed
from services.worker.dialer import lookup
from services.worker.dialer.placer import place_call

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
    "callback_unapplied_resent",
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


def resolve_dialing_without_call_id(ctx: WorkerContext, now: datetime) -> int:
    """A job dialing with no provider call id after the creation window: its worker died
    between the claim and the provider's answer, or the answer was lost. The provider says
    whether the call exists: adopted if it does, placed again (same attempt) if not."""
    window_s = conditions.creation_window_s(ctx.settings.dialing_timeout_s)
    with ctx.database.session() as session:
        stuck = session.execute(
            select(
                CallJob.id,
                CallJob.attempt,
                CallJob.business_id,
                CallJob.phone_e164,
                CallJob.dialing_started_at,
                Call.id,
                Call.provider_call_sid,
                Run.status,
            )
            .join(Call, (Call.job_id == CallJob.id) & (Call.attempt == CallJob.attempt))
            .join(Run, Run.id == CallJob.run_id)
            .where(conditions.stuck_dialing(now, window_s))
            .limit(MAX_PROVIDER_LOOKUPS)
        ).all()
    count = 0
    for job_id, attempt, business_id, phone, started, call_id, sid, run_status in stuck:
        assert started is not None  # stuck_dialing compares it
        claim = Claim(job_id, call_id, attempt, business_id, phone)
        if sid is not None:  # a callback attached it to the call: the job learns it
            count += _adopt(ctx, claim, sid, None, now)
            continue
        with ctx.database.session() as session:
            known = {sid for sid in session.scalars(
                select(Call.provider_call_sid).where(
                    Call.job_id == job_id, Call.provider_call_sid.is_not(None)
                )
            ) if sid}  # fmt: skip
        try:
            remote = lookup.find_call(ctx, phone, started, known)
        except (TwilioException, requests.RequestException) as exc:
            logger.warning("reconciler: provider look-up for job %s failed: %s", job_id, exc)
            continue
        if remote is not None:
            count += _adopt(ctx, claim, str(remote.sid), remote, now)
        elif run_status == RunStatus.CANCELED:
            count += _not_placed(ctx, claim, now)  # a cancel stops new dials
        else:
            count += _place_again(ctx, claim, started, now)
    return _repaired("dialing_without_call_id", count)


def _adopt(ctx: WorkerContext, claim: Claim, sid: str, remote: Any | None, now: datetime) -> int:
    """The call exists: store its id (applying callbacks kept for it), then the provider's
    status if it says more than they did."""
    with ctx.database.session() as session:
        call = lifecycle.lock_call(session, call_id=claim.call_id)
        if call is None or call.provider_call_sid not in (None, sid):
            return 0
        applied = lifecycle.attach_sid(session, call, sid, now)
        if remote is not None and str(remote.status) in STATUS_RANK:
            update_ = lifecycle.StatusUpdate(
                status=str(remote.status),
                duration_s=int(remote.duration) if remote.duration else None,
                answered_by=remote.answered_by,
            )
            applied.append(lifecycle.apply_status(session, call, update_, now))
        for outgoing in (o for a in applied for o in a.followups):
            enqueue_after_commit(session, outgoing, ctx.broker)
        session.commit()
    logger.warning("reconciler: job %s attempt %s adopted provider call %s", claim.job_id,
                   claim.attempt, sid)  # fmt: skip
    return 1


def _not_placed(ctx: WorkerContext, claim: Claim, now: datetime) -> int:
    """The provider has no call for the attempt and its run was canceled since the claim: the
    attempt ends failed rather than dialing after the cancel."""
    with ctx.database.session() as session:
        call = lifecycle.lock_call(session, call_id=claim.call_id)
        if call is None or call.provider_call_sid is not None:
            return 0
        reason = "the run was canceled before its call was placed"
        for outgoing in lifecycle.fail_attempt(session, call, NO_PROVIDER_CALL_ID, reason, now):
            enqueue_after_commit(session, outgoing, ctx.broker)
        session.commit()
    return 1


def _place_again(ctx: WorkerContext, claim: Claim, started: datetime, now: datetime) -> int:
    """The provider has no call for the attempt after the creation window: place it (the
    attempt's window restarts first, so a second reconciler does not place it too)."""
    with ctx.database.session() as session:
        if not lifecycle.restart_dialing(session, claim.job_id, claim.attempt, started, now):
            return 0
        session.commit()
    wait = ctx.limiter.try_acquire()
    if wait > 0:
        time.sleep(min(wait, 1.0))
    logger.warning("reconciler: job %s attempt %s has no provider call; placing it again",
                   claim.job_id, claim.attempt)  # fmt: skip
    place_call(ctx, claim)
    return 1


def check_calls_without_final_status(ctx: WorkerContext, now: datetime) -> int:
    """Calls past the maximum duration with no final status lost their callbacks: ask the
    provider and apply its answer, exactly as a callback would be applied. So are calls failed
    as never created whose id turned up later (their final callback may be lost too)."""
    with ctx.database.session() as session:
        stale = session.execute(
            select(Call.id, Call.provider_call_sid)
            .where(conditions.unfinished(now, ctx.settings.call_max_duration_s))
            .limit(MAX_PROVIDER_LOOKUPS)
        ).all()
    count = 0
    for call_id, sid in stale:
        try:
            remote = ctx.twilio.calls(sid).fetch()
        except TwilioException as exc:
            logger.warning("reconciler: provider look-up of %s failed: %s", sid, exc)
            continue
        update_ = lifecycle.StatusUpdate(
            status=str(remote.status),
            duration_s=int(remote.duration) if remote.duration else None,
            answered_by=remote.answered_by,
        )
        with ctx.database.session() as session:
            call = lifecycle.lock_call(session, call_id=call_id)
            if call is None or update_.status not in FINAL_CALL_STATUSES:
                continue
            applied = lifecycle.apply_status(session, call, update_, now)
            for outgoing in applied.followups:
                enqueue_after_commit(session, outgoing, ctx.broker)
            session.commit()
        if applied.moved:
            count += 1
    return _repaired("call_status_from_provider", count)


def redispatch(ctx: WorkerContext, now: datetime) -> int:
    """Businesses with due work and free capacity get a dispatch: messages lost with Redis,
    or retries whose delay has passed, are picked up here."""
    with ctx.database.session() as session:
        due = businesses_with_due_work(session, now)
    # Coalesced like any dispatch: a business whose dispatch is waiting gets no second one
    # (a slot is only ever free for a moment between a call's end and that dispatch). A lost
    # message's mark expires within DISPATCH_MARK_TTL_S, and the next pass sends it then.
    send_committed([followups.dispatch(business_id) for business_id in due], ctx.broker)
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
                conditions.RECORDING_UNPROCESSED,
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
                conditions.NEEDS_LEAD,
                Call.ended_at < now - timedelta(seconds=OCCURRENCE_REQUEUE_AFTER_S),
                Call.ended_at > now - timedelta(days=1),
            )
            .limit(500)
        ).all()
    outgoing = [o for sid in sids if sid
                for o in (followups.lead_from_call(sid), followups.recording(sid))]  # fmt: skip
    outgoing += [followups.lead_from_call(sid) for sid in set(leadless) - set(sids) if sid]
    send_committed(outgoing, ctx.broker)
    return _repaired("inbound_followup_resent", len(set(sids) | set(leadless)))


def resend_unapplied_callbacks(ctx: WorkerContext, now: datetime) -> int:
    """Status callbacks stored but never applied, of a known call, lost their
    ``calls.status_changed``: send it again, one per call (it applies all of the call's
    pending callbacks; idempotent)."""
    with ctx.database.session() as session:
        rows = session.execute(
            select(CallEvent.provider_call_sid, CallEvent.status)
            .where(conditions.callback_unapplied(now))
            .order_by(CallEvent.received_at)
            .limit(500)
        ).all()
    calls = dict(rows)
    outgoing = [followups.status_changed(sid, status, None, None) for sid, status in calls.items()]
    send_committed(outgoing, ctx.broker)
    return _repaired("callback_unapplied_resent", len(calls))


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
