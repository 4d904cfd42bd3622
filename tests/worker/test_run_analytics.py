"""A run against the simulated Twilio with humans, every machine AnsweredBy, fax, busy,
no-answer and failed numbers: through the real dialer, calls app and outcome actors, the
run's analytics (attempts, answers by who answered, talk time, cost from the provider's
price) match the simulator's ledger call for call."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select

from libs.campaigns.outcomes import analytics
from libs.common.call_status import OPEN_JOB_STATUSES
from libs.common.contracts import DIALER_DISPATCH
from libs.common.db import Database
from libs.common.models import Call, CallJob
from libs.common.settings import Settings
from tests.campaign_factories import make_campaign, phone
from tests.support.calls_service import calls_service_thread
from tests.support.services import free_port
from tests.support.twilio_sim import Simulator, simulator_thread, worker_settings_with_simulator

ANSWERED_BY = ["human", "machine_start", "machine_end_beep", "machine_end_silence",
               "machine_end_other", "fax", "unknown"]  # fmt: skip
OTHERS = [{"outcome": "busy"}, {"outcome": "no-answer"}, {"outcome": "failed"}]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_thread(cps=1000) as simulator:
        numbers = {phone(i): {"answered_by": a, "talk_s": 0.3 + i * 0.1}
                   for i, a in enumerate(ANSWERED_BY)}  # fmt: skip
        numbers |= {phone(len(ANSWERED_BY) + i): b for i, b in enumerate(OTHERS)}
        simulator.scenario(default={"ring_s": 0.1, "talk_s": 0.3}, numbers=numbers)
        yield simulator


@pytest.fixture
def calls_port() -> int:
    return free_port()


@pytest.fixture
def worker_settings(settings: Settings, sim: Simulator, calls_port: int) -> Settings:
    return worker_settings_with_simulator(settings, sim).with_overrides(
        public_base_url=f"http://127.0.0.1:{calls_port}"
    )


def _settled(db: Database, run_id: int, answered: int) -> bool:
    with db.session() as session:
        open_jobs = session.scalar(select(func.count()).select_from(CallJob).where(
            CallJob.run_id == run_id, CallJob.status.in_(OPEN_JOB_STATUSES)))  # fmt: skip
        priced = session.scalar(select(func.count()).select_from(Call).where(
            Call.run_id == run_id, Call.price_micros.is_not(None)))  # fmt: skip
    return open_jobs == 0 and priced == answered


def test_the_run_s_analytics_match_the_simulator_s_ledger(
    db: Database, sim: Simulator, worker_settings: Settings, calls_port: int,
    stub_broker: StubBroker, stub_worker: Worker,
) -> None:  # fmt: skip
    leads = len(ANSWERED_BY) + len(OTHERS)
    campaign = make_campaign(db, leads, limit=leads)
    with calls_service_thread(worker_settings, stub_broker, calls_port):
        DIALER_DISPATCH.send(stub_broker, business_id=campaign.business_id)
        deadline = time.monotonic() + 60
        while not _settled(db, campaign.run_id, len(ANSWERED_BY)):
            assert time.monotonic() < deadline, sim.ledger()
            time.sleep(0.2)
        stub_worker.join()
    ledger = sim.ledger()["calls"]
    with db.session() as session:
        totals, days = analytics.figures(session, campaign.business_id, run_id=campaign.run_id)
    answered = [c for c in ledger if c["status"] == "completed"]
    assert totals.attempts == len(ledger) == leads
    assert totals.answered == len(answered) == len(ANSWERED_BY)
    machines = [c for c in answered if (c["answered_by"] or "").startswith("machine_")]
    assert totals.machines == len(machines) == 4
    assert totals.fax == sum(c["answered_by"] == "fax" for c in answered) == 1
    assert totals.humans == 2  # human and unknown
    assert totals.talk_time_s == sum(c["duration_s"] for c in answered)
    assert totals.cost_micros == round(sum(-float(c["price"]) for c in answered) * 1_000_000)
    assert totals.by_status == {"busy": 1, "completed": 7, "failed": 1, "no-answer": 1}
    assert sum(day.attempts for day in days.values()) == leads
