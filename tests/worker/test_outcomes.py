"""outcomes.apply and outcomes.sweep: a call ended through the real lifecycle gets its
disposition by rule (or keeps the agent's or operator's), and its lead is recycled as that
disposition says: retried after N hours within the run's attempts (a completed run reopened),
never called again (do-not-call list), or moved to another run. Applying twice changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from libs.campaigns.lifecycle.status import StatusUpdate, apply_status, lock_call
from libs.campaigns.outcomes.apply import apply_outcome, set_by_operator, unapplied_calls
from libs.common import metrics
from libs.common.contracts import OUTCOMES_APPLY, OUTCOMES_SWEEP
from libs.common.db import Database
from libs.common.models import (
    Call,
    CallJob,
    CallJobStatus,
    Disposition,
    DncEntry,
    Run,
    RunStatus,
    utcnow,
)
from tests.campaign_factories import Campaign, make_campaign, start_attempt

_sids = iter(range(10_000, 99_999))


def add_disposition(db: Database, business_id: int, code: str, **fields: Any) -> int:
    with db.session() as session:
        row = Disposition(business_id=business_id, code=code, **fields)
        session.add(row)
        session.commit()
        return row.id


def call_ends(
    db: Database, campaign: Campaign, status: str, answered_by: str | None = None,
    disposition: str | None = None,
) -> int:  # fmt: skip
    """Start the next attempt of the campaign's first job and end it through the lifecycle
    (the agent's disposition written during the call, as the media path does)."""
    return ends_with_followups(db, campaign, status, answered_by, disposition)[0]


def ends_with_followups(
    db: Database, campaign: Campaign, status: str, answered_by: str | None = None,
    disposition: str | None = None, abandoned: bool | None = None,
) -> tuple[int, list[str]]:  # fmt: skip
    """``call_ends``, and the actors of the messages the end implies."""
    sid = f"CA{next(_sids):032d}"
    call_id = start_attempt(db, campaign.job_ids[0], sid)
    if disposition is not None or abandoned is not None:
        with db.session() as session:  # during the call, in its own transaction
            call = session.get_one(Call, call_id)
            call.disposition, call.abandoned = disposition, abandoned
            session.commit()
    with db.session() as session:
        locked = lock_call(session, call_id=call_id)
        assert locked is not None
        update = StatusUpdate(status=status, duration_s=30, answered_by=answered_by)
        applied = apply_status(session, locked, update, utcnow())
        session.commit()
    return call_id, [outgoing.message.actor_name for outgoing in applied.followups]


def settle(db: Database, call_id: int, now: datetime | None = None) -> str | None:
    with db.session() as session:
        result = apply_outcome(session, call_id, now or utcnow())
        session.commit()
    return result


def read(db: Database, model: type[Any], row_id: int) -> Any:
    with db.session() as session:
        row = session.get_one(model, row_id)
        session.expunge(row)
        return row


def dnc_numbers(db: Database, business_id: int) -> list[str]:
    with db.session() as session:
        return list(
            session.scalars(select(DncEntry.phone_e164).where(DncEntry.business_id == business_id))
        )


@pytest.mark.parametrize(
    ("status", "answered_by", "outcome"),
    [
        ("busy", None, "busy"),
        ("no-answer", None, "no-answer"),
        ("failed", None, "failed"),
        ("completed", None, "completed"),
        ("completed", "human", "completed"),
        ("completed", "unknown", "completed"),
        ("completed", "machine_start", "machine"),
        ("completed", "machine_end_beep", "machine"),
        ("completed", "machine_end_silence", "machine"),
        ("completed", "machine_end_other", "machine"),
        ("completed", "fax", "fax"),
    ],
)
def test_a_rule_sets_the_disposition_from_the_outcome(
    db: Database, status: str, answered_by: str | None, outcome: str
) -> None:
    campaign = make_campaign(db)
    for rule in ("completed", "machine", "fax", "busy", "no-answer", "failed"):
        add_disposition(db, campaign.business_id, f"auto_{rule.replace('-', '_')}",
                        outcomes=[rule])  # fmt: skip
    call_id = call_ends(db, campaign, status, answered_by)
    assert settle(db, call_id) == "none"
    call = read(db, Call, call_id)
    assert call.disposition == f"auto_{outcome.replace('-', '_')}"
    assert call.disposition_source == "rule"
    assert call.outcome_applied_at is not None


def test_without_a_rule_the_call_has_no_disposition(db: Database) -> None:
    campaign = make_campaign(db)
    call_id = call_ends(db, campaign, "busy")
    assert settle(db, call_id) == "none"
    assert read(db, Call, call_id).disposition is None


def test_retry_after_n_hours_requeues_the_job_and_reopens_the_completed_run(
    db: Database,
) -> None:
    campaign = make_campaign(db, max_attempts=2)
    add_disposition(db, campaign.business_id, "machine", outcomes=["machine"], action="retry",
                    retry_after_h=4)  # fmt: skip
    call_id = call_ends(db, campaign, "completed", "machine_end_beep")
    assert read(db, Run, campaign.run_id).status == RunStatus.COMPLETED  # its one job ended
    assert settle(db, call_id) == "retry"
    job = read(db, CallJob, campaign.job_ids[0])
    call = read(db, Call, call_id)
    assert job.status == CallJobStatus.QUEUED
    assert job.next_attempt_at == call.ended_at + timedelta(hours=4)
    run = read(db, Run, campaign.run_id)
    assert run.status == RunStatus.RUNNING and run.finished_at is None
    # Applying it again (a redelivered message, the sweep) changes nothing.
    assert settle(db, call_id, utcnow() + timedelta(minutes=5)) == "none"
    assert read(db, CallJob, campaign.job_ids[0]).next_attempt_at == job.next_attempt_at


def test_retry_stops_at_the_run_s_attempt_limit(db: Database) -> None:
    campaign = make_campaign(db, max_attempts=1)
    add_disposition(db, campaign.business_id, "callback", action="retry", retry_after_h=24)
    call_id = call_ends(db, campaign, "completed", disposition="callback")
    assert settle(db, call_id) == "exhausted"
    assert read(db, CallJob, campaign.job_ids[0]).status == CallJobStatus.COMPLETED
    assert read(db, Run, campaign.run_id).status == RunStatus.COMPLETED


def test_the_agent_s_disposition_is_kept_and_recycles(db: Database) -> None:
    campaign = make_campaign(db, max_attempts=3)
    add_disposition(db, campaign.business_id, "auto_done", outcomes=["completed"])
    add_disposition(db, campaign.business_id, "callback", action="retry", retry_after_h=2)
    call_id = call_ends(db, campaign, "completed", "human", disposition="callback")
    assert settle(db, call_id) == "retry"
    call = read(db, Call, call_id)
    assert (call.disposition, call.disposition_source) == ("callback", "agent")


def test_never_puts_the_number_on_the_dnc_list_and_stops_a_pending_retry(db: Database) -> None:
    campaign = make_campaign(db, max_attempts=3, retry_delay_s=60)
    add_disposition(db, campaign.business_id, "wrong_number", outcomes=["busy"], action="never")
    call_id = call_ends(db, campaign, "busy")
    # The lifecycle queued its busy retry; the disposition says never again.
    assert read(db, CallJob, campaign.job_ids[0]).status == CallJobStatus.QUEUED
    assert settle(db, call_id) == "never"
    assert read(db, CallJob, campaign.job_ids[0]).status == CallJobStatus.SKIPPED_DNC
    assert dnc_numbers(db, campaign.business_id) == [read(db, Call, call_id).to_number]
    assert read(db, Run, campaign.run_id).status == RunStatus.COMPLETED


def test_move_queues_the_lead_in_another_run(db: Database) -> None:
    campaign = make_campaign(db)
    with db.session() as session:
        target = Run(business_id=campaign.business_id, name="follow-up", status=RunStatus.DRAFT)
        session.add(target)
        session.commit()
        target_id = target.id
    add_disposition(db, campaign.business_id, "interested", action="move",
                    move_to_run_id=target_id)  # fmt: skip
    call_id = call_ends(db, campaign, "completed", disposition="interested")
    assert settle(db, call_id) == "move"
    assert settle(db, call_id) == "none"
    with db.session() as session:
        moved = session.scalars(select(CallJob).where(CallJob.run_id == target_id)).all()
        assert [(j.lead_id, j.status, j.attempt) for j in moved] == [
            (campaign.lead_ids[0], CallJobStatus.QUEUED, 0)
        ]
    assert read(db, CallJob, campaign.job_ids[0]).status == CallJobStatus.COMPLETED


def test_move_to_a_finished_run_does_nothing(db: Database) -> None:
    campaign = make_campaign(db)
    with db.session() as session:
        target = Run(business_id=campaign.business_id, name="old", status=RunStatus.COMPLETED)
        session.add(target)
        session.commit()
        target_id = target.id
    add_disposition(db, campaign.business_id, "interested", outcomes=["completed"],
                    action="move", move_to_run_id=target_id)  # fmt: skip
    call_id = call_ends(db, campaign, "completed")
    assert settle(db, call_id) == "target_closed"


def test_an_operator_s_new_disposition_recycles_again(db: Database) -> None:
    campaign = make_campaign(db, max_attempts=3)
    add_disposition(db, campaign.business_id, "callback", outcomes=["completed"],
                    action="retry", retry_after_h=1)  # fmt: skip
    add_disposition(db, campaign.business_id, "do_not_call", action="never")
    call_id = call_ends(db, campaign, "completed")
    assert settle(db, call_id) == "retry"
    with db.session() as session:
        set_by_operator(session, session.get_one(Call, call_id), "do_not_call")
        session.commit()
    assert settle(db, call_id) == "never"
    call = read(db, Call, call_id)
    assert (call.disposition, call.disposition_source) == ("do_not_call", "operator")
    assert read(db, CallJob, campaign.job_ids[0]).status == CallJobStatus.SKIPPED_DNC


@pytest.mark.parametrize(
    ("status", "answered_by"),
    [("completed", "human"), ("completed", None), ("completed", "unknown"), ("busy", None),
     ("no-answer", None), ("canceled", None)],
)  # fmt: skip
def test_a_call_with_nothing_to_decide_is_settled_when_it_ends_without_a_message(
    db: Database, status: str, answered_by: str | None
) -> None:
    """No dispositions, no machine, nothing for the run's rates: outcomes.apply would find
    nothing to do, so none is sent, and the sweep does not look for one either."""
    campaign = make_campaign(db)
    answers = metrics.CALL_ANSWERS.labels("human" if answered_by == "human" else "unknown")
    counted = answers._value.get()
    call_id, sent = ends_with_followups(db, campaign, status, answered_by)
    assert OUTCOMES_APPLY.name not in sent
    assert read(db, Call, call_id).outcome_applied_at is not None
    with db.session() as session:
        assert unapplied_calls(session, utcnow()) == []
    # Who answered is counted when the call ends, with or without outcomes.apply.
    assert answers._value.get() == counted + (status == "completed")


@pytest.mark.parametrize("case", ["rules", "agent_disposition", "machine", "failed", "abandoned"])
def test_a_call_with_something_to_decide_gets_outcomes_apply_and_the_sweep_repairs_it(
    db: Database, case: str
) -> None:
    campaign = make_campaign(db)
    if case == "rules":
        add_disposition(db, campaign.business_id, "auto_busy", outcomes=["busy"])
    status = "failed" if case == "failed" else "completed"
    call_id, sent = ends_with_followups(
        db, campaign, status,
        answered_by="machine_start" if case == "machine" else "human",
        disposition="interested" if case == "agent_disposition" else None,
        abandoned=True if case == "abandoned" else None,
    )  # fmt: skip
    assert OUTCOMES_APPLY.name in sent
    assert read(db, Call, call_id).outcome_applied_at is None
    with db.session() as session:  # should the message be lost, the sweep applies it
        assert unapplied_calls(session, utcnow()) == [call_id]


def test_a_call_not_ended_is_left_for_later(db: Database) -> None:
    campaign = make_campaign(db)
    call_id = start_attempt(db, campaign.job_ids[0], None)
    assert settle(db, call_id) is None
    assert read(db, Call, call_id).outcome_applied_at is None


def test_the_actor_and_the_sweep_apply_outcomes(
    db: Database, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    first, second = make_campaign(db), make_campaign(db, first=10)
    for campaign in (first, second):
        add_disposition(db, campaign.business_id, "no_answer", outcomes=["no-answer"])
    by_message = call_ends(db, first, "no-answer")
    lost = call_ends(db, second, "no-answer")  # its message never sent: the sweep finds it
    stub_broker.enqueue(OUTCOMES_APPLY.message(call_id=by_message))
    stub_broker.join(OUTCOMES_APPLY.queue)
    assert read(db, Call, by_message).disposition == "no_answer"
    assert read(db, Call, lost).disposition is None
    stub_broker.enqueue(OUTCOMES_SWEEP.message(period_start=0))
    stub_broker.join(OUTCOMES_SWEEP.queue)
    stub_worker.join()
    assert read(db, Call, lost).disposition == "no_answer"
