"""One emission per period across scheduler replicas, no emission after losing the lock, and
catch-up of missed periods within the grace window without emitting any period twice."""

import time

import dramatiq
import redis
from dramatiq.brokers.stub import StubBroker

from libs.common.settings import Settings
from libs.queueops import leader, periodic
from services.worker.scheduler import Scheduler

PERIOD = 10.0
START = 1_000_000.0


def _broker() -> StubBroker:
    broker = StubBroker()
    broker.declare_queue("maintenance")
    broker.declare_queue("default")
    return broker


def _scheduler(
    settings: Settings, broker: StubBroker, redis_url: str, ttl: float = 5, grace: float = 60
) -> Scheduler:
    tuned = settings.with_overrides(
        scheduler_tick_s=PERIOD,
        schedule_tick_s=PERIOD,
        schedule_grace_s=grace,
        scheduler_lock_ttl_s=ttl,
        webhook_sweep_s=PERIOD,
    )
    return Scheduler(tuned, broker, redis.Redis.from_url(redis_url))


def _drain(broker: StubBroker, queue_name: str) -> list[dramatiq.Message]:  # type: ignore[type-arg]
    queue = broker.queues[queue_name]
    out = []
    while not queue.empty():
        out.append(dramatiq.Message.decode(queue.get()))
    return out


def _periods(broker: StubBroker, queue_name: str, actor: str | None = None) -> list[int]:
    """The periods emitted on a queue (for one actor when several share it)."""
    messages = _drain(broker, queue_name)
    return [m.kwargs["period_start"] for m in messages if actor in (None, m.actor_name)]


#: Periodic jobs each step can emit: reconcile, schedules_tick, webhooks_sweep, outcomes_sweep,
#: recordings_expire.
JOBS = 5
#: Of those, emitted once an hour only (recordings_expire): not due again a PERIOD later.
HOURLY = 1


def test_two_replicas_emit_once_per_period(
    settings: Settings, redis_url: str, redis_client: redis.Redis
) -> None:
    broker = _broker()
    a, b = _scheduler(settings, broker, redis_url), _scheduler(settings, broker, redis_url)
    for tick in range(30):  # 3 steps per period, both replicas each step
        now = START + tick * PERIOD / 3
        a.step(now)
        b.step(now)
    assert a.is_leader != b.is_leader
    expected = [int(START + i * PERIOD) for i in range(10)]
    maintenance = _drain(broker, "maintenance")
    for actor in ("maintenance.reconcile", "webhooks.sweep"):
        periods = [m.kwargs["period_start"] for m in maintenance if m.actor_name == actor]
        assert periods == expected, actor
    assert _periods(broker, "default") == expected  # schedules.tick


def test_a_leader_that_lost_its_lock_cannot_emit(
    settings: Settings, redis_url: str, redis_client: redis.Redis
) -> None:
    broker = _broker()
    a = _scheduler(settings, broker, redis_url, ttl=0.5)
    b = _scheduler(settings, broker, redis_url, ttl=0.5)
    assert a.step(START) == JOBS
    time.sleep(0.7)  # a "pauses" past its TTL
    assert b.step(START) == 0  # b leads now, and the period was already emitted
    assert b.is_leader
    assert a.step(START + PERIOD) == 0  # a wakes up: no longer leader, emits nothing
    assert not a.is_leader
    assert b.step(START + PERIOD) == JOBS - HOURLY
    assert _periods(broker, "default") == [int(START), int(START + PERIOD)]
    assert a.lock.claim_once("switchboard:test:marker", 10) is None


def test_release_hands_over_immediately(
    settings: Settings, redis_url: str, redis_client: redis.Redis
) -> None:
    broker = _broker()
    a, b = _scheduler(settings, broker, redis_url), _scheduler(settings, broker, redis_url)
    a.step(START)
    holder = leader.current_holder(redis_client, periodic.LEADER_KEY)
    assert holder is not None and holder["id"] in a.lock.token
    a.lock.release()
    b.step(START + PERIOD)
    assert b.is_leader
    state = {s["name"]: s for s in periodic.read_state(redis_client, b.jobs)}
    assert state["reconcile"]["next_run_at"] == START + 2 * PERIOD
    assert state["schedules_tick"]["last_run_at"] == START + PERIOD


def test_a_restarted_scheduler_catches_up_missed_ticks_once(
    settings: Settings, redis_url: str, redis_client: redis.Redis
) -> None:
    broker = _broker()
    first = _scheduler(settings, broker, redis_url, grace=60)
    first.step(START)
    first.lock.release()  # stopped for 5 periods
    restarted = _scheduler(settings, broker, redis_url, grace=60)
    restarted.step(START + 5 * PERIOD)
    restarted.step(START + 5 * PERIOD + 1)  # a second pass in the same period adds nothing
    # Missed schedule ticks are emitted, each once; reconcile (no catch-up) only the current.
    assert _periods(broker, "default") == [int(START + i * PERIOD) for i in range(6)]
    reconciles = _periods(broker, "maintenance", "maintenance.reconcile")
    assert reconciles == [int(START), int(START + 5 * PERIOD)]


def test_catch_up_stops_at_the_grace_window(
    settings: Settings, redis_url: str, redis_client: redis.Redis
) -> None:
    broker = _broker()
    first = _scheduler(settings, broker, redis_url, grace=30)
    first.step(START)
    first.lock.release()
    restarted = _scheduler(settings, broker, redis_url, grace=30)
    restarted.step(START + 100 * PERIOD)  # down far longer than the grace window
    assert _periods(broker, "default") == [int(START)] + [
        int(START + i * PERIOD) for i in range(97, 101)
    ]
