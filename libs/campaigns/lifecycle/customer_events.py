"""The events a call's transitions send to the business's own systems (call.completed,
run.completed), emitted in the transaction that makes the transition, so each is sent once
per transition (libs/events: stored with its deliveries, sent after commit).

A business without an endpoint for the type costs one indexed SELECT of its endpoints; the
call or run is read only when somebody listens.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.common.call_status import FINAL_CALL_STATUSES
from libs.common.models import Call, Run, RunStatus
from libs.events.catalogue import call_data, run_data
from libs.events.emit import emit, subscribers


def _fresh(session: Session, model: type[Any], row_id: int) -> Any:
    # populate_existing: the lifecycle changes rows with Core statements the session's
    # identity map has not seen.
    statement = select(model).where(model.id == row_id).execution_options(populate_existing=True)
    return session.scalars(statement).one()


def call_completed(session: Session, business_id: int, call_id: int) -> str | None:
    """call.completed for a call that just reached a final status; the event's id or None."""
    if not subscribers(session, business_id, "call.completed"):
        return None
    call: Call = _fresh(session, Call, call_id)
    if call.status not in FINAL_CALL_STATUSES:
        raise ValueError(f"call {call_id} is {call.status}, not final")
    return emit(session, business_id, "call.completed", call_data(call))


def run_completed(session: Session, run_id: int) -> str | None:
    """run.completed for a run that just finished (completed, or canceled and drained)."""
    run: Run = _fresh(session, Run, run_id)
    if run.status not in (RunStatus.COMPLETED, RunStatus.CANCELED) or run.finished_at is None:
        raise ValueError(f"run {run_id} is {run.status} and not finished")
    if not subscribers(session, run.business_id, "run.completed"):
        return None
    return emit(session, run.business_id, "run.completed", run_data(session, run))
