"""Compliance and self-protection: a call a person answered that heard no agent within 2 s is
abandoned; a run pauses itself before its 30-day abandonment rate passes 3 %, and when its
calls fail at the provider past the threshold (against the simulated Twilio, through the real
dialer, calls app and worker), saying why, with a run.paused event; resume clears it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from libs.campaigns.lifecycle.status import StatusUpdate, apply_status, lock_call
from libs.campaigns.outcomes import compliance
from libs.campaigns.outcomes.apply import apply_outcome
from libs.common.contracts import DIALER_DISPATCH
from libs.common.crypto import generate_key, secret_box
from libs.common.db import Database
from libs.common.models import (
    Call,
    CallJob,
    CallJobStatus,
    Run,
    RunStatus,
    WebhookEvent,
    utcnow,
)
from libs.common.settings import Settings
from libs.events import endpoints
from tests.campaign_factories import Campaign, make_campaign, phone, start_attempt
from tests.support.calls_service import calls_service_thread
from tests.support.services import free_port
from tests.support.twilio_sim import Simulator, simulator_thread, worker_settings_with_simulator

_sids = iter(range(20_000, 99_999))


def _media_broker() -> StubBroker:
    """Where the media path's follow-ups go in these tests (nobody consumes them)."""
    broker = StubBroker()
    broker.declare_queue("default")
    return broker


def _answered_call(db: Database, campaign: Campaign, job_index: int, heard_after_s: float | None,
                   stream_ends_first: bool = True) -> int:  # fmt: skip
    """A person answers job ``job_index``'s call; the agent is first heard ``heard_after_s``
    after the answer (None: never); the stream's end and the final status, in either order."""
    sid = f"CA{next(_sids):032d}"
    call_id = start_attempt(db, campaign.job_ids[job_index], sid)
    answered = utcnow() - timedelta(seconds=30)
    with db.session() as session:
        locked = lock_call(session, call_id=call_id)  # answered: the voice webhook's move
        assert locked is not None
        apply_status(session, locked, StatusUpdate("in-progress", answered_by="human"), answered)
        call = session.get_one(Call, call_id)
        call.stream_sid = "MZ" + sid[2:]
        session.commit()

    def stream_ends() -> None:
        with db.session() as session:
            call = session.get_one(Call, call_id)
            heard = (
                answered + timedelta(seconds=heard_after_s) if heard_after_s is not None else None
            )
            compliance.stream_finished(session, call, heard, _media_broker())
            session.commit()

    def status_ends() -> None:
        with db.session() as session:
            locked = lock_call(session, call_id=call_id)
            assert locked is not None
            apply_status(session, locked, StatusUpdate("completed", 30, "human"), utcnow())
            session.commit()

    for step in (stream_ends, status_ends) if stream_ends_first else (status_ends, stream_ends):
        step()
    with db.session() as session:
        apply_outcome(session, call_id, utcnow())
        session.commit()
    return call_id


def _run(db: Database, run_id: int) -> Run:
    with db.session() as session:
        run = session.get_one(Run, run_id)
        session.expunge(run)
        return run


def test_abandonment_is_judged_and_pauses_the_run_before_3_percent(
    db: Database, settings: Settings
) -> None:
    campaign = make_campaign(db, 70, limit=70)
    box = secret_box(settings.with_overrides(encryption_keys=generate_key()))
    with db.session() as session:
        endpoints.create(session, box, campaign.business_id, "https://hooks.example.com/x",
                         ["run.paused"], "")  # fmt: skip
        session.commit()
    # Heard at 1.9 s: not abandoned; the stream's end before or after the final status.
    for i in range(40):
        call_id = _answered_call(db, campaign, i, 1.9, stream_ends_first=bool(i % 2))
    assert _run(db, campaign.run_id).status == RunStatus.RUNNING
    with db.session() as session:
        assert session.get_one(Call, call_id).abandoned is False
    # Heard at 2.5 s: abandoned. 1 of 41, and one more would be 2 of 42 (4.8 %): it pauses now.
    late = _answered_call(db, campaign, 40, 2.5)
    run = _run(db, campaign.run_id)
    with db.session() as session:
        assert session.get_one(Call, late).abandoned is True
        events = session.scalars(
            select(WebhookEvent).where(WebhookEvent.type == "run.paused")
        ).all()
        rate = compliance.abandon_rate(session, campaign.run_id, utcnow())
    assert run.status == RunStatus.PAUSED and run.auto_paused_at is not None
    assert run.paused_reason and "1 of 41" in run.paused_reason and "3%" in run.paused_reason
    assert rate == round(1 / 41, 4)
    (event,) = events
    assert event.payload["data"]["reason"] == "abandonment"
    assert event.payload["data"]["message"] == run.paused_reason


def test_a_stream_the_agent_never_spoke_on_is_abandoned_and_machines_are_not_judged(
    db: Database,
) -> None:
    campaign = make_campaign(db, 2, limit=2)
    call_id = _answered_call(db, campaign, 0, None)
    with db.session() as session:
        assert session.get_one(Call, call_id).abandoned is True
        machine = session.get_one(Call, start_attempt(db, campaign.job_ids[1], "CA" + "4" * 32))
        machine.answered_by, machine.stream_sid = "machine_end_beep", "MZ1"
        assert compliance.judge_abandoned(session, machine) is None


def _calls(db: Database, run_id: int, outcomes: list[tuple[str, bool | None, timedelta]]) -> None:
    """Ended calls of the run as rows: (status, abandoned, how long ago it ended)."""
    now = utcnow()
    with db.session() as session:
        run = session.get_one(Run, run_id)
        session.add_all(
            Call(business_id=run.business_id, run_id=run_id, attempt=1, to_number=phone(i),
                 provider_call_sid=f"CA{next(_sids):032d}", status=status, abandoned=abandoned,
                 ended_at=now - ago)
            for i, (status, abandoned, ago) in enumerate(outcomes)
        )  # fmt: skip
        session.commit()


def _limits(db: Database, run_id: int, **limits: Any) -> None:
    with db.session() as session:
        run = session.get_one(Run, run_id)
        for name, value in limits.items():
            setattr(run, name, value)
        session.commit()


def _reason(db: Database, run_id: int) -> tuple[str, str] | None:
    with db.session() as session:
        return compliance.pause_reason(session, run_id, utcnow())


def test_a_run_pauses_at_its_own_lower_abandonment_limit(db: Database) -> None:
    """1 abandoned of 80 judged: one more would be 2.5 %, under the default 3 % but over a run's
    2 %; a limit above 3 % in a row (refused by the API and the database alike) counts as 3 %."""
    default, strict = make_campaign(db, 1), make_campaign(db, 1, first=100)
    fine = [("completed", False, timedelta(minutes=5))] * 79
    for campaign in (default, strict):
        _calls(db, campaign.run_id, [*fine, ("completed", True, timedelta(minutes=5))])
    assert _reason(db, default.run_id) is None
    _limits(db, strict.run_id, max_abandon_rate=0.02)
    found = _reason(db, strict.run_id)
    assert found is not None and found[0] == "abandonment"
    assert "1 of 80" in found[1] and found[1].endswith("one more would pass 2%")
    with db.session() as session:
        assert compliance.limits(session, default.run_id) == compliance.Limits()
    with pytest.raises(IntegrityError), db.session() as session:
        session.get_one(Run, default.run_id).max_abandon_rate = 0.05
        session.commit()


def test_a_run_pauses_at_its_own_provider_failure_threshold_and_window(db: Database) -> None:
    """6 calls ended in the last minute, 2 failed (33 %); 20 failed 5 minutes ago. By default
    (10 minutes, 50 %, 10 calls at least) that is 22 of 26 failed: paused; with a 60 s window
    it is 2 of 6, under 50 % and under the 10-call sample; at 25 % over 5 calls it pauses."""
    campaign = make_campaign(db, 1)
    recent = [("failed", None, timedelta(seconds=10))] * 2
    recent += [("completed", None, timedelta(seconds=20))] * 4
    _calls(db, campaign.run_id, [*recent, *[("failed", None, timedelta(minutes=5))] * 20])
    found = _reason(db, campaign.run_id)
    assert found == ("provider_failures",
                     "22 of the 26 calls that ended in the last 10 minutes failed at the "
                     "provider (carrier errors, invalid numbers): above 50%")  # fmt: skip
    _limits(db, campaign.run_id, failure_window_s=60)
    assert _reason(db, campaign.run_id) is None
    _limits(db, campaign.run_id, max_failure_rate=0.25, min_failure_sample=5)
    assert _reason(db, campaign.run_id) == (
        "provider_failures", "2 of the 6 calls that ended in the last 1 minute failed at the "
        "provider (carrier errors, invalid numbers): above 25%")  # fmt: skip


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_thread(cps=1000) as simulator:
        failing: dict[str, Any] = {phone(i): {"outcome": "failed"} for i in range(2, 30)}
        failing |= {phone(i): {"outcome": "invalid"} for i in range(30, 40)}
        simulator.scenario(default={"ring_s": 0.1, "talk_s": 0.2}, numbers=failing)
        yield simulator


@pytest.fixture
def calls_port() -> int:
    return free_port()


@pytest.fixture
def worker_settings(settings: Settings, sim: Simulator, calls_port: int) -> Settings:
    return worker_settings_with_simulator(settings, sim).with_overrides(
        public_base_url=f"http://127.0.0.1:{calls_port}"
    )


def test_provider_failures_pause_the_run_instead_of_burning_the_list(
    db: Database, sim: Simulator, worker_settings: Settings, calls_port: int,
    stub_broker: StubBroker, stub_worker: Worker, client: Any, tenant_a: Any,
) -> None:  # fmt: skip
    campaign = make_campaign(db, 60, limit=2)
    with calls_service_thread(worker_settings, stub_broker, calls_port):
        DIALER_DISPATCH.send(stub_broker, business_id=campaign.business_id)
        deadline = time.monotonic() + 60
        while _run(db, campaign.run_id).status == RunStatus.RUNNING:
            assert time.monotonic() < deadline, "the run never paused itself"
            time.sleep(0.2)
        time.sleep(1)  # calls in flight end
        stub_worker.join()
    run = _run(db, campaign.run_id)
    assert run.status == RunStatus.PAUSED and run.paused_reason
    assert "failed at the provider" in run.paused_reason
    with db.session() as session:
        queued = session.scalar(select(CallJob.id).where(
            CallJob.run_id == campaign.run_id,
            CallJob.status == CallJobStatus.QUEUED).limit(1))  # fmt: skip
    assert queued is not None, "the rest of the list was not dialed"
    placed = len(sim.ledger()["calls"])
    assert placed < 40, placed
