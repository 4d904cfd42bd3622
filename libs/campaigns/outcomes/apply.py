"""Settling an ended call's outcome: its disposition (by rule when nobody set one), then the
recycling that disposition asks for. Idempotent: run twice, it changes nothing more."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle import followups
from libs.campaigns.outcomes import amd, compliance, recycling, rules
from libs.common import metrics
from libs.common.call_status import FINAL_CALL_STATUSES
from libs.common.models import Call, CallJob, Disposition, Run
from libs.queueops.outbox import enqueue_after_commit

#: How far back the sweep looks for ended calls whose outcome was never applied.
SWEEP_WINDOW = timedelta(days=2)
#: Calls per sweep (the next one takes the rest).
SWEEP_BATCH = 500

for _source in ("agent", "operator", "rule"):
    metrics.DISPOSITIONS_SET.labels(_source)
for _result in ("none", "retry", "never", "move", "exhausted", "run_closed", "target_closed",
                "superseded", "machine_retry", "machine_exhausted"):  # fmt: skip
    metrics.LEAD_RECYCLES.labels(_result)
metrics.CALL_COST.labels("USD")


class UnknownDisposition(ValueError):
    pass


def dispositions(session: Session, business_id: int) -> list[Disposition]:
    return list(
        session.scalars(
            select(Disposition)
            .where(Disposition.business_id == business_id)
            .order_by(Disposition.id)
        )
    )


def apply_outcome(session: Session, call_id: int, now: datetime) -> str | None:
    """Settle call ``call_id`` if it has ended; the recycling result, or None when the call
    is not found or not ended. The caller commits."""
    call = session.scalar(
        select(Call)
        .where(Call.id == call_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if call is None or call.status not in FINAL_CALL_STATUSES:
        return None
    if call.outcome_applied_at is None and call.recycled_disposition is None:
        # (Who answered is counted when the call ends: libs/campaigns/lifecycle/status.py.)
        _machine_retry(session, call, now)
    listed = dispositions(session, call.business_id)
    if call.disposition is None:
        chosen = rules.by_rule(listed, rules.outcome_of(call.status, call.answered_by))
        if chosen is not None:
            call.disposition, call.disposition_source = chosen.code, "rule"
            metrics.DISPOSITIONS_SET.labels("rule").inc()
    elif call.disposition_source is None:
        # The voice agent writes the code alone, during the call.
        call.disposition_source = "agent"
        metrics.DISPOSITIONS_SET.labels("agent").inc()
    result = "none"
    if call.disposition is not None and call.disposition != call.recycled_disposition:
        disposition = next((d for d in listed if d.code == call.disposition), None)
        if disposition is not None:
            result = recycling.recycle(session, call, disposition, now)
            metrics.LEAD_RECYCLES.labels(result).inc()
        call.recycled_disposition = call.disposition
    call.outcome_applied_at = now
    if call.run_id is not None and (call.abandoned or call.status == "failed"):
        # Only a call that adds to a rate's numerator can take it over its limit (any other
        # call lowers it), so the rates are read for those calls alone. Abandonment is judged
        # when the stream ends (compliance.stream_finished), which sends this again: the rates
        # count the call whichever came first.
        session.flush()
        compliance.pause_if_needed(session, call.run_id, now)
    return result


def _machine_retry(session: Session, call: Call, now: datetime) -> None:
    """The run's own policy for a machine comes first; a disposition may then override it."""
    if call.job_id is None or call.answered_by not in amd.MACHINE:
        return
    job = session.scalar(select(CallJob).where(CallJob.id == call.job_id).with_for_update())
    run = session.get(Run, job.run_id) if job is not None else None
    if job is not None and run is not None:
        result = amd.machine_retry(session, call, job, run, now)
        if result != "none":
            metrics.LEAD_RECYCLES.labels(f"machine_{result}").inc()


def set_by_operator(session: Session, call: Call, code: str) -> None:
    """An operator's disposition for ``call`` (one of the business's codes). Its recycling
    follows once the call has ended. The caller commits."""
    if code not in {d.code for d in dispositions(session, call.business_id)}:
        raise UnknownDisposition(f"{code!r} is not one of the business's dispositions")
    call.disposition, call.disposition_source = code, "operator"
    metrics.DISPOSITIONS_SET.labels("operator").inc()
    call.outcome_applied_at = None  # the sweep re-applies it should the message be lost
    if call.status in FINAL_CALL_STATUSES:
        enqueue_after_commit(session, followups.outcome(call.id))


def unapplied_calls(session: Session, now: datetime) -> list[int]:
    """Ended calls whose outcome was never applied, oldest first (the sweep's work)."""
    return list(
        session.scalars(
            select(Call.id)
            .where(
                Call.outcome_applied_at.is_(None),
                Call.ended_at >= now - SWEEP_WINDOW,
                Call.status.in_(FINAL_CALL_STATUSES),
            )
            .order_by(Call.ended_at)
            .limit(SWEEP_BATCH)
        )
    )
