"""receipts.sync against the Gmail simulator, through the real googleapiclient: exactly the
receipts, incremental syncs fetch only what is new, expired history resyncs without duplicates,
a revoked token stops retrying, rate limits are ridden out, the quota is kept by design."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select

from libs.common.contracts import RECEIPTS_SYNC
from libs.common.crypto import generate_key, secret_box
from libs.common.db import Database
from libs.common.models import (
    BackgroundJob,
    Business,
    GmailConnection,
    JobStatus,
    Receipt,
    ReceiptAttachment,
)
from libs.common.settings import Settings
from tests.support.gmail_sim import CLIENT_ID, CLIENT_SECRET, GmailSimulator, gmail_simulator_thread


@pytest.fixture
def gsim() -> Iterator[GmailSimulator]:
    with gmail_simulator_thread() as simulator:
        yield simulator


@pytest.fixture
def worker_settings(
    settings: Settings, gsim: GmailSimulator, request: pytest.FixtureRequest
) -> Settings:
    return settings.with_overrides(
        gmail_quota_units_per_minute=getattr(request, "param", 15_000),
        service_role="worker",
        google_client_id=CLIENT_ID,
        google_client_secret=CLIENT_SECRET,
        google_token_uri=gsim.token_uri,
        gmail_api_endpoint=gsim.base_url,
        encryption_keys=generate_key(),
    )


def _connect(db: Database, settings: Settings, gsim: GmailSimulator) -> int:
    token = gsim.issue_refresh_token()
    with db.session() as session:
        business = Business(name="Receipts Co", timezone="UTC")
        session.add(business)
        session.flush()
        connection = GmailConnection(
            business_id=business.id, email="owner@example.com",
            refresh_token_encrypted=secret_box(settings).encrypt(token),
        )  # fmt: skip
        session.add(connection)
        session.commit()
        return connection.id


def _sync(db: Database, broker: StubBroker, worker: Worker, connection_id: int) -> BackgroundJob:
    with db.session() as session:
        connection = session.get_one(GmailConnection, connection_id)
        job = BackgroundJob(business_id=connection.business_id, kind="receipts.sync")
        session.add(job)
        session.flush()
        connection.sync_job_id = job.id
        session.commit()
        job_id = job.id
    RECEIPTS_SYNC.send(broker, connection_id=connection_id, background_job_id=job_id)
    broker.join("receipts", fail_fast=True)
    worker.join()
    with db.session() as session:
        return session.get_one(BackgroundJob, job_id)


def _receipts(db: Database) -> dict[str, Receipt]:
    with db.session() as session:
        return {r.gmail_message_id: r for r in session.scalars(select(Receipt))}


def _assert_matches_ground_truth(db: Database, truth: dict[str, Any]) -> None:
    receipts = _receipts(db)
    assert set(receipts) == set(truth["receipts"])
    for message_id, expected in truth["receipts"].items():
        receipt = receipts[message_id]
        assert receipt.vendor == expected["vendor"], message_id
        assert receipt.total_amount == Decimal(str(expected["total"])), message_id
        assert receipt.currency == expected["currency"], message_id
        assert receipt.receipt_date is not None
        assert receipt.receipt_date.isoformat() == expected["date"], message_id


def test_full_sync_then_an_incremental_one_fetching_only_the_new_mail(
    db: Database, worker_settings: Settings, gsim: GmailSimulator, stub_broker: StubBroker,
    stub_worker: Worker,
) -> None:  # fmt: skip
    gsim.generate(500, receipt_ratio=0.4, attachment_ratio=0.5, seed=1)
    connection_id = _connect(db, worker_settings, gsim)
    job = _sync(db, stub_broker, stub_worker, connection_id)
    assert job.status is JobStatus.SUCCEEDED, (job.error_code, job.error_message)
    assert job.result is not None and job.result["mode"] == "full"
    truth = gsim.ground_truth()
    _assert_matches_ground_truth(db, truth)
    assert job.result["receipts_created"] == len(truth["receipts"])
    with db.session() as session:
        attachments = session.scalars(select(ReceiptAttachment)).all()
    expected = {a["sha256"] for r in truth["receipts"].values() for a in r["attachments"]}
    assert expected and {a.sha256 for a in attachments} == expected

    gsim.reset_counts()
    gsim.generate(20, receipt_ratio=0.5, seed=2)
    job = _sync(db, stub_broker, stub_worker, connection_id)
    assert job.status is JobStatus.SUCCEEDED and job.result is not None
    assert job.result["mode"] == "incremental"
    calls = gsim.counts()["calls"]
    assert calls.get("history.list", 0) >= 1 and calls.get("messages.list", 0) == 0
    assert calls["messages.get"] == 20  # only the new mail
    _assert_matches_ground_truth(db, gsim.ground_truth())


def test_expired_history_resyncs_in_full_without_duplicates(
    db: Database, worker_settings: Settings, gsim: GmailSimulator, stub_broker: StubBroker,
    stub_worker: Worker,
) -> None:  # fmt: skip
    gsim.generate(60, seed=3)
    connection_id = _connect(db, worker_settings, gsim)
    assert _sync(db, stub_broker, stub_worker, connection_id).status is JobStatus.SUCCEEDED
    before = len(_receipts(db))
    # New mail, then Gmail forgets the history that records it: the stored historyId is now
    # older than the oldest record it keeps.
    gsim.generate(10, receipt_ratio=1.0, seed=4)
    gsim.expire_history()
    job = _sync(db, stub_broker, stub_worker, connection_id)
    assert job.status is JobStatus.SUCCEEDED and job.result is not None
    assert job.result["mode"] == "full"
    _assert_matches_ground_truth(db, gsim.ground_truth())
    assert len(_receipts(db)) == before + 10
    with db.session() as session:
        total = session.scalar(select(func.count()).select_from(Receipt))
    assert total == before + 10


def test_a_revoked_token_marks_the_inbox_needs_reauth_and_stops(
    db: Database, worker_settings: Settings, gsim: GmailSimulator, stub_broker: StubBroker,
    stub_worker: Worker,
) -> None:  # fmt: skip
    gsim.generate(10, seed=5)
    connection_id = _connect(db, worker_settings, gsim)
    gsim.revoke()
    gsim.reset_counts()
    job = _sync(db, stub_broker, stub_worker, connection_id)
    assert (job.status, job.error_code) == (JobStatus.FAILED, "needs_reauth")
    with db.session() as session:
        connection = session.get_one(GmailConnection, connection_id)
    assert connection.status == "needs_reauth" and connection.last_error
    calls = gsim.counts()["calls"]
    # One refusal, no retry storm: no message is redelivered, no Gmail call made.
    assert calls.get("token.refresh", 0) <= 2 and calls.get("messages.list", 0) == 0
    assert stub_broker.queues["receipts"].qsize() == 0
    # A later sync of that inbox fails at once, without asking Google again.
    gsim.reset_counts()
    again = _sync(db, stub_broker, stub_worker, connection_id)
    assert (
        again.error_code == "needs_reauth" and gsim.counts()["calls"].get("token.refresh", 0) == 0
    )


def test_rate_limit_answers_are_ridden_out(
    db: Database, worker_settings: Settings, gsim: GmailSimulator, stub_broker: StubBroker,
    stub_worker: Worker, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # The backoff honours Retry-After (1 s here); a shorter sleep keeps the test quick.
    from services.worker.receipts import gmail_calls

    monkeypatch.setattr(gmail_calls.GmailCalls, "_backoff", staticmethod(lambda exc, n: 0.01))
    gsim.generate(30, seed=6)
    connection_id = _connect(db, worker_settings, gsim)
    gsim.scenario(rate_limit_next=4)
    job = _sync(db, stub_broker, stub_worker, connection_id)
    assert job.status is JobStatus.SUCCEEDED and job.result is not None
    assert job.result["rate_limited"] == 4 and gsim.counts()["rate_limited"] == 4
    _assert_matches_ground_truth(db, gsim.ground_truth())


QUOTA = 6000


@pytest.mark.parametrize("worker_settings", [QUOTA], indirect=True)
def test_the_quota_is_kept_by_design_not_by_429s(
    db: Database, gsim: GmailSimulator, stub_broker: StubBroker, stub_worker: Worker,
    worker_settings: Settings,
) -> None:  # fmt: skip
    """A quota of 6,000 units a minute (100/s) on both sides: 150 messages cost ~760 units,
    more than the 300-unit burst, so the sync must pace itself, and is never refused."""
    limit = QUOTA
    gsim.scenario(quota_units_per_minute=limit)
    gsim.generate(150, receipt_ratio=1.0, attachment_ratio=0.0, seed=7)
    connection_id = _connect(db, worker_settings, gsim)
    started = time.monotonic()
    job = _sync(db, stub_broker, stub_worker, connection_id)
    elapsed = time.monotonic() - started
    assert job.status is JobStatus.SUCCEEDED and job.result is not None
    counts = gsim.counts()
    assert counts["rate_limited"] == 0
    assert counts["peak_units_per_minute"] <= limit * 0.95
    # Past the burst (5 % of the quota) units come at 90 % of the quota's rate.
    paced = (counts["units_total"] - limit * 0.05) / (limit * 0.9 / 60)
    assert elapsed >= paced * 0.9, (elapsed, paced, counts)


def test_each_stored_receipt_is_one_receipt_synced_event_delivered_to_the_business(
    db: Database, worker_settings: Settings, gsim: GmailSimulator, stub_broker: StubBroker,
    stub_worker: Worker,
) -> None:  # fmt: skip
    import jsonschema

    from libs.common.models import WebhookEvent
    from libs.events import catalogue, endpoints
    from tests.support.webhook_receiver import webhook_receiver

    gsim.generate(60, receipt_ratio=0.5, attachment_ratio=0.5, seed=3)
    connection_id = _connect(db, worker_settings, gsim)
    with webhook_receiver() as receiver:
        with db.session() as session:
            business_id = session.get_one(GmailConnection, connection_id).business_id
            endpoints.create(session, secret_box(worker_settings), business_id, receiver.url,
                             ["receipt.synced"])  # fmt: skip
            session.commit()
        _sync(db, stub_broker, stub_worker, connection_id)
        _sync(db, stub_broker, stub_worker, connection_id)  # a resync stores nothing new
        stub_broker.join("webhooks", fail_fast=True)
        stub_worker.join()
        receipts = _receipts(db)
        with db.session() as session:
            events = session.scalars(select(WebhookEvent)).all()
        assert sorted(e.payload["data"]["gmail_message_id"] for e in events) == sorted(receipts)
        schema = catalogue.envelope_schema(catalogue.EVENT_TYPES["receipt.synced"])
        for event in events:
            jsonschema.validate(event.payload, schema)
        with_files = [e for e in events if e.payload["data"]["attachments"]]
        assert with_files and all(len(a["sha256"]) == 64 for e in with_files
                                  for a in e.payload["data"]["attachments"])  # fmt: skip
        assert sorted(r.event_id for r in receiver.accepted()) == sorted(
            e.public_id for e in events
        )
