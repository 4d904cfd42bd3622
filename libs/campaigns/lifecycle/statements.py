"""The lifecycle's SQL, built once: SQL Core statements with bound parameters.

No ORM on the hot path: a status callback runs these once each, and the ORM's identity map and
unit of work cost several times the statements themselves (docs/benchmarks.md, webhook ingest).
Only this package executes the statements that write ``status``.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    update,
)

from libs.common.call_status import NO_PROVIDER_CALL_ID, OPEN_JOB_STATUSES
from libs.common.models import (
    Call,
    CallEvent,
    CallJob,
    CallJobStatus,
    Disposition,
    Lead,
    Run,
    RunStatus,
    WebhookEndpoint,
)

CALLS = cast(Table, Call.__table__)
JOBS = cast(Table, CallJob.__table__)
RUNS = cast(Table, Run.__table__)
LEADS = cast(Table, Lead.__table__)
EVENTS = cast(Table, CallEvent.__table__)
ENDPOINTS = cast(Table, WebhookEndpoint.__table__)
DISPOSITIONS = cast(Table, Disposition.__table__)

CALL_FIELDS = ("id", "business_id", "job_id", "lead_id", "attempt", "direction", "status",
               "error_code", "provider_call_sid")  # fmt: skip


def _one_of(column: ColumnElement[Any], values: Any) -> ColumnElement[bool]:
    """``column IN (…)`` of constants, rendered once with the statement. A plain ``in_`` is an
    "expanding" parameter, which SQLAlchemy renders into the SQL string again at every
    execution."""
    return column.in_([literal(value, column.type) for value in values])


_OTHER_JOBS = JOBS.alias("other_jobs")
LOCKED_CALL_COLUMNS = [
    *(CALLS.c[name] for name in CALL_FIELDS),
    JOBS.c.run_id,
    RUNS.c.status,
    RUNS.c.max_attempts,
    RUNS.c.retry_delay_s,
    # Whether the business has an enabled endpoint at all: without one, a call's end emits no
    # call.completed and needs no query of its own to find that out (one round trip and an
    # ORM query fewer per ended call, for most businesses).
    exists()
    .where(ENDPOINTS.c.business_id == CALLS.c.business_id, ENDPOINTS.c.enabled.is_(True))
    .label("has_endpoints"),
    # Whether the job's run has another open job: then the call's end cannot finish the run,
    # and the run's completion check (a statement of its own) is skipped. Read under the
    # call's lock, not the other jobs': one that ends meanwhile in another transaction cannot
    # see this job's end either, and the reconciler completes that run
    # (``complete_finished_runs``), as when the last two jobs of a run end at the same time.
    exists()
    .where(
        _OTHER_JOBS.c.run_id == JOBS.c.run_id,
        _OTHER_JOBS.c.id != JOBS.c.id,
        _one_of(_OTHER_JOBS.c.status, OPEN_JOB_STATUSES),
    )
    .label("run_has_other_open_jobs"),
    # What deciding whether an ended call needs outcomes.apply reads (status.outcome_to_decide).
    CALLS.c.disposition,
    CALLS.c.answered_by,
    CALLS.c.abandoned,
    exists()
    .where(DISPOSITIONS.c.business_id == CALLS.c.business_id)
    .label("business_has_dispositions"),
]


def _lock_call_where(*where: ColumnElement[bool]) -> Any:
    # Only the call is locked: the job is locked by the UPDATE that moves it, whose WHERE
    # re-checks, on the job's latest version, that it still follows this call.
    return (
        select(*LOCKED_CALL_COLUMNS)
        .select_from(
            CALLS.outerjoin(JOBS, JOBS.c.id == CALLS.c.job_id).outerjoin(
                RUNS, RUNS.c.id == JOBS.c.run_id
            )
        )
        .where(*where)
        .with_for_update(of=CALLS)
    )


LOCK_CALL_BY_ID = _lock_call_where(CALLS.c.id == bindparam("call_id"))
LOCK_CALL_BY_SID = _lock_call_where(CALLS.c.provider_call_sid == bindparam("sid"))
LOCK_CALL_BY_ATTEMPT = _lock_call_where(
    CALLS.c.job_id == bindparam("job_id"), CALLS.c.attempt == bindparam("attempt")
)

# A job follows the call of its current attempt, and only while the job is open. The WHERE
# says so, and the UPDATE's row lock makes it true of the job's latest version: a job canceled
# or moved on to its next attempt while the call's lock was awaited is left alone.
_JOB_FOLLOWS_CALL = (
    JOBS.c.id == bindparam("call_job_id"),
    JOBS.c.attempt == bindparam("call_attempt"),
    _one_of(JOBS.c.status, OPEN_JOB_STATUSES),
)
#: The call's provider id, on a job that does not have it yet (a callback may have attached it
#: to the call before the worker stored it).
_JOB_SID = func.coalesce(
    JOBS.c.provider_call_sid, bindparam("call_sid", type_=JOBS.c.provider_call_sid.type)
)
JOB_TAKES_SID = (
    update(JOBS)
    .where(*_JOB_FOLLOWS_CALL, JOBS.c.provider_call_sid.is_(None))
    .values(provider_call_sid=bindparam("call_sid", type_=JOBS.c.provider_call_sid.type))
)
JOB_IN_CALL = (
    update(JOBS)
    .where(*_JOB_FOLLOWS_CALL)
    .values(status=literal(CallJobStatus.IN_CALL, JOBS.c.status.type), provider_call_sid=_JOB_SID)
)
JOB_RETRIES = (
    update(JOBS)
    .where(*_JOB_FOLLOWS_CALL)
    .values(
        status=literal(CallJobStatus.QUEUED, JOBS.c.status.type),
        next_attempt_at=bindparam("new_next_attempt_at", type_=JOBS.c.next_attempt_at.type),
        provider_call_sid=None,
    )
)
JOB_FINISHES = (
    update(JOBS)
    .where(*_JOB_FOLLOWS_CALL)
    .values(status=bindparam("new_status", type_=JOBS.c.status.type), provider_call_sid=_JOB_SID)
)
JOB_FINISHES_WITH_ERROR = JOB_FINISHES.values(
    error_code=bindparam("new_error_code", type_=JOBS.c.error_code.type),
    error_message=bindparam("new_error_message", type_=JOBS.c.error_message.type),
)
#: The provider's final word on a job the reconciler failed as never created.
JOB_CORRECTED = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("call_job_id"),
        JOBS.c.attempt == bindparam("call_attempt"),
        JOBS.c.status == CallJobStatus.FAILED,
        JOBS.c.error_code == NO_PROVIDER_CALL_ID,
    )
    .values(
        status=bindparam("new_status", type_=JOBS.c.status.type),
        error_code=bindparam("new_error_code", type_=JOBS.c.error_code.type),
        error_message=bindparam("new_error_message", type_=JOBS.c.error_message.type),
        provider_call_sid=case(
            (JOBS.c.provider_call_sid.is_(None), bindparam("call_sid")),
            else_=JOBS.c.provider_call_sid,
        ),
    )
)
#: A job that cannot go on (the provider refused the call): final, with the reason.
JOB_FAILS = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("job_id"),
        JOBS.c.attempt == bindparam("job_attempt"),
        JOBS.c.status == CallJobStatus.DIALING,
    )
    .values(
        status=literal(CallJobStatus.FAILED, JOBS.c.status.type),
        error_code=bindparam("new_error_code", type_=JOBS.c.error_code.type),
        error_message=bindparam("new_error_message", type_=JOBS.c.error_message.type),
    )
    .returning(JOBS.c.run_id)
)
#: The provider refused with "try later": nothing was created, so the attempt never happened.
JOB_GIVEN_BACK = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("job_id"),
        JOBS.c.attempt == bindparam("job_attempt"),
        JOBS.c.status == CallJobStatus.DIALING,
    )
    .values(
        status=literal(CallJobStatus.QUEUED, JOBS.c.status.type),
        attempt=JOBS.c.attempt - 1,
        dialing_started_at=None,
        next_attempt_at=bindparam("new_next_attempt_at", type_=JOBS.c.next_attempt_at.type),
    )
)
CALL_OF_GIVEN_BACK_ATTEMPT = delete(CALLS).where(
    CALLS.c.id == bindparam("call_id"), CALLS.c.status == "queued"
)
#: A call the worker stored the provider's id on (unless a callback did first).
CALL_TAKES_SID = (
    update(CALLS)
    .where(CALLS.c.id == bindparam("call_id"), CALLS.c.provider_call_sid.is_(None))
    .values(provider_call_sid=bindparam("sid", type_=CALLS.c.provider_call_sid.type))
)
#: The worker's store of the provider's id, unless a callback attached it first; whether
#: callbacks were kept for that id before it was known (then they are applied).
CALL_STORES_SID = (
    update(CALLS)
    .where(CALLS.c.id == bindparam("call_id"), CALLS.c.provider_call_sid.is_(None))
    .values(provider_call_sid=bindparam("sid", type_=CALLS.c.provider_call_sid.type))
    .returning(
        exists().where(EVENTS.c.provider_call_sid == bindparam("sid"), EVENTS.c.applied.is_(False))
    )
)
#: Queued jobs of a canceled run stop at once; dialing and connected ones finish on their own.
JOBS_CANCELED_WITH_RUN = (
    update(JOBS)
    .where(JOBS.c.run_id == bindparam("canceled_run_id"), JOBS.c.status == CallJobStatus.QUEUED)
    .values(status=literal(CallJobStatus.CANCELED, JOBS.c.status.type), error_code="run_canceled")
)
#: A stuck attempt placed again: its dialing clock restarts (the creation window again).
JOB_REDIALED = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("job_id"),
        JOBS.c.attempt == bindparam("job_attempt"),
        JOBS.c.status == CallJobStatus.DIALING,
        JOBS.c.provider_call_sid.is_(None),
        # Compare-and-set: of two reconcilers that found the attempt stuck, one places it.
        JOBS.c.dialing_started_at == bindparam("started", type_=JOBS.c.dialing_started_at.type),
    )
    .values(dialing_started_at=bindparam("now", type_=JOBS.c.dialing_started_at.type))
)

COMPLETE_RUN = (
    update(RUNS)
    .where(
        RUNS.c.id == bindparam("run_id"),
        _one_of(RUNS.c.status, (RunStatus.RUNNING, RunStatus.CANCELED)),
        RUNS.c.finished_at.is_(None),
        ~exists().where(
            JOBS.c.run_id == bindparam("run_id"), _one_of(JOBS.c.status, OPEN_JOB_STATUSES)
        ),
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

PENDING_EVENTS = (
    select(EVENTS.c.id, EVENTS.c.status, EVENTS.c.params)
    .where(EVENTS.c.provider_call_sid == bindparam("sid"), EVENTS.c.applied.is_(False))
    .with_for_update()
)
