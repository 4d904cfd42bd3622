"""Enqueue after commit: a rolled-back transaction sends nothing."""

import pytest
from dramatiq.brokers.stub import StubBroker

from libs.common.contracts import SYSTEM_PING
from libs.common.db import Database
from libs.common.models import BackgroundJob
from libs.queueops.outbox import enqueue_after_commit, pending_messages
from libs.queueops.queue_health import QueueUnavailable


@pytest.fixture
def broker() -> StubBroker:
    broker = StubBroker()
    broker.declare_queue("default")
    return broker


def test_message_leaves_only_when_the_transaction_commits(db: Database, broker: StubBroker) -> None:
    with db.session() as session:
        job = BackgroundJob(kind="system.ping")
        session.add(job)
        session.flush()
        enqueue_after_commit(session, SYSTEM_PING.message(background_job_id=job.id), broker)
        assert pending_messages(session)
        assert broker.queues["default"].qsize() == 0
        session.commit()
    assert broker.queues["default"].qsize() == 1


def test_rollback_drops_the_message(db: Database, broker: StubBroker) -> None:
    with db.session() as session:
        enqueue_after_commit(session, SYSTEM_PING.message(background_job_id=1), broker)
        session.rollback()
        assert pending_messages(session) == []
        session.commit()
    assert broker.queues["default"].qsize() == 0


def test_an_exception_in_the_transaction_sends_nothing(db: Database, broker: StubBroker) -> None:
    with pytest.raises(RuntimeError), db.session() as session:
        enqueue_after_commit(session, SYSTEM_PING.message(background_job_id=1), broker)
        raise RuntimeError("request failed")
    assert broker.queues["default"].qsize() == 0


def test_a_broker_failure_after_commit_is_reported(db: Database) -> None:
    from libs.common.settings import Settings
    from libs.queueops.broker import build_broker
    from tests.support.services import unreachable_redis_url

    dead = build_broker(Settings(redis_url=unreachable_redis_url()), worker=False)
    with db.session() as session:
        session.add(BackgroundJob(kind="system.ping"))
        enqueue_after_commit(session, SYSTEM_PING.message(background_job_id=1), dead)
        with pytest.raises(QueueUnavailable):
            session.commit()


def test_a_batch_the_broker_refuses_is_reported_as_refused_one_by_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Several messages for the Redis broker leave in one pipeline; when it fails, each is
    handled as refused: a repairable one is logged, any other makes the sender raise."""
    from libs.common.contracts import DIALER_DISPATCH, OUTCOMES_APPLY
    from libs.common.settings import Settings
    from libs.queueops.broker import build_broker
    from libs.queueops.outbox import Outgoing, send_committed
    from tests.support.services import unreachable_redis_url

    dead = build_broker(Settings(redis_url=unreachable_redis_url()), worker=False)
    outcome = Outgoing(OUTCOMES_APPLY.message(call_id=1), repairable=True)
    dispatch = Outgoing(DIALER_DISPATCH.message(business_id=1), repairable=True)
    send_committed([outcome, dispatch], dead)  # both repairable: logged, not raised
    warned = [r for r in caplog.records if "reconciler sends it again" in r.getMessage()]
    assert len(warned) == 2
    must_leave = Outgoing(DIALER_DISPATCH.message(business_id=2), repairable=False)
    with pytest.raises(QueueUnavailable):
        send_committed([outcome, must_leave], dead)
