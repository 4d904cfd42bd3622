"""Factories for campaign rows: a business with leads, a run, jobs and calls."""

from __future__ import annotations

from dataclasses import dataclass

from libs.common.db import Database
from libs.common.models import Business, Call, CallJob, CallJobStatus, Lead, Run, RunStatus

FIRST_NUMBER = 4155550100


def phone(i: int) -> str:
    return f"+1{FIRST_NUMBER + i}"


@dataclass(frozen=True)
class Campaign:
    business_id: int
    run_id: int
    job_ids: list[int]
    lead_ids: list[int]


def make_campaign(
    db: Database,
    leads: int = 1,
    *,
    limit: int = 3,
    status: RunStatus = RunStatus.RUNNING,
    max_attempts: int = 1,
    retry_delay_s: int = 0,
    timezone: str = "UTC",
    window: tuple[str, str] = ("00:00", "23:59"),
    first: int = 0,
) -> Campaign:
    with db.session() as session:
        business = Business(name="Dialer Co", timezone=timezone, max_concurrent_calls=limit)
        session.add(business)
        session.flush()
        run = Run(
            business_id=business.id,
            name="test run",
            status=status,
            max_attempts=max_attempts,
            retry_delay_s=retry_delay_s,
            window_start=window[0],
            window_end=window[1],
        )
        session.add(run)
        session.flush()
        lead_rows = [
            Lead(business_id=business.id, name=f"Lead {i}", phone_e164=phone(first + i))
            for i in range(leads)
        ]
        session.add_all(lead_rows)
        session.flush()
        jobs = [
            CallJob(
                run_id=run.id,
                business_id=business.id,
                lead_id=lead.id,
                phone_e164=lead.phone_e164,
                timezone=timezone,
            )
            for lead in lead_rows
        ]
        session.add_all(jobs)
        session.commit()
        return Campaign(business.id, run.id, [j.id for j in jobs], [lead.id for lead in lead_rows])


def start_attempt(db: Database, job_id: int, sid: str | None) -> int:
    """Put a job in `dialing` with attempt+1 and its Call row, as the dialer's claim does."""
    from libs.common.models import utcnow

    with db.session() as session:
        job = session.get_one(CallJob, job_id)
        job.status = CallJobStatus.DIALING
        job.attempt += 1
        job.dialing_started_at = utcnow()
        job.provider_call_sid = sid
        call = Call(
            business_id=job.business_id,
            run_id=job.run_id,
            job_id=job.id,
            lead_id=job.lead_id,
            attempt=job.attempt,
            to_number=job.phone_e164,
            provider_call_sid=sid,
        )
        session.add(call)
        session.commit()
        return call.id
