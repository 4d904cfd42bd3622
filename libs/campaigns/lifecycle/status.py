"""Applying a call status: forward-only, and the job, lead and run follow from it.

Used for Twilio's status callbacks, for callbacks kept until the call's id was known, and for
the reconciler's answers from the provider, so a status has the same effect whichever way it
arrives. Each step is one prebuilt statement (``statements``): lock the call (reading its job's
run with it), move it, touch the lead, move the job if it still follows this call, complete the
run when nothing is left open. What the move implies next (a dispatch, a retry, a lead) comes
back as ``Applied.followups``, for the caller to send after its commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from libs.campaigns.lifecycle import customer_events, followups
from libs.campaigns.lifecycle import statements as sql
from libs.common import metrics
from libs.common.call_status import (
    FINAL_CALL_STATUSES,
    FINAL_JOB_STATUS,
    MACHINE_ANSWERS,
    NO_PROVIDER_CALL_ID,
    RETRIED,
    STATUS_RANK,
    call_moves,
)
from libs.common.db import insert_ignoring_conflicts_committed, update_by_id
from libs.common.models import Run, RunStatus
from libs.queueops.outbox import Outgoing

logger = logging.getLogger(__name__)

for _status in STATUS_RANK:  # exported at zero from the start
    metrics.CALL_STATUSES.labels(_status)
for _answer in ("human", "machine", "fax", "unknown"):
    metrics.CALL_ANSWERS.labels(_answer)


@dataclass(frozen=True)
class StatusUpdate:
    status: str
    duration_s: int | None = None
    answered_by: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @classmethod
    def from_params(cls, status: str, params: dict[str, Any]) -> StatusUpdate:
        """From a callback's form fields (as stored in ``call_events.params``)."""
        duration = str(params.get("CallDuration", ""))
        return cls(
            status=status,
            duration_s=int(duration) if duration.isdigit() else None,
            answered_by=params.get("AnsweredBy") or None,
            error_code=params.get("ErrorCode") or None,
            error_message=(params.get("ErrorMessage") or None) and params["ErrorMessage"][:500],
        )


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
    #: Whether the business had an enabled event endpoint when the call was locked (read with
    #: the call); True when unknown, so that the endpoints are then looked up.
    has_endpoints: bool = True
    #: Whether the run had another open job when the call was locked; False when unknown, so
    #: that the run's completion is then checked.
    run_has_other_open_jobs: bool = False
    #: What deciding whether the ended call needs ``outcomes.apply`` reads.
    disposition: str | None = None
    answered_by: str | None = None
    abandoned: bool | None = None
    business_has_dispositions: bool = False

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_CALL_STATUSES


def outcome_to_decide(call: LockedCall) -> bool:
    """Whether the ended ``call`` leaves ``outcomes.apply`` anything to decide: a disposition
    (the agent's, or a rule's: the business has dispositions), the run's machine policy, or
    the run's compliance rates (a failed or abandoned call adds to them). Any other call is
    settled by its final status alone: marked applied by the UPDATE that ends it, so neither
    a message nor ``outcomes.sweep`` (which looks for calls not marked) ever visits it."""
    return bool(
        call.business_has_dispositions
        or call.disposition is not None
        or (call.job_id is not None and call.answered_by in MACHINE_ANSWERS)
        or (call.run_id is not None and (call.status == "failed" or call.abandoned))
    )


def _count_answer(call: LockedCall) -> None:
    """Who answered an outbound call that completed (once per call, when it ends)."""
    if call.direction != "outbound" or call.status != "completed":
        return
    if call.answered_by in MACHINE_ANSWERS:
        answer = "machine"
    elif call.answered_by in ("fax", "human"):
        answer = str(call.answered_by)
    else:  # None or "unknown": AMD off, or it could not tell
        answer = "unknown"
    metrics.CALL_ANSWERS.labels(answer).inc()


@dataclass(frozen=True)
class Applied:
    """What applying a status changed, and the messages it implies (send after commit)."""

    moved: bool
    slot_freed: bool = False
    retry_at: datetime | None = None
    business_id: int | None = None
    followups: list[Outgoing] = field(default_factory=list)


def lock_call(
    session: Session,
    *,
    call_id: int | None = None,
    sid: str | None = None,
    job_attempt: tuple[int, int] | None = None,
) -> LockedCall | None:
    """The call with this id, provider call id, or (job, attempt), locked (FOR UPDATE) until
    the transaction ends. Every writer of a call's status takes this lock before the job's."""
    connection = session.connection()
    if call_id is not None:
        result = connection.execute(sql.LOCK_CALL_BY_ID, {"call_id": call_id})
    elif sid is not None:
        result = connection.execute(sql.LOCK_CALL_BY_SID, {"sid": sid})
    elif job_attempt is not None:
        job_id, attempt = job_attempt
        result = connection.execute(
            sql.LOCK_CALL_BY_ATTEMPT, {"job_id": job_id, "attempt": attempt}
        )
    else:
        raise TypeError("lock_call needs call_id, sid or job_attempt")
    row = result.first()
    return LockedCall(*row) if row is not None else None


def moves(call: LockedCall, new: StatusUpdate) -> bool:
    """Whether applying ``new`` changes ``call``: only forward, or the provider's final word
    replacing the reconciler's guess (the table's one move out of "failed")."""
    if call.status == "failed" and not _inferred_failure(call):
        return False
    return call_moves(call.status, new.status)


def apply_status(session: Session, call: LockedCall, new: StatusUpdate, now: datetime) -> Applied:
    """Move ``call`` (locked by the caller) forward to ``new.status``; never backwards."""
    if new.status not in STATUS_RANK:
        raise ValueError(f"unknown call status {new.status!r}")
    if not moves(call, new):
        return Applied(moved=False, business_id=call.business_id)
    final = new.status in FINAL_CALL_STATUSES
    if final and _inferred_failure(call):
        return _correct_inferred_failure(session, call, new, now)
    outgoing = []
    if final:
        # An ended call's outcome (dispositions, recycling, machine policy, compliance) when
        # there is one to decide; otherwise it is settled here, in the same UPDATE.
        decide = outcome_to_decide(_ended(call, new))
        _move_call(session, call, new, now, **({} if decide else {"outcome_applied_at": now}))
        if decide:
            outgoing.append(followups.outcome(call.id))
        if call.direction == "outbound" and new.status == "completed" and call.provider_call_sid:
            # Twilio prices a call some time after it ends: one message prices every call
            # that ended meanwhile (coalesced), whichever of them asked first.
            outgoing.append(followups.price())
    else:
        _move_call(session, call, new, now)
    if call.direction == "inbound" and final and call.provider_call_sid:
        # A caller who hung up before the stream connected is a lead too; when the stream did
        # run, this is the same idempotent message its stop already sent.
        outgoing.insert(0, followups.lead_from_call(call.provider_call_sid))
        return Applied(moved=True, business_id=call.business_id, followups=outgoing)
    if call.job_id is None or call.run_id is None:
        return Applied(moved=True, business_id=call.business_id, followups=outgoing)
    if not final:
        _follow_on_job(session, call, new)
        return Applied(moved=True, business_id=call.business_id)
    followed, retry_at = _finish_job(session, call, new, now)
    if followed:
        outgoing.append(followups.dispatch(call.business_id))
    if retry_at is not None:
        delayed = followups.dispatch_at(call.business_id, retry_at, now)
        outgoing.extend([delayed] if delayed else [])
    return Applied(
        moved=True,
        slot_freed=followed,
        retry_at=retry_at,
        business_id=call.business_id,
        followups=outgoing,
    )


def _ended(call: LockedCall, new: StatusUpdate) -> LockedCall:
    """``call`` as it is once ``new`` (a final status) is applied."""
    return replace(call, status=new.status, answered_by=new.answered_by or call.answered_by)


def _move_call(
    session: Session, call: LockedCall, new: StatusUpdate, now: datetime, **extra: Any
) -> None:
    changes: dict[str, Any] = {"status": new.status, **extra}
    if new.status == "in-progress":
        changes["answered_at"] = now
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
    was_final = call.is_final
    update_by_id(session, sql.CALLS, call.id, changes)
    call.status = new.status
    call.answered_by = new.answered_by or call.answered_by
    # Once per call: a final status is never followed by a first final status again (the
    # provider's word replacing the reconciler's guess is a correction, not a new end).
    if final and not was_final:
        _count_answer(call)
    if final and not was_final and call.has_endpoints:
        customer_events.call_completed(session, call.business_id, call.id)
    call.error_code = changes.get("error_code", call.error_code)
    metrics.CALL_STATUSES.labels(new.status).inc()
    if final and call.lead_id is not None:
        # Only the outcome matters on the lead; intermediate statuses would be three more writes.
        update_by_id(
            session,
            sql.LEADS,
            call.lead_id,
            {"last_call_status": new.status, "last_called_at": now},
        )


def _job_params(call: LockedCall, **extra: Any) -> dict[str, Any]:
    params = {"call_job_id": call.job_id, "call_attempt": call.attempt}
    return params | {"call_sid": call.provider_call_sid} | extra


def _follow_on_job(session: Session, call: LockedCall, new: StatusUpdate) -> None:
    """A non-final status: the job is in a call once it is answered, and learns the call id."""
    if new.status == "in-progress":
        session.connection().execute(sql.JOB_IN_CALL, _job_params(call))
    elif call.provider_call_sid:
        session.connection().execute(sql.JOB_TAKES_SID, _job_params(call))


def _inferred_failure(call: LockedCall) -> bool:
    return call.status == "failed" and call.error_code == NO_PROVIDER_CALL_ID


def _correct_inferred_failure(
    session: Session, call: LockedCall, new: StatusUpdate, now: datetime
) -> Applied:
    """The provider's final status for a call failed as never created: the provider's word
    replaces the guess, on the call and on its job, so the call log matches what happened.
    Nothing is retried or reopened: the job was already counted as finished and its slot
    given back; a busy or no-answer here is final."""
    call.error_code = None
    _move_call(session, call, new, now, error_code=None, error_message=None)
    if call.job_id is not None:
        session.connection().execute(
            sql.JOB_CORRECTED,
            _job_params(
                call,
                new_status=FINAL_JOB_STATUS[new.status],
                new_error_code=new.error_code,
                new_error_message=new.error_message,
            ),
        )
    return Applied(moved=True, business_id=call.business_id)


def _finish_job(
    session: Session, call: LockedCall, new: StatusUpdate, now: datetime
) -> tuple[bool, datetime | None]:
    """The job of a call that ended, queued again after the run's retry delay or final:
    whether the job still followed this call (its slot is free), and when a retry is due."""
    retrying = (
        call.run_status in (RunStatus.RUNNING, RunStatus.PAUSED)
        and new.status in RETRIED
        and call.attempt < (call.max_attempts or 0)
    )
    connection = session.connection()
    if retrying:
        retry_at = now + timedelta(seconds=call.retry_delay_s or 0)
        result = connection.execute(
            sql.JOB_RETRIES, _job_params(call, new_next_attempt_at=retry_at)
        )
        return (True, retry_at) if result.rowcount else (False, None)
    final = FINAL_JOB_STATUS[new.status]
    if new.error_code:
        params = _job_params(
            call,
            new_status=final,
            new_error_code=new.error_code,
            new_error_message=new.error_message,
        )
        result = connection.execute(sql.JOB_FINISHES_WITH_ERROR, params)
    else:
        result = connection.execute(sql.JOB_FINISHES, _job_params(call, new_status=final))
    if not result.rowcount:
        return False, None
    assert call.run_id is not None  # apply_status moves jobs of calls with a run only
    if not call.run_has_other_open_jobs:
        complete_run_if_done(session, call.run_id, now)
    return True, None


def attach_sid(session: Session, call: LockedCall, sid: str, now: datetime) -> list[Applied]:
    """The provider's id for ``call`` (locked), from the worker that created it, a callback
    naming its job and attempt, or the reconciler's look-up; then the callbacks that came
    before the id was known, in status order."""
    if call.provider_call_sid is None:
        session.connection().execute(sql.CALL_TAKES_SID, {"call_id": call.id, "sid": sid})
        call.provider_call_sid = sid
    if call.job_id is not None:
        session.connection().execute(sql.JOB_TAKES_SID, _job_params(call))
    return apply_pending_events(session, call, now)


def store_sid(
    session: Session, call_id: int, job_id: int, attempt: int, sid: str, now: datetime
) -> list[Applied]:
    """The worker's store of the id the provider gave the call it created: two statements
    (call, then job: the lock order of every status writer), and the callbacks kept for the
    id, if any came before it was known (then the call is locked and they are applied)."""
    connection = session.connection()
    pending = connection.execute(sql.CALL_STORES_SID, {"call_id": call_id, "sid": sid}).scalar()
    job = {"call_job_id": job_id, "call_attempt": attempt, "call_sid": sid}
    connection.execute(sql.JOB_TAKES_SID, job)
    if not pending:
        return []
    call = lock_call(session, call_id=call_id)
    return apply_pending_events(session, call, now) if call is not None else []


def apply_pending_events(session: Session, call: LockedCall, now: datetime) -> list[Applied]:
    """Apply the call's stored callbacks not applied yet (``calls.status_changed``, or those
    that arrived before the call's id was known), in status order. Each is marked applied
    whether it moved the call or came too late to (counted apart), so it is visited once."""
    if not call.provider_call_sid:
        return []
    events = session.connection().execute(sql.PENDING_EVENTS, {"sid": call.provider_call_sid})
    results = []
    for event_id, status, params in sorted(events, key=lambda e: STATUS_RANK.get(e.status, 0)):
        applied = apply_status(session, call, StatusUpdate.from_params(status, params or {}), now)
        update_by_id(session, sql.EVENTS, event_id, {"applied": True})
        metrics.CALL_EVENTS.labels(status, "applied" if applied.moved else "late").inc()
        results.append(applied)
    return results


def store_callback(
    connection: Connection,
    sid: str,
    status: str,
    sequence: int | None,
    params: dict[str, Any],
    now: datetime,
) -> int | None:
    """A status callback stored once per (call id, status), not applied yet: the calls
    service's whole part (``calls.status_changed`` applies it). The new row's id, or None for
    a callback already stored (Twilio retried or repeated it). Committed here: the row is the
    whole transaction."""
    values = {
        "provider_call_sid": sid,
        "status": status,
        "sequence_number": sequence,
        "applied": False,
        "params": params,
        "received_at": now,
    }
    event_id = insert_ignoring_conflicts_committed(connection, sql.EVENTS, values)
    return int(event_id) if event_id is not None else None


def apply_callbacks(
    session: Session, sid: str, job_id: int | None, attempt: int | None, now: datetime
) -> list[Applied] | None:
    """The stored callbacks of the call with provider id ``sid``, applied under its lock
    (``calls.status_changed``); None when no call is known by them (they stay stored, and
    are applied when a worker or the reconciler stores this id).

    Found by its id; failing that by the job and attempt the callback URL names (the worker
    may not have stored the id yet, or died before it could), attaching the id then."""
    call = lock_call(session, sid=sid)
    if call is not None:
        return apply_pending_events(session, call, now)
    if job_id is None or attempt is None:
        return None
    # No "sid IS NULL" condition here: if the worker stores the id while we wait for the row
    # lock, the row must still be found once the lock is ours.
    call = lock_call(session, job_attempt=(job_id, attempt))
    if call is None:
        return None
    if call.provider_call_sid not in (None, sid):
        logger.warning("callback for %s names job %s/%s, which has call %s", sid, job_id,
                       attempt, call.provider_call_sid)  # fmt: skip
        return None
    return attach_sid(session, call, sid, now)


def fail_attempt(
    session: Session, call: LockedCall, code: str, message: str, now: datetime
) -> list[Outgoing]:
    """The attempt of ``call`` (locked) cannot go on (the provider refused it, or it cannot be
    placed again): the call and job end ``failed`` with the reason; the slot is free."""
    outgoing = []
    if not call.is_final:
        new = StatusUpdate("failed", error_code=code, error_message=message[:2000])
        decide = outcome_to_decide(_ended(call, new))
        _move_call(session, call, new, now, **({} if decide else {"outcome_applied_at": now}))
        outgoing.extend([followups.outcome(call.id)] if decide else [])
    if call.job_id is None:
        return outgoing
    run_id = (
        session.connection()
        .execute(
            sql.JOB_FAILS,
            {
                "job_id": call.job_id,
                "job_attempt": call.attempt,
                "new_error_code": code,
                "new_error_message": message[:2000],
            },
        )
        .scalar_one_or_none()
    )
    if run_id is None:
        return outgoing
    complete_run_if_done(session, run_id, now)
    return [*outgoing, followups.dispatch(call.business_id)]


def give_back_attempt(
    session: Session, job_id: int, attempt: int, call_id: int, retry_at: datetime
) -> bool:
    """The provider refused with "try later" (nothing was created): the attempt never
    happened; its call row goes and the job waits until ``retry_at``."""
    result = session.connection().execute(
        sql.JOB_GIVEN_BACK,
        {"job_id": job_id, "job_attempt": attempt, "new_next_attempt_at": retry_at},
    )
    if not result.rowcount:
        return False
    session.connection().execute(sql.CALL_OF_GIVEN_BACK_ATTEMPT, {"call_id": call_id})
    return True


def restart_dialing(
    session: Session, job_id: int, attempt: int, started: datetime, now: datetime
) -> bool:
    """A stuck attempt the provider has no call for is placed again (same attempt, same call
    row, so still at most one call per attempt): its creation window restarts. False when
    another reconciler got there first (``started`` is what this one read)."""
    result = session.connection().execute(
        sql.JOB_REDIALED, {"job_id": job_id, "job_attempt": attempt, "started": started, "now": now}
    )
    return bool(result.rowcount)


def cancel_queued_jobs(session: Session, run_id: int, now: datetime) -> None:
    """A canceled run: queued jobs stop at once; calls already dialing or connected finish on
    their own and their outcome is recorded (hanging up on a person mid-sentence is worse)."""
    session.connection().execute(sql.JOBS_CANCELED_WITH_RUN, {"canceled_run_id": run_id})
    complete_run_if_done(session, run_id, now)


def complete_run_if_done(session: Session, run_id: int, now: datetime) -> bool:
    """A running (or canceled) run with no open job left is finished.

    One conditional UPDATE, so the run row is locked only when the run is found finished.
    Callers hold job rows, and cancel locks the run before the jobs: locking the run here
    first would order the locks both ways. The rare daily run completed while a new job was
    being added is reopened by the reconciler."""
    # No flush here: job statuses change through this package's statements only, and a flush
    # would attribute ORM changes made elsewhere to the lifecycle (tests/support/status_guard.py).
    finished = (
        session.connection()
        .execute(sql.COMPLETE_RUN, {"run_id": run_id, "now": now})
        .scalar_one_or_none()
    )
    if finished is None:
        return False
    loaded = session.identity_map.get(identity_key(Run, run_id))
    if loaded is not None:  # a caller holding the Run reads what was just written
        session.expire(loaded)
    metrics.RUNS_FINISHED.labels(RunStatus(finished).value).inc()
    customer_events.run_completed(session, run_id)
    return True
