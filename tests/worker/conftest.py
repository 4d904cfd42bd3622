from collections.abc import Iterator

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from libs.common.db import Database
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from services.worker.actors import register_actors


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    """The worker's settings; test modules override this fixture to tune them."""
    return settings.with_overrides(service_role="worker")


@pytest.fixture
def stub_broker(worker_settings: Settings, db: Database, redis_client: object) -> StubBroker:
    broker = build_broker(worker_settings, worker=True, stub=True)
    register_actors(broker)
    assert isinstance(broker, StubBroker)
    return broker


@pytest.fixture
def stub_worker(stub_broker: StubBroker) -> Iterator[Worker]:
    worker = Worker(stub_broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()
