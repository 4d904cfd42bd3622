"""Placing scheduled calls: through the dialer to the Twilio simulator, once per contact and
local day under double ticks and redelivery, retried then visibly failed, repaired when lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select, update

from libs.common.contracts import MAINTENANCE_RECONCILE, SCHEDULES_PLACE_CALL, SCHEDULES_TICK
from libs.common.db import Database
from libs.common.models import (
    CallJob,
    CallJobStatus,
    Lead,
    OccurrenceStatus,
    Run,
    RunStatus,
    Schedule,
    ScheduleOccurrence,
    utcnow,
)
from libs.common.settings import Settings
from services.worker.schedules import placement
from services.worker.schedules.due import process_due
from tests.campaign_factories import phone
from tests.conftest import empty_database
from tests.schedule_factories import make_schedules
from tests.support.twilio_sim import (
    Simulator,
    simulator_thread,
    worker_settings_with_simulator,
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_thread(cps=1000) as simulator:
        simulator.scenario(default={"ring_s": 5, "talk_s": 5})
        yield simulator


@pytest.fixture
def worker_settings(settings: Settings, sim: Simulator) -> Settings:
    return worker_settings_with_simulator(settings, sim)


def _due_now(db: Database, count: int = 1, first_phone: int = 0) -> list[int]:
    """Schedules (UTC) whose time was a minute ago, created before it: due now."""
    now = utcnow()
    at = (now - timedelta(minutes=1)).strftime("%H:%M")
    return make_schedules(
        db, [(at, "UTC")] * count, now - timedelta(minutes=3), first_phone=first_phone
    )


def _drain(broker: StubBroker, worker: Worker, *queues: str, fail_fast: bool = True) -> None:
    for queue in queues:
        broker.join(queue, fail_fast=fail_fast)
    worker.join()


def _occurrences(db: Database) -> list[ScheduleOccurrence]:
    with db.session() as session:
        return list(session.scalars(select(ScheduleOccurrence).order_by(ScheduleOccurrence.id)))


def _count(db: Database, model: type) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_due_schedule_is_called_through_the_dialer(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    [schedule_id] = _due_now(db)
    SCHEDULES_TICK.send(stub_broker, period_start=0)
    _drain(stub_broker, stub_worker, "default", "high")
    assert [c["to"] for c in sim.ledger()["calls"]] == [phone(0)]
    [occurrence] = _occurrences(db)
    assert occurrence.status is OccurrenceStatus.PLACED and occurrence.call_job_id
    with db.session() as session:
        job = session.get_one(CallJob, occurrence.call_job_id)
        run = session.get_one(Run, job.run_id)
        schedule = session.get_one(Schedule, schedule_id)
    assert job.status is CallJobStatus.DIALING and job.attempt == 1
    assert run.kind == "daily" and run.daily_date == occurrence.local_date
    assert run.status is RunStatus.RUNNING
    # Moved on to the next day, recomputed after the call.
    assert schedule.next_due_at == occurrence.due_at + timedelta(days=1)


def test_double_ticks_and_redelivered_messages_make_one_call(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    [schedule_id] = _due_now(db)
    first = process_due(db, stub_broker, utcnow(), grace_s=3600)
    second = process_due(db, stub_broker, utcnow(), grace_s=3600)
    assert (first.queued, second.queued) == (1, 0)
    [(_, local_date)] = first.placed
    for _ in range(3):  # the broker redelivers the same message
        SCHEDULES_PLACE_CALL.send(stub_broker, schedule_id=schedule_id, local_date=local_date)
    # Even a tick that believes the schedule is due again (an edit moved it back) adds nothing.
    with db.session() as session:
        session.execute(
            update(Schedule)
            .where(Schedule.id == schedule_id)
            .values(next_due_at=utcnow() - timedelta(seconds=5))
        )
        session.commit()
    third = process_due(db, stub_broker, utcnow(), grace_s=3600)
    assert third.queued == 0 and third.already_recorded == 1
    _drain(stub_broker, stub_worker, "high")
    assert len(sim.ledger()["calls"]) == 1
    assert _count(db, CallJob) == 1 and _count(db, ScheduleOccurrence) == 1


def test_concurrent_due_checks_split_the_work(db: Database, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks with SKIP LOCKED are a PostgreSQL feature")
    _due_now(db, count=300)
    broker = StubBroker()
    broker.declare_queue("high")
    now = utcnow()
    results = []

    def check() -> None:
        results.append(process_due(db, broker, now, grace_s=3600, batch_size=25))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    placed = [key for result in results for key in result.placed]
    assert len(placed) == len(set(placed)) == 300
    assert broker.queues["high"].qsize() == 300
    assert _count(db, ScheduleOccurrence) == 300


def test_double_tick_on_sqlite(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    try:
        _due_now(database, count=3)
        broker = StubBroker()
        broker.declare_queue("high")
        now = utcnow()
        assert process_due(database, broker, now, grace_s=3600).queued == 3
        assert process_due(database, broker, now, grace_s=3600).queued == 0
        assert broker.queues["high"].qsize() == 3
    finally:
        empty_database(database)
        database.dispose()


def test_placement_failures_are_retried_then_visible_as_failed(
    db: Database,
    stub_broker: StubBroker,
    stub_worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fault injection: the step that writes the call job fails every time.
    attempts = []

    def broken(*args: object, **kwargs: object) -> None:
        attempts.append(1)
        raise RuntimeError("database said no")

    monkeypatch.setattr(placement, "_add_to_daily_run", broken)
    _due_now(db)
    process_due(db, stub_broker, utcnow(), grace_s=3600)
    _drain(stub_broker, stub_worker, "high", fail_fast=False)
    assert len(attempts) == 3  # the first try and two retries with backoff
    [occurrence] = _occurrences(db)
    assert occurrence.status is OccurrenceStatus.FAILED
    assert occurrence.error_message == ("gave up after 3 attempts: RuntimeError: database said no")
    assert len(stub_broker.dead_letters) == 1
    assert _count(db, CallJob) == 0


def test_past_the_grace_window_an_occurrence_is_missed_not_called(db: Database) -> None:
    [schedule_id] = _due_now(db)
    broker = StubBroker()
    broker.declare_queue("high")
    result = process_due(db, broker, utcnow() + timedelta(hours=2), grace_s=3600)
    assert (result.queued, result.missed) == (0, 1)
    [occurrence] = _occurrences(db)
    assert occurrence.status is OccurrenceStatus.MISSED
    assert "past the 3600 s grace window" in (occurrence.error_message or "")
    assert broker.queues["high"].qsize() == 0
    with db.session() as session:
        next_due = session.get_one(Schedule, schedule_id).next_due_at
    assert next_due is not None and next_due > utcnow() + timedelta(hours=1)


def test_a_schedule_disabled_before_placement_is_skipped(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    [schedule_id] = _due_now(db)
    process_due(db, stub_broker, utcnow(), grace_s=3600)
    with db.session() as session:
        session.execute(update(Schedule).where(Schedule.id == schedule_id).values(enabled=False))
        session.commit()
    _drain(stub_broker, stub_worker, "high")
    [occurrence] = _occurrences(db)
    assert occurrence.status is OccurrenceStatus.SKIPPED
    assert sim.ledger()["calls"] == []


def test_the_daily_run_reopens_for_a_later_call_the_same_day(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    _, second = _due_now(db, count=2)
    process_due(db, stub_broker, utcnow(), grace_s=3600)
    [(_, day), _] = sorted((o.schedule_id, o.local_date.isoformat()) for o in _occurrences(db))
    # Only the first is placed; its call ends and the daily run completes.
    with db.session() as session:
        session.execute(
            update(ScheduleOccurrence)
            .where(ScheduleOccurrence.schedule_id == second)
            .values(status=OccurrenceStatus.SKIPPED)
        )
        session.commit()
    _drain(stub_broker, stub_worker, "high")
    with db.session() as session:
        session.execute(update(CallJob).values(status=CallJobStatus.COMPLETED))
        session.execute(update(Run).values(status=RunStatus.COMPLETED, finished_at=utcnow()))
        session.execute(
            update(ScheduleOccurrence)
            .where(ScheduleOccurrence.schedule_id == second)
            .values(status=OccurrenceStatus.PENDING)
        )
        session.commit()
    SCHEDULES_PLACE_CALL.send(stub_broker, schedule_id=second, local_date=day)
    _drain(stub_broker, stub_worker, "high")
    with db.session() as session:
        [run] = session.scalars(select(Run)).all()
        jobs = session.scalars(select(CallJob).where(CallJob.run_id == run.id)).all()
    assert run.status is RunStatus.RUNNING and run.finished_at is None
    assert run.daily_date == date.fromisoformat(day)
    assert len(jobs) == 2
    assert len(sim.ledger()["calls"]) == 2


def test_the_reconciler_resends_a_lost_place_call(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    _due_now(db)
    lost = StubBroker()  # the message goes to a broker nobody reads: lost with Redis
    lost.declare_queue("high")
    process_due(db, lost, utcnow(), grace_s=3600)
    with db.session() as session:
        session.execute(
            update(ScheduleOccurrence).values(created_at=utcnow() - timedelta(minutes=5))
        )
        session.commit()
    MAINTENANCE_RECONCILE.send(stub_broker, period_start=0)
    _drain(stub_broker, stub_worker, "maintenance", "high")
    [occurrence] = _occurrences(db)
    assert occurrence.status is OccurrenceStatus.PLACED
    assert len(sim.ledger()["calls"]) == 1


def test_the_reconciler_reopens_a_daily_run_completed_while_a_job_was_added(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    _due_now(db)
    process_due(db, stub_broker, utcnow(), grace_s=3600)
    _drain(stub_broker, stub_worker, "high")
    # The race's outcome, built directly: the run completed, yet a new job sits queued in it.
    with db.session() as session:
        [job] = session.scalars(select(CallJob)).all()
        job.status = CallJobStatus.COMPLETED
        lead = Lead(business_id=job.business_id, name="Late", phone_e164=phone(50))
        session.add(lead)
        session.flush()
        session.add(
            CallJob(run_id=job.run_id, business_id=job.business_id, lead_id=lead.id,
                    phone_e164=lead.phone_e164, timezone="UTC")
        )  # fmt: skip
        session.execute(update(Run).values(status=RunStatus.COMPLETED, finished_at=utcnow()))
        session.commit()
    MAINTENANCE_RECONCILE.send(stub_broker, period_start=0)
    _drain(stub_broker, stub_worker, "maintenance", "high")
    with db.session() as session:
        [run] = session.scalars(select(Run)).all()
    assert run.status is RunStatus.RUNNING and run.finished_at is None
    assert [c["to"] for c in sim.ledger()["calls"]] == [phone(0), phone(50)]
