"""One emission per period across scheduler replicas, and no emission after losing the lock."""

import time

import redis
from dramatiq.brokers.stub import StubBroker

from libs.common import leader, periodic
from libs.common.settings import Settings
from services.worker.scheduler import Scheduler

PERIOD = 10.0


def _scheduler(settings: Settings, broker: StubBroker, redis_url: str, ttl: float = 5) -> Scheduler:
    tuned = settings.with_overrides(scheduler_tick_s=PERIOD, scheduler_lock_ttl_s=ttl)
    return Scheduler(tuned, broker, redis.Redis.from_url(redis_url))


def _emitted(broker: StubBroker) -> int:
    return broker.queues["maintenance"].qsize()


def test_two_replicas_emit_once_per_period(
    settings: Settings, redis_url: str, redis_client: redis.Redis
) -> None:
    broker = StubBroker()
    broker.declare_queue("maintenance")
    a, b = _scheduler(settings, broker, redis_url), _scheduler(settings, broker, redis_url)
    start = 1_000_000.0
    for tick in range(30):  # 3 steps per period, both replicas each step
        now = start + tick * PERIOD / 3
        a.step(now)
        b.step(now)
    assert a.is_leader != b.is_leader
    assert _emitted(broker) == 10
    sent = [m.kwargs["period_start"] for m in _drain(broker)]
    assert sent == sorted(set(sent)), "a period was emitted twice"


def _drain(broker: StubBroker) -> list:  # type: ignore[type-arg]
    import dramatiq

    queue = broker.queues["maintenance"]
    out = []
    while not queue.empty():
        out.append(dramatiq.Message.decode(queue.get()))
    return out


def test_a_leader_that_lost_its_lock_cannot_emit(
    settings: Settings, redis_url: str, redis_client: redis.Redis
) -> None:
    broker = StubBroker()
    broker.declare_queue("maintenance")
    a = _scheduler(settings, broker, redis_url, ttl=0.5)
    b = _scheduler(settings, broker, redis_url, ttl=0.5)
    assert a.step(1_000_000.0) == 1
    time.sleep(0.7)  # a "pauses" past its TTL
    assert b.step(1_000_000.0) == 0  # b leads now, and the period was already emitted
    assert b.is_leader
    assert a.step(1_000_000.0 + PERIOD) == 0  # a wakes up: no longer leader, emits nothing
    assert not a.is_leader
    assert b.step(1_000_000.0 + PERIOD) == 1
    assert _emitted(broker) == 2
    assert a.lock.claim_once("switchboard:test:marker", 10) is None


def test_release_hands_over_immediately(
    settings: Settings, redis_url: str, redis_client: redis.Redis
) -> None:
    broker = StubBroker()
    broker.declare_queue("maintenance")
    a, b = _scheduler(settings, broker, redis_url), _scheduler(settings, broker, redis_url)
    a.step(1_000_000.0)
    holder = leader.current_holder(redis_client, periodic.LEADER_KEY)
    assert holder is not None and holder["id"] in a.lock.token
    a.lock.release()
    b.step(1_000_000.0 + PERIOD)
    assert b.is_leader
    state = periodic.read_state(redis_client, b.jobs)
    assert state[0]["next_run_at"] == 1_000_000.0 + 2 * PERIOD
