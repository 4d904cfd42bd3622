"""Real gunicorn api and calls processes and a real dramatiq worker, on PostgreSQL and Redis."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from libs.common.db import Database
from tests.conftest import Tenant
from tests.support.brokers import on_every_broker
from tests.support.processes import gunicorn_argv, running, service_env, switchboard_argv
from tests.support.services import free_port

pytestmark = [pytest.mark.e2e, on_every_broker]


@dataclass
class Stack:
    api: str
    calls: str
    worker_metrics: str
    worker_log: Path


@pytest.fixture
def stack(
    database_url: str,
    redis_url: str,
    broker_url: str | None,
    redis_client: redis.Redis,
    db: Database,
    tmp_path: Path,
) -> Iterator[Stack]:
    ports = {name: free_port() for name in ("api", "calls", "worker")}
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        **({"BROKER_URL": broker_url} if broker_url else {}),
        SWITCHBOARD_VAR_DIR=str(tmp_path),
        API_BIND=f"127.0.0.1:{ports['api']}",
        CALLS_BIND=f"127.0.0.1:{ports['calls']}",
        API_WORKERS="2",
        CALLS_WORKERS="2",
    )
    api, calls = (f"http://127.0.0.1:{ports[s]}" for s in ("api", "calls"))
    worker_log = tmp_path / "worker.log"
    with (
        running(gunicorn_argv("api"), {**env, "SERVICE_ROLE": "api"}, tmp_path / "api.log",
                f"{api}/healthz"),
        running(gunicorn_argv("calls"), {**env, "SERVICE_ROLE": "calls"}, tmp_path / "calls.log",
                f"{calls}/healthz"),
        running(
            switchboard_argv("worker", "--processes", "1", "--threads", "2",
                             "--metrics-port", str(ports["worker"])),
            env, worker_log, f"http://127.0.0.1:{ports['worker']}/metrics",
        ),
    ):  # fmt: skip
        yield Stack(api, calls, f"http://127.0.0.1:{ports['worker']}/metrics", worker_log)


def _wait_for_job(stack: Stack, tenant: Tenant, job_id: int, timeout_s: float = 30) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = requests.get(
            f"{stack.api}/api/jobs/{job_id}", headers=tenant.headers, timeout=5
        ).json()
        if job["status"] in ("succeeded", "failed"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not done: {job}\n{stack.worker_log.read_text()[-3000:]}")


def test_ping_goes_through_every_part(stack: Stack, tenant_a: Tenant) -> None:
    for base in (stack.api, stack.calls):
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
    response = requests.post(
        f"{stack.api}/api/system/ping",
        headers={**tenant_a.headers, "X-Request-ID": "e2e-ping-42"},
        timeout=5,
    )
    assert response.status_code == 202, response.text
    job = _wait_for_job(stack, tenant_a, response.json()["job"]["id"])
    assert job["status"] == "succeeded"
    assert job["result"]["pong"] is True
    # The request id travelled from the HTTP request into the worker.
    assert job["result"]["request_id"] == "e2e-ping-42"
    assert "e2e-ping-42" in stack.worker_log.read_text()


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_are_summed_across_gunicorn_workers(stack: Stack, tenant_a: Tenant) -> None:
    for _ in range(40):
        # A new connection each time, so both gunicorn workers answer some of them.
        response = requests.get(f"{stack.api}/api/me", headers=tenant_a.headers, timeout=5)
        assert response.status_code == 200
    text = requests.get(f"{stack.api}/metrics", timeout=5).text
    count = _sample(
        text, "switchboard_http_requests_total", route="/api/me", status="200", service="api"
    )
    assert count == 40
    metric_files = list((Path(stack.worker_log.parent) / "metrics" / "api").glob("counter_*.db"))
    assert len(metric_files) >= 2, "expected one metrics file per gunicorn worker"


def test_worker_exposes_dramatiq_message_metrics(stack: Stack, tenant_a: Tenant) -> None:
    response = requests.post(f"{stack.api}/api/system/ping", headers=tenant_a.headers, timeout=5)
    _wait_for_job(stack, tenant_a, response.json()["job"]["id"])
    # The worker writes what messages add up to once a second.
    deadline = time.monotonic() + 5
    while True:
        text = requests.get(stack.worker_metrics, timeout=5).text
        if _sample(text, "dramatiq_messages_total", actor_name="system.ping") >= 1:
            break
        assert time.monotonic() < deadline, "system.ping never counted in the worker's metrics"
        time.sleep(0.2)
    assert re.search(r"dramatiq_message_duration_milliseconds_bucket\{.*system\.ping", text)
