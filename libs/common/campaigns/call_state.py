"""Applying a call status: forward-only, and the job and run follow from it.

Used for Twilio's status callbacks, for callbacks kept until the call's id was known, and for
the reconciler's answers from the provider, so a status has the same effect whichever way it
arrives.

Written with SQL expressions on the tables rather than ORM objects: this runs once per status
callback, the calls service's hottest path, and the ORM's identity map and unit of work cost
several times the statements themselves (docs/benchmarks.md, webhook ingest). Each step is one
statement: lock the call (reading its job's run with it), move it, touch the lead, move the
job if it still follows this call, complete the run when nothing is left open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    select,
    update,
)
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
#: An inbound call that should have made a lead and has none: the one definition that
#: ``leads.create_from_call`` acts on and the reconciler repairs by (a withheld caller never
#: makes one, so it is never "missing" one).
NEEDS_LEAD = and_(Call.direction == "inbound", Call.lead_id.is_(None), Call.caller_known)

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
    #: The run of the call's job, and what it says about retries; read with the call, not
    #: locked (cancel locks a run before its jobs). None without a job.
    run_id: int | None = None
    run_status: str | None = None
    max_attempts: int | None = None
    retry_delay_s: int | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_CALL_STATUSES


_CALL_FIELDS = ("id", "business_id", "job_id", "lead_id", "attempt", "direction", "status",
                "error_code", "provider_call_sid")  # fmt: skip
_LOCKED_CALL_COLUMNS = [
    *(CALLS.c[name] for name in _CALL_FIELDS),
    JOBS.c.run_id,
    RUNS.c.status,
    RUNS.c.max_attempts,
    RUNS.c.retry_delay_s,
]


@dataclass(frozen=True)
class Applied:
    """What applying a status changed: whether to dispatch again, and when."""

    moved: bool
    slot_freed: bool = False
    retry_at: datetime | None = None
    business_id: int | None = None


def _lock_call_where(*where: ColumnElement[bool]) -> Any:
    # Only the call is locked: the job is locked by the UPDATE that moves it, whose WHERE
    # re-checks, on the job's latest version, that it still follows this call.
    return (
        select(*_LOCKED_CALL_COLUMNS)
        .select_from(
            CALLS.outerjoin(JOBS, JOBS.c.id == CALLS.c.job_id).outerjoin(
                RUNS, RUNS.c.id == JOBS.c.run_id
            )
        )
        .where(*where)
        .with_for_update(of=CALLS)
    )


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
    if call.job_id is None or call.run_id is None:
        return Applied(moved=True, business_id=call.business_id)
    if not final:
        _follow_on_job(session, call, new)
        return Applied(moved=True, business_id=call.business_id)
    followed, retry_at = _finish_job(session, call, new, now)
    return Applied(moved=True, slot_freed=followed, retry_at=retry_at, business_id=call.business_id)


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


# A job follows the call of its current attempt, and only while the job is open. The WHERE
# says so, and the UPDATE's row lock makes it true of the job's latest version: a job canceled
# or moved on to its next attempt while the call's lock was awaited is left alone.
_JOB_FOLLOWS_CALL = (
    JOBS.c.id == bindparam("call_job_id"),
    JOBS.c.attempt == bindparam("call_attempt"),
    JOBS.c.status.in_(OPEN_JOB_STATUSES),
)
#: The call's provider id, on a job that does not have it yet (a callback may have attached it
#: to the call before the worker stored it).
_JOB_SID = func.coalesce(
    JOBS.c.provider_call_sid, bindparam("call_sid", type_=JOBS.c.provider_call_sid.type)
)
_JOB_TAKES_SID = (
    update(JOBS)
    .where(*_JOB_FOLLOWS_CALL, JOBS.c.provider_call_sid.is_(None))
    .values(provider_call_sid=bindparam("call_sid", type_=JOBS.c.provider_call_sid.type))
)
_JOB_IN_CALL = (
    update(JOBS)
    .where(*_JOB_FOLLOWS_CALL)
    .values(status=literal(CallJobStatus.IN_CALL, JOBS.c.status.type), provider_call_sid=_JOB_SID)
)
_JOB_RETRIES = (
    update(JOBS)
    .where(*_JOB_FOLLOWS_CALL)
    .values(
        status=literal(CallJobStatus.QUEUED, JOBS.c.status.type),
        next_attempt_at=bindparam("new_next_attempt_at", type_=JOBS.c.next_attempt_at.type),
        provider_call_sid=None,
    )
)
_JOB_FINISHES = (
    update(JOBS)
    .where(*_JOB_FOLLOWS_CALL)
    .values(status=bindparam("new_status", type_=JOBS.c.status.type), provider_call_sid=_JOB_SID)
)
_JOB_FINISHES_WITH_ERROR = _JOB_FINISHES.values(
    error_code=bindparam("new_error_code", type_=JOBS.c.error_code.type),
    error_message=bindparam("new_error_message", type_=JOBS.c.error_message.type),
)


def _job_params(call: LockedCall, **extra: Any) -> dict[str, Any]:
    params = {"call_job_id": call.job_id, "call_attempt": call.attempt}
    return params | {"call_sid": call.provider_call_sid} | extra


def _follow_on_job(session: Session, call: LockedCall, new: StatusUpdate) -> None:
    """A non-final status: the job is in a call once it is answered, and learns the call id."""
    if new.status == "in-progress":
        session.connection().execute(_JOB_IN_CALL, _job_params(call))
    elif call.provider_call_sid:
        session.connection().execute(_JOB_TAKES_SID, _job_params(call))


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
    session: Session, call: LockedCall, new: StatusUpdate, now: datetime
) -> tuple[bool, datetime | None]:
    """The job of a call that ended, queued again after the run's retry delay or final:
    whether the job still followed this call (its slot is free), and when a retry is due."""
    retrying = (
        call.run_status in (RunStatus.RUNNING, RunStatus.PAUSED)
        and new.status in _RETRIED
        and call.attempt < (call.max_attempts or 0)
    )
    connection = session.connection()
    if retrying:
        retry_at = now + timedelta(seconds=call.retry_delay_s or 0)
        result = connection.execute(_JOB_RETRIES, _job_params(call, new_next_attempt_at=retry_at))
        return (True, retry_at) if result.rowcount else (False, None)
    final = _FINAL_JOB_STATUS[new.status]
    if new.error_code:
        params = _job_params(
            call,
            new_status=final,
            new_error_code=new.error_code,
            new_error_message=new.error_message,
        )
        result = connection.execute(_JOB_FINISHES_WITH_ERROR, params)
    else:
        result = connection.execute(_JOB_FINISHES, _job_params(call, new_status=final))
    if not result.rowcount:
        return False, None
    assert call.run_id is not None  # apply_status moves jobs of calls with a run only
    complete_run_if_done(session, call.run_id, now)
    return True, None


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
