"""The reconciler (services/worker/reconciler.py) repairing what crashes and lost callbacks
leave, against the Twilio simulator through the official SDK, with a real Worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from libs.common.contracts import DIALER_DISPATCH, MAINTENANCE_RECONCILE
from libs.common.db import Database
from libs.common.models import Call, CallJob, CallJobStatus
from libs.common.settings import Settings
from tests.campaign_factories import make_campaign
from tests.support.twilio_sim import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    Simulator,
    simulator_thread,
    worker_settings_with_simulator,
)

# The same simulator and helpers as tests/worker/test_dialer.py: the reconciler repairs the
# dialer's jobs, so its tests start them the same way.


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_thread(cps=1000) as simulator:
        # Calls stay up long enough to count; callbacks go nowhere (no calls service here).
        simulator.scenario(default={"ring_s": 5, "talk_s": 5})
        yield simulator


@pytest.fixture
def worker_settings(settings: Settings, sim: Simulator) -> Settings:
    return worker_settings_with_simulator(settings, sim)


def _dispatch(broker: StubBroker, worker: Worker, business_id: int, times: int = 1) -> None:
    for _ in range(times):
        DIALER_DISPATCH.send(broker, business_id=business_id)
    broker.join("high", fail_fast=True)
    worker.join()


def _jobs(db: Database, run_id: int) -> list[CallJob]:
    with db.session() as session:
        return list(session.scalars(select(CallJob).where(CallJob.run_id == run_id)))


def test_unknown_create_outcome_is_failed_by_the_reconciler(
    db: Database, settings: Settings, redis_client: object
) -> None:
    from libs.common.broker import build_broker
    from services.worker.actors import register_actors

    dead_provider = settings.with_overrides(
        service_role="worker",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_api_base="http://127.0.0.1:9",  # connection refused: did the call happen?
        dialing_timeout_s=1,
    )
    broker = build_broker(dead_provider, worker=True, stub=True)
    register_actors(broker)
    worker = Worker(broker, worker_timeout=50)
    worker.start()
    try:
        campaign = make_campaign(db, 1)
        _dispatch(broker, worker, campaign.business_id)  # type: ignore[arg-type]
        [job] = _jobs(db, campaign.run_id)
        assert job.status is CallJobStatus.DIALING and job.provider_call_sid is None
        import time

        time.sleep(1.2)
        MAINTENANCE_RECONCILE.send(broker, period_start=0)
        broker.join("maintenance", fail_fast=True)
        worker.join()
    finally:
        worker.stop()
    [job] = _jobs(db, campaign.run_id)
    assert job.status is CallJobStatus.FAILED and job.error_code == "no_provider_call_id"


def test_reconciler_asks_the_provider_about_calls_without_a_final_status(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from libs.common.models import utcnow

    sim.scenario(default={"ring_s": 0.05, "talk_s": 0.05})
    campaign = make_campaign(db, 1)
    _dispatch(stub_broker, stub_worker, campaign.business_id)
    import time

    time.sleep(0.5)  # the simulated call ends; its callbacks are lost (nothing listens)
    with db.session() as session:
        session.execute(update(Call).values(created_at=utcnow() - timedelta(days=1)))
        session.commit()
    MAINTENANCE_RECONCILE.send(stub_broker, period_start=0)
    stub_broker.join("maintenance", fail_fast=True)
    stub_worker.join()
    [job] = _jobs(db, campaign.run_id)
    assert job.status is CallJobStatus.COMPLETED
    with db.session() as session:
        [call] = session.scalars(select(Call)).all()
    assert call.status == "completed"


def test_reconciler_redispatches_a_run_whose_messages_were_lost(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    make_campaign(db, 2)  # running, but no dispatch message was ever sent
    MAINTENANCE_RECONCILE.send(stub_broker, period_start=0)
    stub_broker.join("maintenance", fail_fast=True)
    stub_broker.join("high", fail_fast=True)
    stub_worker.join()
    assert len(sim.ledger()["calls"]) == 2


def test_reconciler_asks_the_provider_about_a_call_failed_as_never_created(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    # Failed by the reconciler as never created, then its id turned up (a late callback) but
    # not its final status: the provider is asked, and its answer replaces the guess.
    import time
    from datetime import timedelta

    from sqlalchemy import update

    from libs.common.campaigns.call_state import NO_PROVIDER_CALL_ID
    from libs.common.models import utcnow

    sim.scenario(default={"ring_s": 0.05, "talk_s": 0.05})
    campaign = make_campaign(db, 1)
    _dispatch(stub_broker, stub_worker, campaign.business_id)
    time.sleep(0.5)  # the simulated call ends; its callbacks are lost (nothing listens)
    with db.session() as session:
        session.execute(
            update(Call).values(
                status="failed",
                error_code=NO_PROVIDER_CALL_ID,
                created_at=utcnow() - timedelta(days=1),
            )
        )
        session.execute(update(CallJob).values(status=CallJobStatus.FAILED,
                                               error_code=NO_PROVIDER_CALL_ID))  # fmt: skip
        session.commit()
    MAINTENANCE_RECONCILE.send(stub_broker, period_start=0)
    stub_broker.join("maintenance", fail_fast=True)
    stub_worker.join()
    [job] = _jobs(db, campaign.run_id)
    with db.session() as session:
        [call] = session.scalars(select(Call)).all()
    assert (call.status, call.error_code) == ("completed", None)
    assert job.status is CallJobStatus.COMPLETED and job.error_code is None
