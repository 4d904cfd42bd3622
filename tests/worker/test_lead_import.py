"""leads.import_csv: rows imported, bad rows reported, bad files failed clearly."""

from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from libs.common.contracts import LEADS_IMPORT_CSV
from libs.common.db import Database
from libs.common.models import BackgroundJob, Lead, Upload
from tests.conftest import Tenant


def _import(
    db: Database, tenant: Tenant, content: bytes, broker: StubBroker, worker: Worker
) -> BackgroundJob:
    with db.session() as session:
        job = BackgroundJob(business_id=tenant.business_id, kind="leads.import_csv")
        session.add(job)
        session.flush()
        session.add(
            Upload(business_id=tenant.business_id, background_job_id=job.id, content=content)
        )
        session.commit()
        job_id = job.id
    LEADS_IMPORT_CSV.send(broker, background_job_id=job_id)
    broker.join("low", fail_fast=True)
    worker.join()
    with db.session() as session:
        return session.get_one(BackgroundJob, job_id)


def test_rows_are_imported_and_errors_reported(
    db: Database, tenant_a: Tenant, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    rows = "\n".join(f"Lead {i},+1415555{i:04d},America/Chicago" for i in range(1000, 2200))
    content = f"name,phone,timezone\n{rows}\nBroken,12,\nZoned,+14155559999,Nowhere/Land\n"
    job = _import(db, tenant_a, content.encode(), stub_broker, stub_worker)
    assert job.status.value == "succeeded"
    assert job.progress_done == job.progress_total == 1202
    assert job.result is not None
    assert (job.result["created"], job.result["invalid"]) == (1200, 2)
    assert [e["line"] for e in job.result["errors"]] == [1202, 1203]
    with db.session() as session:
        assert len(session.scalars(select(Lead)).all()) == 1200
        upload = session.scalar(select(Upload))
        assert upload is not None and upload.content is None  # not kept once imported


def test_a_redelivered_import_creates_nothing_twice(
    db: Database, tenant_a: Tenant, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    content = b"phone\n+14155550100\n+14155550101\n"
    job = _import(db, tenant_a, content, stub_broker, stub_worker)
    LEADS_IMPORT_CSV.send(stub_broker, background_job_id=job.id)
    stub_broker.join("low", fail_fast=True)
    stub_worker.join()
    with db.session() as session:
        assert len(session.scalars(select(Lead)).all()) == 2


def test_bad_files_fail_with_a_clear_error(
    db: Database, tenant_a: Tenant, stub_broker: StubBroker, stub_worker: Worker
) -> None:
    cases = {
        b"name,email\nAda,a@x\n": "no phone column",
        b"\xff\xfe\x00\xd8bad": "UTF-8",
        b"": "empty",
    }
    for content, fragment in cases.items():
        job = _import(db, tenant_a, content, stub_broker, stub_worker)
        assert job.status.value == "failed", content
        assert fragment in (job.error_message or ""), (content, job.error_message)
