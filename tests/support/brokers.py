"""Running a test on every broker: ``@on_every_broker`` (or a module's ``pytestmark``).

The contract, actor, end-to-end and chaos tests run on Redis and on RabbitMQ; the rest of the
suite runs on Redis alone, the default, since nothing in it depends on the broker.
"""

from __future__ import annotations

import pytest
from _pytest.fixtures import SubRequest

from libs.common.contracts import QUEUES
from libs.common.settings import Settings
from libs.queueops.broker_adapter import adapter_for

#: Every broker Switchboard runs on.
BROKERS = ("redis", "rabbitmq")

#: Parametrizes a test (through the ``broker_kind`` fixture) over every broker.
on_every_broker = pytest.mark.parametrize("broker_kind", BROKERS, indirect=True)


def purge_every_queue(broker_url: str, redis_url: str) -> None:
    """Empty every queue of ``broker_url`` (ready, delayed, dead-lettered)."""
    adapter = adapter_for(Settings(redis_url=redis_url, broker_url=broker_url), timeout_s=10)
    try:
        for queue in QUEUES:
            adapter.purge(queue)
    finally:
        adapter.close()


def broker_env(request: SubRequest, redis_url: str) -> dict[str, str]:
    """The environment selecting a module-scoped fixture's broker (its ``param``): nothing for
    Redis, ``BROKER_URL`` of the session's RabbitMQ vhost (emptied first) for RabbitMQ."""
    if getattr(request, "param", "redis") == "redis":
        return {}
    url = str(request.getfixturevalue("rabbitmq_url"))
    purge_every_queue(url, redis_url)
    return {"BROKER_URL": url}
