"""The worker's broker: idle consumers of urgent queues poll fast, the others slowly."""

import pytest

from libs.common.contracts import QUEUES, URGENT_QUEUES
from libs.common.settings import Settings
from libs.queueops.broker import build_broker


@pytest.mark.parametrize("queue", QUEUES)
def test_only_urgent_queues_poll_at_the_worker_timeout(settings: Settings, queue: str) -> None:
    broker = build_broker(settings.with_overrides(worker_background_poll_ms=1500), worker=False)
    try:
        # What Dramatiq's worker asks for each queue and its delay queue, at WORKER_POLL_MS=100.
        fast = broker.consume(queue, prefetch=2, timeout=100)
        delayed = broker.consume(f"{queue}.DQ", prefetch=2, timeout=100)
        assert fast.timeout == (100 if queue in URGENT_QUEUES else 1500)  # type: ignore[attr-defined]
        assert delayed.timeout == 1500  # type: ignore[attr-defined]
        # A worker started with a slower poll than the background one keeps its own.
        assert broker.consume(queue, timeout=3000).timeout == 3000  # type: ignore[attr-defined]
    finally:
        broker.close()


def test_the_background_poll_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).worker_background_poll_ms == 1000
    assert Settings.from_env({"WORKER_BACKGROUND_POLL_MS": "250"}).worker_background_poll_ms == 250
