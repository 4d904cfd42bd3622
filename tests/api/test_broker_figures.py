"""The same workload shows the same figures everywhere, on every broker: the failed-jobs page
(``/api/admin/failed``), ``switchboard status`` and ``/api/admin/queues``.

The workload: three messages waiting on a queue no worker consumes, one delayed message, and
two messages dead-lettered by a real worker whose actor fails. The expected figures are one
constant for both brokers, so a broker that counted differently would fail here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq import Worker
from flask.testing import FlaskClient

from libs.common.contracts import QUEUES, SYSTEM_PING
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from tests.support.brokers import on_every_broker
from tests.support.processes import service_env, switchboard_argv
from tests.support.waiting import wait_until

pytestmark = on_every_broker

#: What every view must show for the workload, on either broker.
EXPECTED = {
    "default": {"ready": 0, "in_progress": 0, "delayed": 0, "dead": 2},
    "receipts": {"ready": 3, "in_progress": 0, "delayed": 0, "dead": 0},
    "low": {"ready": 0, "in_progress": 0, "delayed": 1, "dead": 0},
}


@pytest.fixture
def workload(settings: Settings, db: object) -> Iterator[dramatiq.Broker]:
    broker = build_broker(settings.with_overrides(service_role="worker"), worker=True,
                          prometheus=False)  # fmt: skip

    def ping(background_job_id: int) -> None:
        raise RuntimeError("always down")

    dramatiq.actor(ping, actor_name=SYSTEM_PING.name, queue_name="default", broker=broker,
                   max_retries=0)  # fmt: skip
    worker = Worker(broker, queues={"default"}, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        for job_id in (1, 2):
            broker.enqueue(SYSTEM_PING.message(background_job_id=job_id))
        for job_id in (3, 4, 5):  # nobody consumes receipts here
            broker.enqueue(
                SYSTEM_PING.message(background_job_id=job_id).copy(queue_name="receipts")
            )
        broker.enqueue(SYSTEM_PING.message(background_job_id=6).copy(queue_name="low"),
                       delay=3_600_000)  # fmt: skip
        yield broker
    finally:
        worker.stop()
        broker.close()


def _api_figures(client: FlaskClient, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    body = client.get("/api/admin/queues", headers=headers).json
    return {
        q["name"]: {
            "ready": q["ready"],
            "in_progress": q["in_progress"],
            "delayed": q["delayed"],
            "dead": q["dead_lettered"],
        }
        for q in body["queues"]
    }


def _status_figures(settings: Settings) -> dict[str, dict[str, Any]]:
    env = service_env(DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url or "",
                      SWITCHBOARD_VAR_DIR=str(settings.var_dir))  # fmt: skip
    if settings.broker_url:
        env["BROKER_URL"] = settings.broker_url
    result = subprocess.run(switchboard_argv("status", "--json"), env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    report = json.loads(result.stdout)
    assert report["components"]["broker"]["ok"], report
    figures: dict[str, dict[str, Any]] = report["components"]["queues"]["queues"]
    return figures


def _failed_page(client: FlaskClient, headers: dict[str, str]) -> dict[str, int]:
    items = client.get("/api/admin/failed", headers=headers).json["items"]
    return {queue: sum(1 for i in items if i["queue"] == queue) for queue in QUEUES}


def test_status_queues_and_failed_jobs_agree_on_every_broker(
    settings: Settings,
    client: FlaskClient,
    operator_headers: dict[str, str],
    workload: dramatiq.Broker,
) -> None:
    def expected_shown() -> bool:
        # RabbitMQ's held-message counts come from management statistics a few seconds old.
        api = _api_figures(client, operator_headers)
        return all(api[queue] == figures for queue, figures in EXPECTED.items())

    assert wait_until(expected_shown, 30), _api_figures(client, operator_headers)
    api = _api_figures(client, operator_headers)
    status = _status_figures(settings)
    failed = _failed_page(client, operator_headers)
    for queue in QUEUES:
        assert status[queue] == api[queue], queue
        assert failed[queue] == api[queue]["dead"], queue
    for queue, figures in EXPECTED.items():
        assert api[queue] == figures, queue
    assert sum(q["dead"] for q in api.values()) == 2
