"""The worker's broker: idle consumers of urgent queues block until an enqueue wakes them
(tests/common/test_broker_wake.py), the others poll slowly; several messages leave for Redis in
one round trip."""

from typing import Any

import dramatiq
import pytest
import redis

from libs.common.contracts import DIALER_DISPATCH, OUTCOMES_APPLY, QUEUES, URGENT_QUEUES
from libs.common.settings import ConfigError, Settings
from libs.queueops.broker import SwitchboardRedisBroker, build_broker
from libs.queueops.broker_adapter.redis_wake import WakingConsumer


@pytest.mark.parametrize("queue", QUEUES)
def test_only_urgent_queues_block_the_others_poll_slowly(settings: Settings, queue: str) -> None:
    overrides = {"worker_background_poll_ms": 1500, "worker_idle_block_ms": 3000}
    broker = build_broker(settings.with_overrides(**overrides), worker=False)
    try:
        # What Dramatiq's worker asks for each queue and its delay queue, at WORKER_POLL_MS=100.
        fast = broker.consume(queue, prefetch=2, timeout=100)
        delayed = broker.consume(f"{queue}.DQ", prefetch=2, timeout=100)
        if queue in URGENT_QUEUES:
            # Blocks up to the idle block; polls at the worker's timeout only when full.
            assert isinstance(fast, WakingConsumer)
            assert (fast.block_s, fast.timeout) == (3.0, 100)
        else:
            assert not isinstance(fast, WakingConsumer)
            assert fast.timeout == 1500  # type: ignore[attr-defined]
        assert not isinstance(delayed, WakingConsumer)
        assert delayed.timeout == 1500  # type: ignore[attr-defined]
        # A worker started with a slower poll than the background one keeps its own.
        assert broker.consume(f"{queue}.DQ", timeout=3000).timeout == 3000  # type: ignore[attr-defined]
    finally:
        broker.close()


def test_the_background_poll_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).worker_background_poll_ms == 1000
    assert Settings.from_env({"WORKER_BACKGROUND_POLL_MS": "250"}).worker_background_poll_ms == 250


def test_the_idle_block_is_read_from_the_environment_and_stays_under_the_socket_timeout() -> None:
    assert Settings.from_env({}).worker_idle_block_ms == 2000
    assert Settings.from_env({"WORKER_IDLE_BLOCK_MS": "4000"}).worker_idle_block_ms == 4000
    # The broker's Redis client gives up on a reply after 10 s: a longer block would fail.
    with pytest.raises(ConfigError, match="WORKER_IDLE_BLOCK_MS"):
        Settings.from_env({"WORKER_IDLE_BLOCK_MS": "20000"})


def _queued(client: redis.Redis, queue: str) -> list[dramatiq.Message[Any]]:
    """The messages waiting on ``queue`` (Dramatiq's Redis layout: ids listed, bodies hashed)."""
    ids = client.lrange(f"dramatiq:{queue}", 0, -1)
    bodies = client.hmget(f"dramatiq:{queue}.msgs", ids) if ids else []
    return [dramatiq.Message.decode(bytes(body)) for body in bodies if isinstance(body, bytes)]


@pytest.mark.parametrize("script_lost", [False, True], ids=["script-loaded", "script-lost"])
def test_several_messages_leave_in_one_call_as_enqueue_sends_them(
    settings: Settings, redis_client: redis.Redis, script_lost: bool
) -> None:
    broker = build_broker(settings, worker=False)
    assert isinstance(broker, SwitchboardRedisBroker)
    try:
        broker.enqueue(DIALER_DISPATCH.message(business_id=1))  # loads the script
        redis_client.delete("dramatiq:high", "dramatiq:high.msgs")
        if script_lost:
            # As after a Redis restart, the server does not know the script's hash (a hash of
            # no script here: flushing the shared server's scripts would touch other tests).
            broker.scripts["dispatch"].sha = "0" * 40
        broker.enqueue_many(
            [
                (OUTCOMES_APPLY.message(call_id=7), None),
                (DIALER_DISPATCH.message(business_id=2), None),
                (DIALER_DISPATCH.message(business_id=3), 60_000),
            ]
        )
        [outcome] = _queued(redis_client, OUTCOMES_APPLY.queue)
        assert (outcome.actor_name, outcome.kwargs) == ("outcomes.apply", {"call_id": 7})
        [dispatch] = _queued(redis_client, DIALER_DISPATCH.queue)
        assert (dispatch.actor_name, dispatch.kwargs) == ("dialer.dispatch", {"business_id": 2})
        [delayed] = _queued(redis_client, "high.DQ")
        assert (delayed.actor_name, delayed.kwargs) == ("dialer.dispatch", {"business_id": 3})
        assert delayed.options["eta"] > 0 and delayed.options["redis_message_id"]
    finally:
        broker.close()
