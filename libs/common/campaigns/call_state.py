"""Applying a call status: forward-only, and the job and run follow from it.

Used for Twilio's status callbacks, for callbacks kept until the call's id was known, and for
the reconciler's answers from the provider, so a status has the same effect whichever way it
arrives.

Written with SQL expressions on the tables rather than ORM objects: this runs once per status
callback, the calls service's hottest path, and the ORM's identity map and unit of work cost
several times the statements themselves (docs/benchmarks.md, webhook ingest). Each step is one
statement: lock the call, move it, touch the lead, lock the job with its run, move the job,
complete the run when nothing is left open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, case, exists, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from libs.common import metrics
from libs.common.db import update_by_id
from libs.common.models import (
    OPEN_JOB_STATUSES,
    STATUS_RANK,
    Call,
    CallEvent,
    CallJob,
    CallJobStatus,
    Lead,
    Run,
    RunStatus,
)
from libs.common.models.call import FINAL_CALL_STATUSES

CALLS = cast(Table, Call.__table__)
JOBS = cast(Table, CallJob.__table__)
RUNS = cast(Table, Run.__table__)
LEADS = cast(Table, Lead.__table__)
EVENTS = cast(Table, CallEvent.__table__)

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


@dataclass
class LockedCall:
    """What applying a status reads of a call, taken under the call's row lock; kept up to
    date as statuses are applied to it."""

    id: int
    business_id: int
    job_id: int | None
    lead_id: int | None
    attempt: int
    direction: str
    status: str
    error_code: str | None
    provider_call_sid: str | None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_CALL_STATUSES


_LOCKED_CALL_COLUMNS = [CALLS.c[name] for name in LockedCall.__dataclass_fields__]


@dataclass(frozen=True)
class Applied:
    """What applying a status changed: whether to dispatch again, and when."""

    moved: bool
    slot_freed: bool = False
    retry_at: datetime | None = None
    business_id: int | None = None


def _lock_call_where(*where: ColumnElement[bool]) -> Any:
    return select(*_LOCKED_CALL_COLUMNS).where(*where).with_for_update()


_LOCK_CALL_BY_ID = _lock_call_where(CALLS.c.id == bindparam("call_id"))
_LOCK_CALL_BY_SID = _lock_call_where(CALLS.c.provider_call_sid == bindparam("sid"))
_LOCK_CALL_BY_ATTEMPT = _lock_call_where(
    CALLS.c.job_id == bindparam("job_id"), CALLS.c.attempt == bindparam("attempt")
)


def lock_call(
    session: Session,
    *,
    call_id: int | None = None,
    sid: str | None = None,
    job_attempt: tuple[int, int] | None = None,
) -> LockedCall | None:
    """The call with this id, provider call id, or (job, attempt), locked (FOR UPDATE) until
    the transaction ends. Every writer of a call's status takes this lock before the job's."""
    if call_id is not None:
        result = session.connection().execute(_LOCK_CALL_BY_ID, {"call_id": call_id})
    elif sid is not None:
        result = session.connection().execute(_LOCK_CALL_BY_SID, {"sid": sid})
    elif job_attempt is not None:
        job_id, attempt = job_attempt
        result = session.connection().execute(
            _LOCK_CALL_BY_ATTEMPT, {"job_id": job_id, "attempt": attempt}
        )
    else:
        raise TypeError("lock_call needs call_id, sid or job_attempt")
    row = result.first()
    return LockedCall(*row) if row is not None else None


def moves(call: LockedCall, new: StatusUpdate) -> bool:
    """Whether applying ``new`` changes ``call``: only forward, or the provider's final word
    replacing the reconciler's guess."""
    if new.status in FINAL_CALL_STATUSES and _inferred_failure(call):
        return True
    return STATUS_RANK[new.status] > STATUS_RANK.get(call.status, 0)


def apply_status(session: Session, call: LockedCall, new: StatusUpdate, now: datetime) -> Applied:
    """Move ``call`` (locked by the caller) forward to ``new.status``; never backwards."""
    if new.status not in STATUS_RANK:
        raise ValueError(f"unknown call status {new.status!r}")
    if not moves(call, new):
        return Applied(moved=False, business_id=call.business_id)
    final = new.status in FINAL_CALL_STATUSES
    if final and _inferred_failure(call):
        return _correct_inferred_failure(session, call, new, now)
    _move_call(session, call, new, now)
    if call.job_id is None:
        return Applied(moved=True, business_id=call.business_id)
    job = _lock_job(session, call.job_id)
    # A job only follows the call of its current attempt, and only while that call is active.
    if job is None or job.attempt != call.attempt or job.status not in OPEN_JOB_STATUSES:
        return Applied(moved=True, business_id=call.business_id)
    changes: dict[str, Any] = {}
    if call.provider_call_sid and not job.provider_call_sid:
        changes["provider_call_sid"] = call.provider_call_sid
    if not final:
        if new.status == "in-progress":
            changes["status"] = CallJobStatus.IN_CALL
        update_by_id(session, JOBS, job.id, changes)
        return Applied(moved=True, business_id=call.business_id)
    retry_at = _finish_job(session, job, new, now, changes)
    return Applied(moved=True, slot_freed=True, retry_at=retry_at, business_id=call.business_id)


def _move_call(
    session: Session, call: LockedCall, new: StatusUpdate, now: datetime, **extra: Any
) -> None:
    changes: dict[str, Any] = {"status": new.status, **extra}
    if new.answered_by:
        changes["answered_by"] = new.answered_by
    if new.duration_s is not None:
        changes["duration_s"] = new.duration_s
    final = new.status in FINAL_CALL_STATUSES
    if final:
        changes["ended_at"] = now
        if new.error_code:
            changes["error_code"] = new.error_code
            changes["error_message"] = new.error_message
    update_by_id(session, CALLS, call.id, changes)
    call.status = new.status
    call.error_code = changes.get("error_code", call.error_code)
    metrics.CALL_STATUSES.labels(new.status).inc()
    if final and call.lead_id is not None:
        # Only the outcome matters on the lead; intermediate statuses would be three more writes.
        update_by_id(
            session, LEADS, call.lead_id, {"last_call_status": new.status, "last_called_at": now}
        )


@dataclass(frozen=True)
class _LockedJob:
    id: int
    status: CallJobStatus
    attempt: int
    run_id: int
    provider_call_sid: str | None
    run_status: RunStatus
    max_attempts: int
    retry_delay_s: int


_LOCK_JOB = (
    select(
        JOBS.c.id,
        JOBS.c.status,
        JOBS.c.attempt,
        JOBS.c.run_id,
        JOBS.c.provider_call_sid,
        RUNS.c.status,
        RUNS.c.max_attempts,
        RUNS.c.retry_delay_s,
    )
    .join_from(JOBS, RUNS, JOBS.c.run_id == RUNS.c.id)
    .where(JOBS.c.id == bindparam("job_id"))
    .with_for_update(of=JOBS)
)


def _lock_job(session: Session, job_id: int) -> _LockedJob | None:
    """The job (locked) with what its run says about retries (the run is not locked: cancel
    locks the run before its jobs)."""
    row = session.connection().execute(_LOCK_JOB, {"job_id": job_id}).first()
    return _LockedJob(*row) if row is not None else None


def _inferred_failure(call: LockedCall) -> bool:
    return call.status == "failed" and call.error_code == NO_PROVIDER_CALL_ID


def _correct_inferred_failure(
    session: Session, call: LockedCall, new: StatusUpdate, now: datetime
) -> Applied:
    """The provider's final status for a call the reconciler failed as never created: the
    provider's word replaces the guess, on the call and on its job, so the call log matches
    what happened. Nothing is retried or reopened: the job was already counted as finished and
    its slot given back; a busy or no-answer here is final."""
    call.error_code = None
    _move_call(session, call, new, now, error_code=None, error_message=None)
    if call.job_id is not None:
        session.execute(
            update(JOBS)
            .where(
                JOBS.c.id == call.job_id,
                JOBS.c.attempt == call.attempt,
                JOBS.c.status == CallJobStatus.FAILED,
                JOBS.c.error_code == NO_PROVIDER_CALL_ID,
            )
            .values(
                status=_FINAL_JOB_STATUS[new.status],
                error_code=new.error_code,
                error_message=new.error_message,
                provider_call_sid=case(
                    (JOBS.c.provider_call_sid.is_(None), call.provider_call_sid),
                    else_=JOBS.c.provider_call_sid,
                ),
            )
        )
    return Applied(moved=True, business_id=call.business_id)


def _finish_job(
    session: Session, job: _LockedJob, new: StatusUpdate, now: datetime, changes: dict[str, Any]
) -> datetime | None:
    retrying = (
        job.run_status in (RunStatus.RUNNING, RunStatus.PAUSED)
        and new.status in _RETRIED
        and job.attempt < job.max_attempts
    )
    if retrying:
        retry_at = now + timedelta(seconds=job.retry_delay_s)
        changes.update(
            status=CallJobStatus.QUEUED, next_attempt_at=retry_at, provider_call_sid=None
        )
        update_by_id(session, JOBS, job.id, changes)
        return retry_at
    changes["status"] = _FINAL_JOB_STATUS[new.status]
    if new.error_code:
        changes.update(error_code=new.error_code, error_message=new.error_message)
    update_by_id(session, JOBS, job.id, changes)
    complete_run_if_done(session, job.run_id, now)
    return None


def apply_pending_events(session: Session, call: LockedCall, now: datetime) -> list[Applied]:
    """Apply callbacks that arrived before the call's id was known, in status order."""
    if not call.provider_call_sid:
        return []
    events = session.execute(
        select(EVENTS.c.id, EVENTS.c.status, EVENTS.c.params)
        .where(EVENTS.c.provider_call_sid == call.provider_call_sid, EVENTS.c.applied.is_(False))
        .with_for_update()
    ).all()
    results = []
    for event_id, status, params in sorted(events, key=lambda e: STATUS_RANK.get(e.status, 0)):
        params = params or {}
        duration = str(params.get("CallDuration", ""))
        update_ = StatusUpdate(
            status=status,
            duration_s=int(duration) if duration.isdigit() else None,
            answered_by=params.get("AnsweredBy") or None,
            error_code=params.get("ErrorCode") or None,
            error_message=(params.get("ErrorMessage") or None) and params["ErrorMessage"][:500],
        )
        applied = apply_status(session, call, update_, now)
        if applied.moved:
            update_by_id(session, EVENTS, event_id, {"applied": True})
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


_COMPLETE_RUN = (
    update(RUNS)
    .where(
        RUNS.c.id == bindparam("run_id"),
        RUNS.c.status.in_((RunStatus.RUNNING, RunStatus.CANCELED)),
        RUNS.c.finished_at.is_(None),
        ~exists().where(JOBS.c.run_id == bindparam("run_id"), JOBS.c.status.in_(OPEN_JOB_STATUSES)),
    )
    .values(
        status=case(
            (RUNS.c.status == RunStatus.RUNNING, literal(RunStatus.COMPLETED, RUNS.c.status.type)),
            else_=RUNS.c.status,
        ),
        finished_at=bindparam("now", type_=RUNS.c.finished_at.type),
    )
    .returning(RUNS.c.status)
)


def complete_run_if_done(session: Session, run_id: int, now: datetime) -> bool:
    """A running (or canceled) run with no open job left is finished.

    One conditional UPDATE, so the run row is locked only when the run is found finished.
    Callers hold job rows, and cancel locks the run before the jobs: locking the run here
    first would order the locks both ways. The rare daily run completed while a new job was
    being added is reopened by the reconciler."""
    session.flush()  # jobs the caller changed through the ORM must count
    finished = (
        session.connection()
        .execute(_COMPLETE_RUN, {"run_id": run_id, "now": now})
        .scalar_one_or_none()
    )
    if finished is None:
        return False
    loaded = session.identity_map.get(identity_key(Run, run_id))
    if loaded is not None:  # a caller holding the Run reads what was just written
        session.expire(loaded)
    metrics.RUNS_FINISHED.labels(RunStatus(finished).value).inc()
    return True
