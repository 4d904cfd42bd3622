"""The dialer against the Twilio simulator through the official SDK, with a real Worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.campaigns.lifecycle.dialing import Claim, fill_slots
from libs.common.contracts import DIALER_DISPATCH, MAINTENANCE_RECONCILE
from libs.common.db import Database
from libs.common.models import Call, CallEvent, CallJob, CallJobStatus, DncEntry
from libs.common.settings import Settings
from services.calls.media.context import MediaContext
from services.calls.media.stream import MediaStream
from tests.campaign_factories import make_campaign, phone, start_attempt
from tests.support.twilio_sim import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    Simulator,
    simulator_thread,
    worker_settings_with_simulator,
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_thread(cps=1000) as simulator:
        # Calls stay up long enough to count; callbacks go nowhere (no calls service here).
        simulator.scenario(default={"ring_s": 5, "talk_s": 5})
        yield simulator


@pytest.fixture
def worker_settings(settings: Settings, sim: Simulator) -> Settings:
    return worker_settings_with_simulator(settings, sim)


def claim_next(session: Session, business_id: int, now: datetime) -> Claim | None:
    claims = fill_slots(session, business_id, now)
    return claims[0] if claims else None


def _dispatch(broker: StubBroker, worker: Worker, business_id: int, times: int = 1) -> None:
    for _ in range(times):
        DIALER_DISPATCH.send(broker, business_id=business_id)
    broker.join("high", fail_fast=True)
    worker.join()


def _jobs(db: Database, run_id: int) -> list[CallJob]:
    with db.session() as session:
        return list(session.scalars(select(CallJob).where(CallJob.run_id == run_id)))


def _statuses(db: Database, run_id: int) -> list[str]:
    return sorted(j.status.value for j in _jobs(db, run_id))


def test_never_more_than_the_limit_even_with_duplicate_messages(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    campaign = make_campaign(db, 6, limit=2)
    _dispatch(stub_broker, stub_worker, campaign.business_id, times=5)
    calls = sim.ledger()["calls"]
    assert len(calls) == 2
    assert _statuses(db, campaign.run_id) == ["dialing"] * 2 + ["queued"] * 4
    with db.session() as session:
        rows = session.scalars(select(Call)).all()
    assert {c.provider_call_sid for c in rows} == {c["sid"] for c in calls}
    # Each ledger call names its job and attempt: exactly one create per attempt.
    assert len({(c["job"], c["attempt"]) for c in calls}) == 2


def test_dnc_numbers_are_never_dialed(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    campaign = make_campaign(db, 2)
    with db.session() as session:
        session.add(DncEntry(business_id=campaign.business_id, phone_e164=phone(0)))
        session.commit()
    _dispatch(stub_broker, stub_worker, campaign.business_id)
    assert [c["to"] for c in sim.ledger()["calls"]] == [phone(1)]
    assert _statuses(db, campaign.run_id) == ["dialing", "skipped_dnc"]


def test_a_caller_who_pressed_2_is_never_dialed(
    db: Database, settings: Settings, sim: Simulator, stub_broker: StubBroker,
    stub_worker: Worker,
) -> None:  # fmt: skip
    """The opt-out a media stream records is the one the dialer reads: same business, same
    E.164 number, effective at once (the run was already queued when the caller pressed 2)."""
    campaign = make_campaign(db, 2)
    with db.session() as session:
        call = Call(business_id=campaign.business_id, direction="inbound",
                    from_number=phone(0), to_number="+14155550000",
                    provider_call_sid="CA" + "2" * 32, status="in-progress", attempt=1)  # fmt: skip
        session.add(call)
        session.commit()
        call_id = call.id
    stream_sid = "MZ" + "3" * 32

    async def call() -> None:
        def send(_data: bytes) -> None:
            pass

        ctx = MediaContext(settings, db, stub_broker, threads=2)
        ctx.pacer.start()
        stream = MediaStream(ctx, send)
        for frame in (
            {"event": "start", "streamSid": stream_sid,
             "start": {"streamSid": stream_sid, "callSid": "CA" + "2" * 32,
                       "customParameters": {"business_id": str(campaign.business_id),
                                            "call_id": str(call_id)}}},
            {"event": "dtmf", "streamSid": stream_sid, "dtmf": {"digit": "2"}},
            {"event": "stop", "streamSid": stream_sid},
        ):  # fmt: skip
            await stream.receive(json.dumps(frame))
        await stream.finish()
        await ctx.close()

    asyncio.run(call())
    _dispatch(stub_broker, stub_worker, campaign.business_id)
    assert [c["to"] for c in sim.ledger()["calls"]] == [phone(1)]
    assert _statuses(db, campaign.run_id) == ["dialing", "skipped_dnc"]


def test_invalid_number_fails_with_the_providers_code(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    sim.scenario(numbers={phone(0): {"outcome": "invalid"}})
    campaign = make_campaign(db, 1)
    _dispatch(stub_broker, stub_worker, campaign.business_id)
    [job] = _jobs(db, campaign.run_id)
    assert job.status is CallJobStatus.FAILED and job.error_code == "21211"
    assert "not a valid phone number" in (job.error_message or "")


def test_20429_is_retried_in_place(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    sim.scenario(reject_creates_with_429=2)
    campaign = make_campaign(db, 1)
    _dispatch(stub_broker, stub_worker, campaign.business_id)
    assert len(sim.ledger()["calls"]) == 1
    [job] = _jobs(db, campaign.run_id)
    assert job.status is CallJobStatus.DIALING and job.provider_call_sid and job.attempt == 1


def test_persistent_20429_gives_the_attempt_back(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    sim.scenario(reject_creates_with_429=50)
    campaign = make_campaign(db, 1)
    _dispatch(stub_broker, stub_worker, campaign.business_id)
    assert sim.ledger()["calls"] == []
    [job] = _jobs(db, campaign.run_id)
    assert job.status is CallJobStatus.QUEUED and job.attempt == 0
    assert job.next_attempt_at is not None
    with db.session() as session:
        assert session.scalars(select(Call)).all() == []


def test_outside_calling_hours_the_job_waits_for_the_window(db: Database) -> None:
    campaign = make_campaign(db, 1, timezone="America/New_York", window=("08:00", "21:00"))
    early = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 06:00 in New York
    with db.session() as session:
        assert claim_next(session, campaign.business_id, early) is None
        session.commit()
    [job] = _jobs(db, campaign.run_id)
    assert job.status is CallJobStatus.QUEUED
    assert job.next_attempt_at == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # 08:00 there
    with db.session() as session:
        assert claim_next(session, campaign.business_id, early.replace(hour=12)) is None
        claim = claim_next(session, campaign.business_id, datetime(2026, 11, 23, 13, 0, tzinfo=UTC))
        session.commit()
    assert claim is not None and claim.attempt == 1


def test_late_evening_waits_until_the_next_morning(db: Database) -> None:
    campaign = make_campaign(db, 1, timezone="America/Los_Angeles", window=("08:00", "21:00"))
    late = datetime(2026, 11, 24, 5, 30, tzinfo=UTC)  # 21:30 on the 23rd in Los Angeles
    with db.session() as session:
        assert claim_next(session, campaign.business_id, late) is None
        session.commit()
    [job] = _jobs(db, campaign.run_id)
    assert job.next_attempt_at == datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def test_an_unknown_create_outcome_is_not_failed_while_the_provider_cannot_say(
    db: Database, settings: Settings, redis_client: object
) -> None:
    # The provider is unreachable: whether the call exists is unknown, and failing the job
    # would be a guess that may leave a lead uncalled. It stays dialing until the provider
    # answers the reconciler's question.
    from libs.queueops.broker import build_broker
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
        _past_the_creation_window(db)
        MAINTENANCE_RECONCILE.send(broker, period_start=0)
        broker.join("maintenance", fail_fast=True)
        worker.join()
    finally:
        worker.stop()
    [job] = _jobs(db, campaign.run_id)
    assert job.status is CallJobStatus.DIALING and job.error_code is None


def _claim_and_die(db: Database, business_id: int) -> Claim:
    """What a worker SIGKILLed right after its claim committed leaves: an attempt dialing,
    with its Call row, past the creation window, and no provider call id."""

    from libs.common.models import utcnow

    with db.session() as session:
        [claim] = fill_slots(session, business_id, utcnow())
        session.commit()
    _past_the_creation_window(db)
    return claim


def _past_the_creation_window(db: Database) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from libs.common.models import utcnow

    with db.session() as session:
        session.execute(
            update(CallJob).values(dialing_started_at=utcnow() - timedelta(seconds=120))
        )
        session.commit()


def _reconcile(broker: StubBroker, worker: Worker) -> None:
    MAINTENANCE_RECONCILE.send(broker, period_start=0)
    broker.join("maintenance", fail_fast=True)
    worker.join()


def test_an_attempt_whose_worker_died_before_the_provider_was_asked_is_placed_again(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    campaign = make_campaign(db, 1)
    claim = _claim_and_die(db, campaign.business_id)
    assert sim.ledger()["calls"] == []
    _reconcile(stub_broker, stub_worker)
    [call] = sim.ledger()["calls"]
    assert (call["job"], call["attempt"]) == (str(claim.job_id), str(claim.attempt))
    [job] = _jobs(db, campaign.run_id)
    assert job.status is CallJobStatus.DIALING and job.provider_call_sid == call["sid"]
    assert job.attempt == claim.attempt  # the same attempt: no lead dialed a second time
    _reconcile(stub_broker, stub_worker)  # a second pass finds the id: nothing more
    assert len(sim.ledger()["calls"]) == 1


def test_an_attempt_of_a_run_canceled_since_its_claim_is_not_placed(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    from sqlalchemy import update

    from libs.common.models import Run, RunStatus

    campaign = make_campaign(db, 1)
    _claim_and_die(db, campaign.business_id)
    with db.session() as session:
        session.execute(update(Run).values(status=RunStatus.CANCELED))
        session.commit()
    _reconcile(stub_broker, stub_worker)
    assert sim.ledger()["calls"] == []
    [job] = _jobs(db, campaign.run_id)
    assert (job.status, job.error_code) == (CallJobStatus.FAILED, "no_provider_call_id")


def test_an_attempt_whose_worker_died_after_the_provider_created_it_is_adopted(
    db: Database,
    sim: Simulator,
    stub_broker: StubBroker,
    stub_worker: Worker,
    worker_settings: Settings,
) -> None:
    from libs.telephony.twilio_provider import make_client
    from services.worker.dialer.placer import status_callback_url, voice_url

    campaign = make_campaign(db, 1)
    claim = _claim_and_die(db, campaign.business_id)
    # The provider created it; the worker died before storing the id, and the callbacks that
    # would have attached it went nowhere.
    created = make_client(worker_settings).calls.create(
        to=claim.phone,
        from_=worker_settings.twilio_from_number,
        url=voice_url("http://127.0.0.1:9", claim),
        status_callback=status_callback_url("http://127.0.0.1:9", claim),
    )
    _reconcile(stub_broker, stub_worker)
    assert [c["sid"] for c in sim.ledger()["calls"]] == [created.sid]
    [job] = _jobs(db, campaign.run_id)
    assert job.provider_call_sid == created.sid and job.attempt == claim.attempt
    with db.session() as session:
        [call] = session.scalars(select(Call)).all()
    assert call.provider_call_sid == created.sid


def test_an_earlier_attempts_call_to_the_same_number_is_not_adopted(
    db: Database,
    sim: Simulator,
    stub_broker: StubBroker,
    stub_worker: Worker,
    worker_settings: Settings,
) -> None:
    from sqlalchemy import update

    from libs.telephony.twilio_provider import make_client

    campaign = make_campaign(db, 1, max_attempts=2)
    earlier = make_client(worker_settings).calls.create(
        to=phone(0), from_=worker_settings.twilio_from_number, url="http://127.0.0.1:9/voice"
    )
    with db.session() as session:  # attempt 1 was that call (it ended busy, say)
        job = session.get_one(CallJob, campaign.job_ids[0])
        session.add(Call(business_id=campaign.business_id, run_id=campaign.run_id,
                         job_id=job.id, attempt=1, to_number=phone(0), status="busy",
                         provider_call_sid=earlier.sid))  # fmt: skip
        session.execute(update(CallJob).values(attempt=1))
        session.commit()
    claim = _claim_and_die(db, campaign.business_id)
    assert claim.attempt == 2
    _reconcile(stub_broker, stub_worker)
    calls = sim.ledger()["calls"]
    assert len(calls) == 2 and calls[1]["attempt"] == "2"
    [job] = _jobs(db, campaign.run_id)
    assert job.provider_call_sid == calls[1]["sid"]


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


def test_a_finished_attempt_is_not_redialed(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    campaign = make_campaign(db, 1)
    start_attempt(db, campaign.job_ids[0], "CA" + "f" * 32)
    _dispatch(stub_broker, stub_worker, campaign.business_id, times=3)
    assert sim.ledger()["calls"] == []


def test_the_call_id_is_stored_through_a_database_outage(
    db: Database,
    sim: Simulator,
    stub_broker: StubBroker,
    stub_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The provider created the call; storing its id fails twice (PostgreSQL restarting). The
    # id exists only in the worker: it must be stored once the database answers again.
    from sqlalchemy.exc import OperationalError

    from services.worker.dialer import placer

    store = placer._store_sid_once
    failures = [OperationalError("SELECT", {}, ConnectionError("server closed")) for _ in "xx"]

    def flaky_store(*args: object) -> None:
        if failures:
            raise failures.pop()
        store(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(placer, "_store_sid_once", flaky_store)
    campaign = make_campaign(db, 1)
    _dispatch(stub_broker, stub_worker, campaign.business_id)
    [call] = sim.ledger()["calls"]
    [job] = _jobs(db, campaign.run_id)
    assert not failures and job.provider_call_sid == call["sid"]


def test_reconciler_asks_the_provider_about_a_call_failed_as_never_created(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    # Failed by the reconciler as never created, then its id turned up (a late callback) but
    # not its final status: the provider is asked, and its answer replaces the guess.
    import time
    from datetime import timedelta

    from sqlalchemy import update

    from libs.common.call_status import NO_PROVIDER_CALL_ID
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


def _store_callback(db: Database, sid: str, status: str, age_s: float = 0.0) -> None:
    """What the calls service does with a status callback: store it, unapplied."""
    from datetime import timedelta

    from libs.campaigns.lifecycle.status import store_callback
    from libs.common.models import utcnow

    params = {"CallSid": sid, "CallStatus": status, "CallDuration": "1"}
    with db.engine.connect() as connection:
        when = utcnow() - timedelta(seconds=age_s)
        assert store_callback(connection, sid, status, 3, params, when) is not None


def test_a_call_that_ends_has_its_slot_filled_by_the_worker_that_applies_it(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    # One slot: the second job waits for the first call's end, and is placed by the worker
    # that applies that end (no dialer.dispatch message between them).
    from libs.common.contracts import CALLS_STATUS_CHANGED

    campaign = make_campaign(db, 2, limit=1)
    _dispatch(stub_broker, stub_worker, campaign.business_id)
    [first] = sim.ledger()["calls"]
    dispatched: list[str] = []
    enqueue = stub_broker.enqueue

    def spy(message: Any, *, delay: int | None = None) -> Any:
        dispatched.append(message.actor_name)
        return enqueue(message, delay=delay)

    setattr(stub_broker, "enqueue", spy)  # noqa: B010
    _store_callback(db, first["sid"], "completed")
    CALLS_STATUS_CHANGED.send(stub_broker, sid=first["sid"], status="completed", job_id=None,
                              attempt=None)  # fmt: skip
    stub_broker.join("high", fail_fast=True)
    stub_worker.join()
    assert len(sim.ledger()["calls"]) == 2
    assert "dialer.dispatch" not in dispatched
    statuses = _statuses(db, campaign.run_id)
    assert statuses == ["completed", "dialing"]


def test_reconciler_resends_a_lost_status_message(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    campaign = make_campaign(db, 1)
    sid = "CA" + "7" * 32
    job_id = campaign.job_ids[0]
    start_attempt(db, job_id, sid)
    # Stored by the calls service, whose message was then lost; and a callback of a call no
    # one knows (not ours, or not stored yet), which is not re-sent.
    _store_callback(db, sid, "completed", age_s=30)
    _store_callback(db, "CA" + "8" * 32, "completed", age_s=30)
    MAINTENANCE_RECONCILE.send(stub_broker, period_start=0)
    stub_broker.join("maintenance", fail_fast=True)
    stub_broker.join("high", fail_fast=True)
    stub_worker.join()
    assert _statuses(db, campaign.run_id) == ["completed"]
    with db.session() as session:
        rows = session.execute(select(CallEvent.provider_call_sid, CallEvent.applied)).all()
    applied = dict(rows)
    assert applied == {sid: True, "CA" + "8" * 32: False}
