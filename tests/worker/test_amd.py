"""Answering-machine detection per run against the simulated Twilio, through the real dialer,
calls app and worker: every AnsweredBy value answers one lead; each policy does what it says
(voicemail played after the beep, hang-ups, the agent left talking), machines are retried by
the run's policy, and the run's analytics match the simulator's ledger."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select, update

from libs.campaigns.outcomes import analytics
from libs.common.call_status import OPEN_JOB_STATUSES
from libs.common.contracts import DIALER_DISPATCH
from libs.common.db import Database
from libs.common.models import Call, CallJob, CallJobStatus, Run
from libs.common.settings import Settings
from tests.campaign_factories import Campaign, make_campaign, phone
from tests.support.calls_service import calls_service_thread
from tests.support.services import free_port
from tests.support.twilio_sim import Simulator, simulator_thread, worker_settings_with_simulator

ANSWERED_BY = ["human", "machine_start", "machine_end_beep", "machine_end_silence",
               "machine_end_other", "fax", "unknown"]  # fmt: skip
VOICEMAIL = "Hello from Acme, please call us back."


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_thread(cps=1000) as simulator:
        numbers = {phone(i): {"answered_by": a} for i, a in enumerate(ANSWERED_BY)}
        simulator.scenario(default={"ring_s": 0.1, "talk_s": 1.5}, numbers=numbers)
        yield simulator


@pytest.fixture
def calls_port() -> int:
    return free_port()


@pytest.fixture
def worker_settings(settings: Settings, sim: Simulator, calls_port: int) -> Settings:
    return worker_settings_with_simulator(settings, sim).with_overrides(
        public_base_url=f"http://127.0.0.1:{calls_port}"
    )


def _run(db: Database, **policy: Any) -> Campaign:
    campaign = make_campaign(db, len(ANSWERED_BY), limit=len(ANSWERED_BY))
    with db.session() as session:
        session.execute(update(Run).where(Run.id == campaign.run_id).values(**policy))
        session.commit()
    return campaign


def _settle(db: Database, run_id: int, sim: Simulator) -> None:
    deadline = time.monotonic() + 60
    while True:
        with db.session() as session:
            open_jobs = session.scalar(select(func.count()).select_from(CallJob).where(
                CallJob.run_id == run_id, CallJob.status.in_(OPEN_JOB_STATUSES),
                CallJob.next_attempt_at.is_(None) | (CallJob.attempt == 0)))  # fmt: skip
            unsettled = session.scalar(select(func.count()).select_from(Call).where(
                Call.run_id == run_id, Call.outcome_applied_at.is_(None)))  # fmt: skip
        if not open_jobs and not unsettled:
            return
        assert time.monotonic() < deadline, sim.ledger()
        time.sleep(0.2)


def _by_answer(sim: Simulator) -> dict[str, dict[str, Any]]:
    return {c["answered_by"]: c for c in sim.ledger()["calls"]}


def _calls(db: Database, run_id: int) -> dict[str, Call]:
    with db.session() as session:
        rows = session.scalars(select(Call).where(Call.run_id == run_id)).all()
        for row in rows:
            session.expunge(row)
    return {str(c.answered_by): c for c in rows}


def test_voicemail_after_the_beep_and_hang_ups(
    db: Database, sim: Simulator, worker_settings: Settings, calls_port: int,
    stub_broker: StubBroker, stub_worker: Worker,
) -> None:  # fmt: skip
    campaign = _run(db, amd_mode="DetectMessageEnd", machine_action="voicemail",
                    voicemail_text=VOICEMAIL)  # fmt: skip
    with calls_service_thread(worker_settings, stub_broker, calls_port):
        DIALER_DISPATCH.send(stub_broker, business_id=campaign.business_id)
        _settle(db, campaign.run_id, sim)
        stub_worker.join()
    ledger, calls = _by_answer(sim), _calls(db, campaign.run_id)
    assert set(ledger) == set(ANSWERED_BY) == set(calls)
    for machine in ("machine_end_beep", "machine_end_silence", "machine_end_other"):
        assert ledger[machine]["voicemail_after_beep"], ledger[machine]
        assert (
            VOICEMAIL in ledger[machine]["twiml"][-1] and "<Hangup" in ledger[machine]["twiml"][-1]
        )
        assert calls[machine].machine_action == "voicemail"
    # machine_start (still greeting) and fax are hung up on: no message played.
    for hung_up in ("machine_start", "fax"):
        assert not ledger[hung_up]["twiml"] and calls[hung_up].machine_action == "hung_up"
        assert ledger[hung_up]["duration_s"] < 1.5
    for person in ("human", "unknown"):  # the agent talks; nothing redirected
        assert not ledger[person]["twiml"] and calls[person].machine_action is None
        assert calls[person].amd_at is not None
    with db.session() as session:
        totals, _ = analytics.figures(session, campaign.business_id, run_id=campaign.run_id)
    answered = [c for c in ledger.values() if c["status"] == "completed"]
    assert totals.attempts == len(ledger) and totals.answered == len(answered)
    assert totals.machines == sum(a.startswith("machine") for a in ledger) == 4
    assert totals.fax == 1 and totals.humans == 2


def test_hang_up_on_machines_and_retry_them_without_counting_an_attempt(
    db: Database, sim: Simulator, worker_settings: Settings, calls_port: int,
    stub_broker: StubBroker, stub_worker: Worker,
) -> None:  # fmt: skip
    campaign = _run(db, amd_mode="Enable", machine_action="hang_up",
                    machine_counts_as_attempt=False, machine_retry_delay_s=3600)  # fmt: skip
    with calls_service_thread(worker_settings, stub_broker, calls_port):
        DIALER_DISPATCH.send(stub_broker, business_id=campaign.business_id)
        _settle(db, campaign.run_id, sim)
        stub_worker.join()
    ledger, calls = _by_answer(sim), _calls(db, campaign.run_id)
    machines = [a for a in ANSWERED_BY if a.startswith("machine")]
    for machine in machines:
        assert calls[machine].machine_action == "hung_up" and not ledger[machine]["twiml"]
    with db.session() as session:
        jobs = {j.id: j for j in session.scalars(select(CallJob).where(
            CallJob.run_id == campaign.run_id))}  # fmt: skip
    for machine in machines:  # max_attempts 1, yet retried: a machine is not an attempt here
        job = jobs[calls[machine].job_id or 0]
        assert job.status == CallJobStatus.QUEUED
        assert job.next_attempt_at == calls[machine].ended_at + timedelta(hours=1)
    for other in ("human", "unknown", "fax"):
        assert jobs[calls[other].job_id or 0].status == CallJobStatus.COMPLETED
