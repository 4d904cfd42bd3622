"""Coalesced messages (libs/queueops/coalescing.py): one dialer.dispatch waiting per business and
one outcomes.price waiting at a time, without ever missing a freed slot or an unpriced call."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dramatiq import Message, Worker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select

from libs.campaigns.lifecycle import followups
from libs.campaigns.lifecycle.status import StatusUpdate, apply_status, lock_call
from libs.campaigns.outcomes import pricing
from libs.common import metrics
from libs.common.contracts import DIALER_DISPATCH, OUTCOMES_PRICE
from libs.common.db import Database
from libs.common.models import Call, CallJob, CallJobStatus, utcnow
from libs.common.settings import Settings
from libs.queueops import coalescing
from libs.queueops.outbox import send_committed
from services.worker.actors import dialer, outcomes
from tests.campaign_factories import make_campaign
from tests.support.twilio_sim import Simulator, simulator_thread, worker_settings_with_simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulator_thread(cps=1000) as simulator:
        # Calls the simulator ends on its own soon (so it has their price); their callbacks go
        # nowhere: the tests end them in the database, as the calls service would.
        simulator.scenario(default={"ring_s": 0.05, "talk_s": 0.1})
        yield simulator


@pytest.fixture
def worker_settings(settings: Settings, sim: Simulator) -> Settings:
    return worker_settings_with_simulator(settings, sim)


@pytest.fixture
def coalesce(redis_client: Any, settings: Settings) -> Iterator[None]:
    """Coalescing on, as the worker and the calls service install it at boot (the Redis is
    the test's, flushed before and after)."""
    coalescing.install(settings.redis_url)
    yield
    coalescing.install(None)


def waiting(broker: StubBroker, actor: str) -> int:
    """Messages of ``actor`` waiting in the stub broker (ready or delayed)."""
    return sum(
        1
        for queue in broker.queues.values()
        for encoded in list(queue.queue)
        if Message.decode(encoded).actor_name == actor
    )


def coalesced(actor: str) -> float:
    return metrics.MESSAGES_COALESCED.labels(actor)._value.get()


def dialing_calls(db: Database, business_id: int) -> list[int]:
    with db.session() as session:
        return list(
            session.scalars(
                select(Call.id)
                .join(CallJob, CallJob.id == Call.job_id)
                .where(
                    Call.business_id == business_id,
                    CallJob.status == CallJobStatus.DIALING,
                    CallJob.attempt == Call.attempt,
                )
                .order_by(Call.id)
            )
        )


def end_call(db: Database, call_id: int, broker: StubBroker, status: str = "completed") -> None:
    """The calls service's status callback: the call ends, then its follow-ups are sent."""
    with db.session() as session:
        call = lock_call(session, call_id=call_id)
        assert call is not None
        applied = apply_status(session, call, StatusUpdate(status, duration_s=1), utcnow())
        session.commit()
    send_committed(applied.followups, broker)


def run_dispatches(broker: StubBroker, worker: Worker) -> None:
    broker.join(DIALER_DISPATCH.queue, fail_fast=True)
    worker.join()


def test_a_second_dispatch_is_not_sent_while_one_waits_but_a_delayed_one_is(
    stub_broker: StubBroker, coalesce: None
) -> None:
    before = coalesced(DIALER_DISPATCH.name)
    send_committed([followups.dispatch(7)], stub_broker)
    send_committed([followups.dispatch(7), followups.dispatch(7)], stub_broker)
    assert waiting(stub_broker, DIALER_DISPATCH.name) == 1
    assert coalesced(DIALER_DISPATCH.name) == before + 2
    send_committed([followups.dispatch(8)], stub_broker)  # another business: its own mark
    send_committed([followups.dispatch(7, delay_ms=5_000)], stub_broker)  # a retry falls due
    send_committed([followups.dispatch(7, repairable=False)], stub_broker)  # a run starts
    assert waiting(stub_broker, DIALER_DISPATCH.name) == 4


def test_the_marks_of_one_send_are_claimed_together_each_for_its_own_message(
    stub_broker: StubBroker, coalesce: None
) -> None:
    """A callback's dispatch and price leave in one send: their marks are set in one round
    trip, and each decides for its own message only."""
    send_committed([followups.dispatch(9)], stub_broker)
    before = coalesced(DIALER_DISPATCH.name), coalesced(OUTCOMES_PRICE.name)
    send_committed([followups.dispatch(9), followups.price(), followups.price()], stub_broker)
    assert waiting(stub_broker, DIALER_DISPATCH.name) == 1
    assert waiting(stub_broker, OUTCOMES_PRICE.name) == 1
    assert (coalesced(DIALER_DISPATCH.name), coalesced(OUTCOMES_PRICE.name)) == (
        before[0] + 1,
        before[1] + 1,
    )


def test_without_redis_every_message_is_sent(stub_broker: StubBroker) -> None:
    coalescing.install("redis://127.0.0.1:9/0")  # nothing listens: Redis cannot say
    try:
        send_committed([followups.dispatch(7), followups.dispatch(7)], stub_broker)
    finally:
        coalescing.install(None)
    assert waiting(stub_broker, DIALER_DISPATCH.name) == 2


def test_slots_freed_while_a_dispatch_waits_are_filled_by_that_one_dispatch(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker, coalesce: None
) -> None:
    campaign = make_campaign(db, 10, limit=3)
    send_committed([followups.dispatch(campaign.business_id)], stub_broker)
    run_dispatches(stub_broker, stub_worker)
    first = dialing_calls(db, campaign.business_id)
    assert len(first) == 3
    stub_worker.pause()
    for call_id in first[:2]:
        end_call(db, call_id, stub_broker)
    assert waiting(stub_broker, DIALER_DISPATCH.name) == 1  # the second one was coalesced
    stub_worker.resume()
    run_dispatches(stub_broker, stub_worker)
    assert len(dialing_calls(db, campaign.business_id)) == 3
    assert len(sim.ledger()["calls"]) == 5


def test_a_slot_freed_after_a_dispatch_read_the_free_slots_gets_a_dispatch_of_its_own(
    db: Database,
    sim: Simulator,
    stub_broker: StubBroker,
    stub_worker: Worker,
    coalesce: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race: the consumer clears the mark before it reads, so a producer committing after
    the read (while the consumer still runs) sets the mark again and sends a new dispatch."""
    campaign = make_campaign(db, 10, limit=3)
    send_committed([followups.dispatch(campaign.business_id)], stub_broker)
    run_dispatches(stub_broker, stub_worker)
    active = dialing_calls(db, campaign.business_id)
    real_fill_slots: Callable[..., Any] = dialer.fill_slots
    passes: list[int] = []

    def fill_slots_then_a_slot_frees(*args: Any, **kwargs: Any) -> Any:
        claims = real_fill_slots(*args, **kwargs)
        passes.append(len(claims))
        if len(passes) == 1:  # after this pass read the free slots, before it placed
            end_call(db, active[1], stub_broker)
        return claims

    monkeypatch.setattr(dialer, "fill_slots", fill_slots_then_a_slot_frees)
    stub_worker.pause()
    end_call(db, active[0], stub_broker)
    stub_worker.resume()
    run_dispatches(stub_broker, stub_worker)
    assert passes == [1, 1]  # the freed slot had a dispatch of its own
    assert len(dialing_calls(db, campaign.business_id)) == 3


def test_one_price_message_prices_every_call_that_ended_meanwhile(
    db: Database,
    sim: Simulator,
    stub_broker: StubBroker,
    stub_worker: Worker,
    coalesce: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    campaign = make_campaign(db, 3, limit=3)
    send_committed([followups.dispatch(campaign.business_id)], stub_broker)
    run_dispatches(stub_broker, stub_worker)
    calls = dialing_calls(db, campaign.business_id)
    stub_worker.pause()
    for call_id in calls:
        end_call(db, call_id, stub_broker)
    assert waiting(stub_broker, OUTCOMES_PRICE.name) == 1  # delayed: Twilio prices later
    requests: list[int] = []
    real_fetch = pricing.fetch_prices

    def counting_fetch(twilio: Any, batch: Any) -> Any:
        requests.append(len(batch))
        return real_fetch(twilio, batch)

    monkeypatch.setattr(pricing, "fetch_prices", counting_fetch)
    _until_the_simulator_prices(sim, len(calls))
    stub_worker.resume()
    stub_broker.join(OUTCOMES_PRICE.queue, fail_fast=True)
    stub_worker.join()
    assert requests == [3]  # one provider request for the three calls
    with db.session() as session:
        prices = session.scalars(select(Call.price_micros).where(Call.id.in_(calls))).all()
    assert all(p is not None and p > 0 for p in prices)
    # The message cleared its mark before reading: a call ending now sends the next one.
    stub_worker.pause()
    send_committed([followups.price()], stub_broker)
    assert waiting(stub_broker, OUTCOMES_PRICE.name) == 1


def test_calls_the_provider_has_not_priced_yet_are_asked_about_again(
    db: Database, sim: Simulator, stub_broker: StubBroker, stub_worker: Worker, coalesce: None
) -> None:
    sim.scenario(default={"ring_s": 0.05, "talk_s": 30})  # still talking at the provider
    campaign = make_campaign(db, 1, limit=3)
    send_committed([followups.dispatch(campaign.business_id)], stub_broker)
    run_dispatches(stub_broker, stub_worker)
    (call_id,) = dialing_calls(db, campaign.business_id)
    stub_worker.pause()
    end_call(db, call_id, stub_broker)
    outcomes.price()  # what the delayed message does: the provider has no price yet
    assert waiting(stub_broker, OUTCOMES_PRICE.name) == 2  # the first, and the one asking later


def _until_the_simulator_prices(sim: Simulator, count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(1 for c in sim.ledger()["calls"] if c.get("price")) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("the simulator did not end its calls")
