"""Claiming work for free slots: every free slot of a business, in one pass and one transaction.

The count of jobs ``dialing`` or ``in_call`` *is* the concurrency: there is no slot store to
drift. Under the business row's lock the free slots are counted, that many due jobs are taken
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so a second dispatcher never waits on them), moved
to ``dialing`` with a new attempt by one UPDATE, and given their Call rows by one INSERT. The
attempt and its Call row are committed before the provider is asked, so a message delivered
twice, or a worker that dies after the provider answered, can never create a second call for
the same attempt (``calls`` is unique on job and attempt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, bindparam, func, insert, literal, select, update
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle import conditions
from libs.campaigns.lifecycle import statements as sql
from libs.campaigns.lifecycle.status import complete_run_if_done
from libs.common import metrics
from libs.common.models import Business, Call, CallJob, CallJobStatus, DncEntry, Run
from libs.telephony.calling_window import next_allowed

#: Extra due jobs looked at per pass beyond the free slots: those on the do-not-call list or
#: outside their calling window are moved out of the way, and the next ones are taken instead.
SPARE_CANDIDATES = 20


@dataclass(frozen=True)
class Claim:
    job_id: int
    call_id: int
    attempt: int
    business_id: int
    phone: str
    #: What the run asks of the provider beyond the call (issue 21), read with the claim so
    #: placing costs no read of the run; None when the claim was made without them.
    record_calls: bool | None = None
    amd_mode: str | None = None


_BUSINESS_LIMIT = select(Business.max_concurrent_calls).where(
    Business.id == bindparam("business_id")
)
#: The first statement of every pass: the business row locked, so passes for one business run
#: one after another, and its limit.
_BUSINESS_LOCKED = _BUSINESS_LIMIT.with_for_update()
_ACTIVE = (
    select(func.count())
    .select_from(CallJob)
    .where(CallJob.business_id == bindparam("business_id"), conditions.active())
    .scalar_subquery()
)
_LAST_END = select(func.max(Call.ended_at)).where(Call.business_id == bindparam("business_id"))
_LAST_CREATE = select(func.max(Call.created_at)).where(Call.business_id == bindparam("business_id"))
#: Then, in a statement of its own (its snapshot is taken after the lock is ours, so it sees
#: the claims of the pass that held it): the active calls, and when the business's last call
#: ended and its last call was created (for the dispatch-gap metric).
_SLOTS = select(_ACTIVE, _LAST_END.scalar_subquery(), _LAST_CREATE.scalar_subquery())
_SKIPPED_DNC = (
    update(sql.JOBS)
    .where(sql.JOBS.c.id == bindparam("job_id"), sql.JOBS.c.status == CallJobStatus.QUEUED)
    .values(
        status=literal(CallJobStatus.SKIPPED_DNC, sql.JOBS.c.status.type),
        error_code="dnc",
        error_message="the number is on the do-not-call list",
    )
)
_WAITS_FOR_WINDOW = (
    update(sql.JOBS)
    .where(sql.JOBS.c.id == bindparam("job_id"))
    .values(next_attempt_at=bindparam("new_next_attempt_at", type_=sql.JOBS.c.next_attempt_at.type))
)
_CLAIMED = (
    update(sql.JOBS)
    .where(sql.JOBS.c.id == bindparam("job_id"), sql.JOBS.c.status == CallJobStatus.QUEUED)
    .values(
        status=literal(CallJobStatus.DIALING, sql.JOBS.c.status.type),
        attempt=sql.JOBS.c.attempt + 1,
        dialing_started_at=bindparam("now", type_=sql.JOBS.c.dialing_started_at.type),
        next_attempt_at=None,
        provider_call_sid=None,
        error_code=None,
        error_message=None,
    )
)
_CALLS_CREATED = insert(sql.CALLS).returning(
    sql.CALLS.c.id, sql.CALLS.c.job_id, sort_by_parameter_order=True
)


def _due_jobs() -> Any:
    """Built once, with bound parameters (``business_id``, ``now``, ``limit``): a statement
    built per pass would compute its cache key every time."""
    business_id: BindParameter[int] = bindparam("business_id")
    on_dnc_list = (
        select(DncEntry.phone_e164)
        .where(DncEntry.business_id == business_id, DncEntry.phone_e164 == CallJob.phone_e164)
        .exists()
    )
    return (
        select(
            CallJob.id,
            CallJob.phone_e164,
            CallJob.timezone,
            CallJob.lead_id,
            CallJob.attempt,
            Run.id,
            Run.kind,
            Run.window_start,
            Run.window_end,
            Run.record_calls,
            Run.amd_mode,
            on_dnc_list,
        )
        .join(Run, Run.id == CallJob.run_id)
        .where(
            CallJob.business_id == business_id,
            conditions.due(bindparam("now", type_=CallJob.next_attempt_at.type)),
        )
        .order_by(Run.id, CallJob.id)
        .limit(bindparam("limit"))
        .with_for_update(of=CallJob, skip_locked=True)
    )


_DUE_JOBS = _due_jobs()


def businesses_with_due_work(session: Session, now: datetime) -> list[int]:
    """Businesses with a free slot and at least one due job: one unlocked look, one statement
    (what a dispatch pass would find work in)."""
    due = (
        select(CallJob.id)
        .join(Run, Run.id == CallJob.run_id)
        .where(CallJob.business_id == Business.id, conditions.due(now))
        .exists()
    )
    active = (
        select(func.count())
        .select_from(CallJob)
        .where(CallJob.business_id == Business.id, conditions.active())
        .scalar_subquery()
    )
    query = select(Business.id).where(due, Business.max_concurrent_calls > active)
    return list(session.scalars(query.order_by(Business.id)))


def fill_slots(
    session: Session, business_id: int, now: datetime, reserve: Callable[[int], int] | None = None
) -> list[Claim]:
    """Claim a due job for every free slot of the business; the caller commits, then places.

    ``reserve(n)`` takes up to ``n`` of the account's calls-per-second slots and says how many
    it got: no more jobs than that are claimed."""
    # On the Connection: these statements read columns, not entities, so the ORM's execution
    # (its compile state and result processing) is overhead on the dialer's hot path.
    connection = session.connection()
    params = {"business_id": business_id}
    limit = connection.execute(_BUSINESS_LOCKED, params).scalar_one_or_none()
    if limit is None:
        return []
    active, last_end, last_create = connection.execute(_SLOTS, params).one()
    free = max(0, int(limit) - int(active))
    if not free:
        return []
    due = {"business_id": business_id, "now": now, "limit": free + SPARE_CANDIDATES}
    rows = connection.execute(_DUE_JOBS, due).all()
    if not rows:
        return []
    chosen: list[tuple[int, str, int | None, int, int, tuple[bool, str]]] = []
    finished_runs: set[int] = set()
    for row in rows:
        job_id, phone, timezone, lead_id, attempt, run_id, kind, start, end = row[:9]
        record_calls, amd_mode, blocked = row[9:]
        if len(chosen) == free:
            break
        if blocked:
            connection.execute(_SKIPPED_DNC, {"job_id": job_id})
            finished_runs.add(run_id)
            continue
        allowed = (
            now if kind == conditions.DAILY_RUN_KIND else next_allowed(now, timezone, start, end)
        )
        if allowed > now:  # outside calling hours: wait, do not fail
            connection.execute(
                _WAITS_FOR_WINDOW, {"job_id": job_id, "new_next_attempt_at": allowed}
            )
            continue
        chosen.append((job_id, phone, lead_id, attempt + 1, run_id, (record_calls, amd_mode)))
    for run_id in finished_runs:
        complete_run_if_done(session, run_id, now)
    granted = reserve(len(chosen)) if reserve is not None and chosen else len(chosen)
    chosen = chosen[:granted]
    if not chosen:
        return []
    # The gap is measured only when a slot was freed since the last call was created:
    # otherwise nothing was waiting on a slot.
    if last_end is not None and (last_create is None or last_end >= last_create):
        metrics.DISPATCH_GAP.observe(max(0.0, (now - last_end).total_seconds()))
    connection.execute(_CLAIMED, [{"job_id": job[0], "now": now} for job in chosen])
    created = connection.execute(
        _CALLS_CREATED,
        [
            {
                "business_id": business_id,
                "run_id": run_id,
                "job_id": job_id,
                "lead_id": lead_id,
                "attempt": attempt,
                "to_number": phone,
                "status": "queued",
                "direction": "outbound",
                "created_at": now,
                "updated_at": now,
            }
            for job_id, phone, lead_id, attempt, run_id, _ in chosen
        ],
    ).all()
    return [
        Claim(job_id, call_id, attempt, business_id, phone, *asks)
        for (call_id, _), (job_id, phone, _, attempt, _, asks) in zip(created, chosen, strict=True)
    ]
