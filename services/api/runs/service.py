"""Runs: creation in one transaction with one job per lead, state changes, progress from rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, or_, select
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle.status import cancel_queued_jobs
from libs.common.call_status import ACTIVE_JOB_STATUSES, OPEN_JOB_STATUSES
from libs.common.models import (
    Business,
    CallJob,
    CallJobStatus,
    Lead,
    Run,
    RunStatus,
)

MAX_LEADS_PER_RUN = 100_000

#: Allowed transitions: action → (from states, to state).
TRANSITIONS: dict[str, tuple[frozenset[RunStatus], RunStatus]] = {
    "start": (frozenset({RunStatus.DRAFT}), RunStatus.RUNNING),
    "pause": (frozenset({RunStatus.RUNNING}), RunStatus.PAUSED),
    "resume": (frozenset({RunStatus.PAUSED}), RunStatus.RUNNING),
    "cancel": (
        frozenset({RunStatus.DRAFT, RunStatus.RUNNING, RunStatus.PAUSED}),
        RunStatus.CANCELED,
    ),
}


class InvalidTransition(Exception):
    pass


@dataclass(frozen=True)
class LeadSelection:
    lead_ids: list[int] | None = None
    source: str | None = None
    last_call_status: str | None = None
    q: str | None = None


def select_leads(session: Session, business_id: int, selection: LeadSelection) -> list[Lead]:
    query = select(Lead).where(Lead.business_id == business_id)
    if selection.lead_ids is not None:
        query = query.where(Lead.id.in_(selection.lead_ids))
    if selection.source:
        query = query.where(Lead.source == selection.source)
    if selection.last_call_status:
        query = query.where(Lead.last_call_status == selection.last_call_status)
    if selection.q:
        pattern = f"%{selection.q}%"
        query = query.where(or_(Lead.name.ilike(pattern), Lead.phone_e164.like(pattern)))
    return list(session.scalars(query.order_by(Lead.id).limit(MAX_LEADS_PER_RUN + 1)))


def create_run(
    session: Session, business: Business, leads: Iterable[Lead], **fields: Any
) -> tuple[Run, int]:
    run = Run(business_id=business.id, status=RunStatus.DRAFT, **fields)
    session.add(run)
    session.flush()
    jobs = [
        {
            "run_id": run.id,
            "business_id": business.id,
            "lead_id": lead.id,
            "phone_e164": lead.phone_e164,
            "timezone": lead.timezone or business.timezone,
            "status": CallJobStatus.QUEUED,
            "attempt": 0,
        }
        for lead in leads
    ]
    if jobs:
        # Core executemany: one statement for the whole run, no ORM objects per job.
        session.execute(cast(Table, CallJob.__table__).insert(), jobs)
    return run, len(jobs)


def transition(session: Session, run: Run, action: str, now: datetime) -> None:
    allowed, target = TRANSITIONS[action]
    if run.status not in allowed:
        raise InvalidTransition(f"cannot {action} a run that is {run.status.value}")
    run.status = target
    if action == "resume":
        run.paused_reason = None  # a person looked at why it paused itself
    if action == "start":
        run.started_at = now
    if action == "cancel":
        session.flush()  # the run's new status first: the run completes on it
        cancel_queued_jobs(session, run.id, now)


def progress(session: Session, runs: list[Run], now: datetime) -> dict[int, dict[str, Any]]:
    """Counts per job status, active calls, attempts and an ETA, for each run, from rows."""
    ids = [run.id for run in runs]
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    attempts: dict[int, int] = dict.fromkeys(ids, 0)
    if ids:
        for run_id, status, n, tries in session.execute(
            select(CallJob.run_id, CallJob.status, func.count(), func.sum(CallJob.attempt))
            .where(CallJob.run_id.in_(ids))
            .group_by(CallJob.run_id, CallJob.status)
        ):
            counts[run_id][status.value] = int(n)
            attempts[run_id] += int(tries or 0)
    out = {}
    for run in runs:
        by_status = {s.value: counts[run.id].get(s.value, 0) for s in CallJobStatus}
        total = sum(by_status.values())
        open_ = sum(by_status[s] for s in OPEN_JOB_STATUSES)
        done = total - open_
        eta = None
        if run.status is RunStatus.RUNNING and run.started_at and done and open_:
            elapsed = (now - run.started_at).total_seconds()
            eta = round(elapsed / done * open_, 1)
        out[run.id] = {
            "total": total,
            "done": done,
            "percent": round(100 * done / total, 1) if total else 100.0,
            "active_calls": sum(by_status[s] for s in ACTIVE_JOB_STATUSES),
            "attempts": attempts[run.id],
            "by_status": by_status,
            "eta_s": eta,
        }
    return out
