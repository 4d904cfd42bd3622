"""Outbound campaigns end to end: api, calls, two workers, scheduler and simulator, on real
PostgreSQL and Redis, with Redis and then RabbitMQ as the broker."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from _pytest.fixtures import SubRequest
from sqlalchemy import func, select

from libs.common.db import Database
from libs.common.models import CallEvent, CallJob
from services.worker.dialer.placer import STATUS_CALLBACK_EVENTS
from tests.conftest import empty_database
from tests.support.brokers import BROKERS, broker_env
from tests.support.stack import Business, Stack, campaign_stack, make_business, wait_for_runs
from tests.support.twilio_sim import peak_concurrency

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    """Module-wide: emptied before the stack starts and after it stops, never under it."""
    database = Database(database_url)
    empty_database(database)
    yield database
    empty_database(database)
    database.dispose()


@pytest.fixture(scope="module", params=BROKERS)
def stack(
    request: SubRequest,
    db: Database,
    database_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    # One stack per broker for the module: each test makes its own businesses, so they do not
    # interfere; each broker's stack starts on an empty database (some tests count every row).
    empty_database(db)
    redis.Redis.from_url(redis_url).flushdb()
    env = broker_env(request, redis_url)
    log_dir = tmp_path_factory.mktemp("campaign")
    with campaign_stack(
        database_url, redis_url, log_dir, workers=2, extra_env=env
    ) as running_stack:
        yield running_stack


def number(business: int, i: int) -> str:
    return f"+1415555{business}{i:03d}"


def start_run(stack: Stack, business: Business, phones: list[str], **options: Any) -> int:
    leads = [{"phone": p, "name": f"Lead {p}"} for p in phones]
    response = requests.post(f"{stack.api}/api/leads/bulk", json={"leads": leads},
                             headers=business.headers, timeout=10)  # fmt: skip
    assert response.status_code == 200, response.text
    run = requests.post(
        f"{stack.api}/api/runs",
        json={"name": "e2e", "filter": {}, "window": {"start": "00:00", "end": "23:59"}, **options},
        headers=business.headers,
        timeout=10,
    ).json()
    started = requests.post(f"{stack.api}/api/runs/{run['id']}/start", headers=business.headers,
                            timeout=10)  # fmt: skip
    assert started.status_code == 200, started.text
    return int(run["id"])


def business_of_jobs(db: Database) -> dict[str, int]:
    with db.session() as session:
        return {str(j.id): j.business_id for j in session.scalars(select(CallJob))}


def _explain(db: Database, business_id: int, ledger: list[dict[str, Any]], now: float) -> str:
    from libs.common.call_status import ACTIVE_JOB_STATUSES

    with db.session() as session:
        jobs = session.scalars(
            select(CallJob).where(
                CallJob.business_id == business_id, CallJob.status.in_(ACTIVE_JOB_STATUSES)
            )
        ).all()
        lines = [
            f"job {j.id} {j.status.value} attempt={j.attempt} sid={j.provider_call_sid} "
            f"dialing_started={j.dialing_started_at}"
            for j in jobs
        ]
    for j in jobs:
        for c in ledger:
            if c["job"] == str(j.id):
                lines.append(f"  ledger: {c} (now={now})")
    return "\n".join(lines)


def test_three_businesses_complete_within_their_limits(stack: Stack, db: Database) -> None:
    stack.sim.scenario(default={"ring_s": 0.1, "talk_s": 0.4})
    businesses = [make_business(db, f"Business {b}", limit=3) for b in range(3)]
    runs = [
        (business, start_run(stack, business, [number(b, i) for i in range(20)]))
        for b, business in enumerate(businesses)
    ]
    phantom_checks = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # No phantom calls: every call the database counts as active is a provider call that
        # was alive around the moment of the sample (a second before, for a final callback in
        # flight; a moment after, for a create request in flight).
        before = time.time()
        progress = [
            requests.get(f"{stack.api}/api/runs/{run_id}", headers=b.headers, timeout=5).json()
            for b, run_id in runs
        ]
        after = time.time()
        time.sleep(0.3)
        ledger = stack.sim.ledger()["calls"]
        owners = business_of_jobs(db)
        for (business, _), body in zip(runs, progress, strict=True):
            alive_around_sample = sum(
                1
                for c in ledger
                if owners.get(c["job"]) == business.id
                and c["created_at"] <= after + 0.3
                and (c["ended_at"] is None or c["ended_at"] >= before - 1.0)
            )
            assert body["progress"]["active_calls"] <= 3
            assert body["progress"]["active_calls"] <= alive_around_sample, _explain(
                db, business.id, ledger, after
            )
            phantom_checks += 1
        if all(body["status"] == "completed" for body in progress):
            break
    bodies = wait_for_runs(stack, runs, timeout_s=5)
    assert phantom_checks > 10
    for body in bodies:
        assert body["progress"]["by_status"]["completed"] == 20
        assert body["progress"]["active_calls"] == 0
    ledger = stack.sim.ledger()["calls"]
    owners = business_of_jobs(db)
    per_business: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for call in ledger:
        per_business[owners[call["job"]]].append(call)
    for business in businesses:
        assert len(per_business[business.id]) == 20
        assert peak_concurrency(per_business[business.id]) <= 3
    attempts = Counter((c["job"], c["attempt"]) for c in ledger)
    assert max(attempts.values()) == 1, "a job attempt was created twice"
    assert len(attempts) == 60


def test_duplicated_and_reordered_callbacks_end_in_the_right_state(
    stack: Stack, db: Database
) -> None:
    stack.sim.scenario(default={"ring_s": 0.1, "talk_s": 0.2, "duplicate": True, "reorder": True})
    business = make_business(db, "Noisy", limit=3)
    run_id = start_run(stack, business, [number(7, i) for i in range(9)])
    [body] = wait_for_runs(stack, [(business, run_id)])
    assert body["progress"]["by_status"]["completed"] == 9
    time.sleep(1.5)  # the reordered intermediate callbacks arrive after the final ones
    calls = requests.get(f"{stack.api}/api/calls?run_id={run_id}", headers=business.headers,
                         timeout=5).json()["items"]  # fmt: skip
    assert len(calls) == 9 and {c["status"] for c in calls} == {"completed"}
    with db.session() as session:
        per_call = session.execute(
            select(CallEvent.provider_call_sid, func.count()).group_by(CallEvent.provider_call_sid)
        ).all()
    # Each callback asked for (the final one; docs/architecture.md) stored once, although the
    # simulator delivered every one twice (the stack's earlier calls are counted too).
    asked = len(STATUS_CALLBACK_EVENTS)
    assert all(n == asked for _, n in per_call), per_call


def test_retries_failures_and_dnc(stack: Stack, db: Database) -> None:
    business = make_business(db, "Mixed", limit=3)
    phones = [number(9, i) for i in range(5)]
    busy, no_answer, invalid, dnc, good = phones
    stack.sim.scenario(
        default={"ring_s": 0.1, "talk_s": 0.2},
        numbers={
            busy: {"outcome": "busy"},
            no_answer: {"outcome": "no-answer"},
            invalid: {"outcome": "invalid"},
        },
    )
    requests.post(f"{stack.api}/api/dnc", json={"phone": dnc}, headers=business.headers,
                  timeout=5).raise_for_status()  # fmt: skip
    run_id = start_run(stack, business, phones, max_attempts=2, retry_delay_s=1)
    [body] = wait_for_runs(stack, [(business, run_id)])
    by_status = body["progress"]["by_status"]
    assert by_status["busy"] == 1 and by_status["no_answer"] == 1
    assert by_status["failed"] == 1 and by_status["skipped_dnc"] == 1
    assert by_status["completed"] == 1
    ledger = stack.sim.ledger()["calls"]
    dialed = Counter(c["to"] for c in ledger)
    assert dialed[busy] == 2 and dialed[no_answer] == 2, "retried up to max_attempts"
    assert dialed[dnc] == 0 and dialed[invalid] == 0 and dialed[good] == 1
    calls = requests.get(f"{stack.api}/api/calls?run_id={run_id}&per_page=50",
                         headers=business.headers, timeout=5).json()["items"]  # fmt: skip
    failed = [c for c in calls if c["to"] == invalid]
    assert failed and failed[0]["error"]["code"] == "21211"
    retries = sorted(c["created_at"] for c in ledger if c["to"] == busy)
    assert retries[1] - retries[0] >= 1.0, "the retry waited for retry_delay_s"


def test_a_large_run_does_not_starve_a_small_one(stack: Stack, db: Database) -> None:
    stack.sim.scenario(default={"ring_s": 0.1, "talk_s": 0.4})
    big, small = make_business(db, "Big", limit=3), make_business(db, "Small", limit=3)
    big_run = start_run(stack, big, [number(5, i) for i in range(150)])
    time.sleep(1.0)  # the big run is well under way before the small one starts
    small_started = time.time()
    small_run = start_run(stack, small, [number(6, i) for i in range(9)])
    [small_body] = wait_for_runs(stack, [(small, small_run)], timeout_s=60)
    small_took = time.time() - small_started
    big_body = requests.get(f"{stack.api}/api/runs/{big_run}", headers=big.headers,
                            timeout=5).json()  # fmt: skip
    assert small_body["progress"]["by_status"]["completed"] == 9
    # Alone, 9 calls in 3 slots of ~0.6 s take ~2 s; sharing the workers must not change that
    # by much, and certainly not wait for the big run.
    assert small_took < 10, f"small run took {small_took:.1f}s"
    assert big_body["status"] == "running", "the small run finished while the big one still ran"
    requests.post(f"{stack.api}/api/runs/{big_run}/cancel", headers=big.headers, timeout=5)


def test_cancel_stops_new_dials_at_once(stack: Stack, db: Database) -> None:
    stack.sim.scenario(default={"ring_s": 0.1, "talk_s": 0.6})
    business = make_business(db, "Canceller", limit=3)
    run_id = start_run(stack, business, [number(8, i) for i in range(30)])
    time.sleep(1.5)
    canceled = requests.post(f"{stack.api}/api/runs/{run_id}/cancel", headers=business.headers,
                             timeout=5).json()  # fmt: skip
    canceled_at = time.time()
    assert canceled.get("status") == "canceled", canceled
    [body] = wait_for_runs(stack, [(business, run_id)], timeout_s=30)
    owners = business_of_jobs(db)
    mine = [c for c in stack.sim.ledger()["calls"] if owners.get(c["job"]) == business.id]
    assert not [c for c in mine if c["created_at"] > canceled_at + 0.2], "dialed after cancel"
    by_status = body["progress"]["by_status"]
    # Calls in progress at the cancel finished and were recorded; the rest never started.
    assert by_status["completed"] == len(mine) and by_status["canceled"] == 30 - len(mine)
    assert body["progress"]["active_calls"] == 0 and body["finished_at"] is not None


@pytest.fixture(scope="module")
def traffic(stack: Stack, db: Database) -> None:
    """A small run whose calls outlive a reconciler tick (1 s), then one more tick."""
    stack.sim.scenario(default={"ring_s": 0.1, "talk_s": 2.5})
    business = make_business(db, "Observed", limit=3)
    run_id = start_run(stack, business, [number(4, i) for i in range(3)])
    wait_for_runs(stack, [(business, run_id)], timeout_s=30)
    time.sleep(2.5)


def test_dialer_metrics_are_exported(stack: Stack, traffic: None) -> None:
    # The calls service stores callbacks (it counts only repeated ones); the worker applies
    # them (calls.status_changed) and counts what each did.
    worker_metrics = "".join(requests.get(url, timeout=5).text for url in stack.worker_metrics)
    assert 'switchboard_call_events_total{result="applied",status="completed"}' in worker_metrics
    assert 'switchboard_call_status_total{status="completed"}' in worker_metrics
    assert 'dramatiq_messages_total{actor_name="calls.status_changed"' in worker_metrics
    assert 'switchboard_calls_created_total{outcome="created"}' in worker_metrics
    assert "switchboard_dispatch_gap_seconds_bucket" in worker_metrics
    assert 'dramatiq_messages_total{actor_name="dialer.dispatch"' in worker_metrics
    assert "switchboard_reconciler_repairs_total" in worker_metrics or "switchboard_runs{" in (
        worker_metrics
    )


def test_every_metric_in_dashboards_and_alerts_is_exported(stack: Stack, traffic: None) -> None:
    from tests.support.promql import metric_names

    scraped = "\n".join(
        requests.get(url, timeout=5).text
        for url in [f"{stack.api}/metrics", f"{stack.calls}/metrics", stack.scheduler_metrics,
                    *stack.worker_metrics]
    )  # fmt: skip
    exported = {line.split("{")[0].split(" ")[0] for line in scraped.splitlines() if line}
    exported = {name for name in exported if not name.startswith("#")}
    missing = sorted(metric_names() - exported)
    assert missing == [], f"named by dashboards/alerts but not exported: {missing}"
