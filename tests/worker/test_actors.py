"""Actors with Dramatiq's StubBroker and a real Worker, against the real database."""

from datetime import timedelta

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import update

from libs.common import metrics
from libs.common.contracts import MAINTENANCE_RECONCILE, SYSTEM_PING
from libs.common.db import Database
from libs.common.models import BackgroundJob, JobStatus, utcnow
from libs.common.request_context import set_request_id


def _new_job(db: Database, **values: object) -> int:
    with db.session() as session:
        job = BackgroundJob(kind="system.ping", **values)
        session.add(job)
        session.commit()
        return job.id


def _job(db: Database, job_id: int) -> BackgroundJob:
    with db.session() as session:
        job = session.get(BackgroundJob, job_id)
        assert job is not None
        return job


def test_ping_marks_the_job_done_with_the_request_id(
    db: Database, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    job_id = _new_job(db)
    set_request_id("req-from-http")
    try:
        SYSTEM_PING.send(stub_broker, background_job_id=job_id)
    finally:
        set_request_id(None)
    stub_broker.join("default", fail_fast=True)
    stub_worker.join()
    job = _job(db, job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.result is not None and job.result["request_id"] == "req-from-http"
    assert job.finished_at is not None


def test_ping_is_idempotent_under_redelivery(
    db: Database, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    job_id = _new_job(db)
    SYSTEM_PING.send(stub_broker, background_job_id=job_id)
    stub_broker.join("default", fail_fast=True)
    stub_worker.join()
    first = _job(db, job_id).finished_at
    SYSTEM_PING.send(stub_broker, background_job_id=job_id)  # at-least-once: a second delivery
    stub_broker.join("default", fail_fast=True)
    stub_worker.join()
    assert _job(db, job_id).finished_at == first


def test_a_missing_row_is_skipped_not_retried(
    db: Database, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    before = metrics.ACTOR_MISSING_ROWS.labels("system.ping")._value.get()
    SYSTEM_PING.send(stub_broker, background_job_id=987654)
    stub_broker.join("default", fail_fast=True)  # raises if the actor failed
    stub_worker.join()
    assert stub_broker.dead_letters == []
    assert metrics.ACTOR_MISSING_ROWS.labels("system.ping")._value.get() == before + 1


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
def test_reconcile_fails_stalled_jobs_only(
    db: Database, stub_broker: StubBroker, stub_worker: Worker, status: JobStatus
) -> None:
    stalled = _new_job(db, status=status)
    fresh = _new_job(db, status=status)
    done = _new_job(db, status=JobStatus.SUCCEEDED)
    with db.session() as session:
        long_ago = utcnow() - timedelta(days=2)
        session.execute(
            update(BackgroundJob)
            .where(BackgroundJob.id.in_([stalled, done]))
            .values(updated_at=long_ago)
        )
        session.commit()
    for _ in range(2):  # the same tick twice changes nothing more
        MAINTENANCE_RECONCILE.send(stub_broker, period_start=0)
        stub_broker.join("maintenance", fail_fast=True)
        stub_worker.join()
    assert _job(db, stalled).status is JobStatus.FAILED
    assert _job(db, stalled).error_code == "stalled"
    assert _job(db, fresh).status is status
    assert _job(db, done).status is JobStatus.SUCCEEDED
