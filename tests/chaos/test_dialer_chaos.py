"""Chaos against real processes: a worker killed with SIGKILL, Redis losing every message.

Each scenario checks the guarantees (no duplicate provider call, no job left non-final, the
limit held) and prints the time to full recovery.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import select

from libs.common.db import Database
from libs.common.models import OPEN_JOB_STATUSES, CallJob
from tests.conftest import empty_database
from tests.support.stack import Stack, campaign_stack, make_business, wait_for_runs
from tests.support.twilio_sim import peak_concurrency

pytestmark = pytest.mark.e2e
LEADS = 30


@pytest.fixture
def chaos_db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    empty_database(database)
    yield database
    database.dispose()


@pytest.fixture
def stack(chaos_db: Database, database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    redis.Redis.from_url(redis_url).flushdb()
    with campaign_stack(database_url, redis_url, tmp_path, workers=2) as running:
        running.sim.scenario(default={"ring_s": 0.1, "talk_s": 0.5})
        yield running
    empty_database(chaos_db)


def _start(stack: Stack, db: Database, code: int) -> tuple[object, int]:
    business = make_business(db, f"Chaos {code}", limit=3)
    leads = [{"phone": f"+1415555{code}{i:03d}"} for i in range(LEADS)]
    requests.post(f"{stack.api}/api/leads/bulk", json={"leads": leads}, headers=business.headers,
                  timeout=10).raise_for_status()  # fmt: skip
    run = requests.post(
        f"{stack.api}/api/runs",
        json={"name": "chaos", "filter": {}, "window": {"start": "00:00", "end": "23:59"}},
        headers=business.headers,
        timeout=10,
    ).json()
    requests.post(f"{stack.api}/api/runs/{run['id']}/start", headers=business.headers,
                  timeout=10).raise_for_status()  # fmt: skip
    return business, run["id"]


def _wait_for_calls(stack: Stack, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(stack.sim.ledger()["calls"]) < n:
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.1)


def _check_guarantees(stack: Stack, db: Database, run_id: int) -> dict[str, int]:
    ledger = stack.sim.ledger()["calls"]
    attempts = Counter((c["job"], c["attempt"]) for c in ledger)
    with db.session() as session:
        jobs = session.scalars(select(CallJob).where(CallJob.run_id == run_id)).all()
    outcome = Counter(j.status.value for j in jobs)
    assert max(attempts.values()) == 1, "a job attempt reached the provider twice"
    assert not [j for j in jobs if j.status in OPEN_JOB_STATUSES], "jobs left non-final"
    assert len(jobs) == LEADS
    assert peak_concurrency(ledger) <= 3
    return dict(outcome)


def test_sigkill_of_a_worker_mid_run(stack: Stack, chaos_db: Database) -> None:
    business, run_id = _start(stack, chaos_db, 1)
    _wait_for_calls(stack, 8)
    killed_at = time.monotonic()
    stack.kill_worker(0)
    time.sleep(1.0)
    stack.start_worker(0)
    wait_for_runs(stack, [(business, run_id)], timeout_s=120)  # type: ignore[list-item]
    recovery = time.monotonic() - killed_at
    outcome = _check_guarantees(stack, chaos_db, run_id)
    print(f"\nchaos sigkill: run completed {recovery:.1f}s after the kill; outcome {outcome}")


def test_redis_loses_every_message_mid_run(
    stack: Stack, chaos_db: Database, redis_url: str
) -> None:
    business, run_id = _start(stack, chaos_db, 2)
    _wait_for_calls(stack, 8)
    flushed_at = time.monotonic()
    redis.Redis.from_url(redis_url).flushdb()  # queues, delayed messages, locks: all gone
    wait_for_runs(stack, [(business, run_id)], timeout_s=120)  # type: ignore[list-item]
    recovery = time.monotonic() - flushed_at
    outcome = _check_guarantees(stack, chaos_db, run_id)
    print(f"\nchaos redis flush: run completed {recovery:.1f}s after the flush; outcome {outcome}")
