"""Chaos against real processes, measured: workers killed, the broker's messages lost or the
broker restarted (Redis empty; a RabbitMQ node killed and started again), PostgreSQL restarted,
the calls service killed while callbacks keep coming. Every scenario runs on each broker.

Every scenario checks the promises (no duplicate provider call, no job lost or left
non-final, no callback lost, the limit held; during an outage `/readyz` says so and producers
answer 503; the system resumes by itself) and records what it measured. After the module the
rows are saved to ``var/test-results/chaos.json`` (ignored); ``make reliability-report`` renders
them into ``docs/reliability.md``, so a test run leaves the work tree as it found it.

The module runs its own Redis server, PostgreSQL cluster and, for the RabbitMQ half, RabbitMQ
node (tests/support/dedicated.py, tests/support/rabbitmq.py): the shared ones serve the rest of
the suite and must never be stopped.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
import redis
import requests
from sqlalchemy import func, select

from libs.common import migrate
from libs.common.db import Database
from libs.common.models import BackgroundJob, Run, RunStatus
from tests.support.brokers import BROKERS, purge_every_queue
from tests.support.chaos import (
    RESULTS,
    Campaign,
    ChaosRow,
    Measured,
    calls_placed,
    create_campaign,
    measure,
    ready,
    row_for,
    runs_finished,
    save_results,
    start_campaign,
    wait_until_placed,
)
from tests.support.dedicated import (
    DedicatedPostgres,
    DedicatedRedis,
    dedicated_postgres,
    dedicated_redis,
    postgres_bindir,
    redis_server_binary,
)
from tests.support.rabbitmq import DedicatedRabbitmq, dedicated_rabbitmq, rabbitmq_server_binary
from tests.support.services import IN_CI, missing_service
from tests.support.stack import Stack, campaign_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

#: The random moments of the repeated kills; set CHAOS_SEED to replay a run.
SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1_000_000))
#: The 500-call campaign: businesses dialing in parallel, each under its own limit.
BUSINESSES, LEADS, SLOTS = 10, 50, 5
#: The outage scenarios' campaigns (300 calls): what they measure does not grow with the
#: campaign, and the module must stay within a few minutes on two cores.
OUTAGE_BUSINESSES = 6
#: Calls placed when an outage starts: well into the campaign, with most of it still to come.
OUTAGE_AT_CALL = 120
#: How long Redis or PostgreSQL stays down.
OUTAGE_S = 4.0
#: How long the calls service stays down before it is started again. Its callbacks are retried
#: for 15 s (the simulator's last attempt comes 11.75 s after the first), and gunicorn's boot
#: adds seconds on a loaded machine: the whole gap must stay inside that window.
CALLS_DOWN_S = 2.0
#: Upper bound for a campaign to finish once its fault is over.
FINISH_TIMEOUT_S = 150


@dataclass
class Servers:
    redis: DedicatedRedis
    postgres: DedicatedPostgres
    database_url: str
    #: The RabbitMQ node when the module runs on RabbitMQ; else the broker is ``redis``.
    rabbitmq: DedicatedRabbitmq | None = None

    @property
    def broker(self) -> str:
        return "rabbitmq" if self.rabbitmq else "redis"

    @property
    def broker_env(self) -> dict[str, str]:
        return {"BROKER_URL": self.rabbitmq.url} if self.rabbitmq else {}

    def lose_every_message(self) -> None:
        """Every queued, delayed and in-flight message, every lock and limiter state: gone."""
        if self.rabbitmq:
            purge_every_queue(self.rabbitmq.url, self.redis.url)
        redis.Redis.from_url(self.redis.url).flushdb()

    def stop_broker(self) -> None:
        (self.rabbitmq or self.redis).kill()

    def start_broker(self) -> None:
        (self.rabbitmq or self.redis).start()


@pytest.fixture(scope="module", params=BROKERS)
def servers(request: pytest.FixtureRequest) -> Iterator[Servers]:
    if redis_server_binary() is None:
        missing_service("a redis-server binary")
    if postgres_bindir() is None:
        missing_service("PostgreSQL's server binaries (initdb, pg_ctl)")
    if request.param == "rabbitmq" and rabbitmq_server_binary() is None:
        missing_service("a rabbitmq-server binary")
    with ExitStack() as stack:
        redis_server = stack.enter_context(dedicated_redis())
        postgres = stack.enter_context(dedicated_postgres())
        node = stack.enter_context(dedicated_rabbitmq()) if request.param == "rabbitmq" else None
        url = postgres.create_database("switchboard")
        migrate.upgrade(url)
        yield Servers(redis_server, postgres, url, node)


@pytest.fixture(scope="module")
def db(servers: Servers) -> Iterator[Database]:
    database = Database(servers.database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def stack(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # One stack for the module: starting it costs more than most scenarios. Each scenario has
    # its own businesses and runs, and waits until everything has settled before the next.
    log_dir = tmp_path_factory.mktemp("chaos")
    with campaign_stack(servers.database_url, servers.redis.url, log_dir, cps=100,
                        extra_env=servers.broker_env) as running:  # fmt: skip
        running.sim.scenario(default={"ring_s": 0.1, "talk_s": 0.5})
        yield running


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[dict[str, ChaosRow]]:
    """Collects each scenario's row; writes the report when every scenario of the module ran."""
    rows: dict[str, ChaosRow] = {}
    started = time.monotonic()
    yield rows
    names = [name for name in vars(request.module) if name.startswith("test_")]
    scenarios = [f"{name}[{broker}]" for broker in BROKERS for name in names]
    if set(scenarios) - set(rows):
        print(f"\n{RESULTS.name} not written: no row from {sorted(set(scenarios) - set(rows))}")
        return
    args = " ".join(request.config.invocation_params.args)
    command = f"{'CI=true ' if IN_CI else ''}pytest {args}".strip()
    save_results(RESULTS, [rows[name] for name in scenarios], command,
                 time.monotonic() - started)  # fmt: skip
    print(f"\nchaos results written to {RESULTS} (make reliability-report renders them)")


def _record(report: dict[str, ChaosRow], request: pytest.FixtureRequest, row: ChaosRow) -> None:
    """Record first, assert after: a failing scenario still shows what it measured."""
    row = dataclasses.replace(row, broker=request.node.callspec.params["servers"])
    report[request.node.name] = row
    print(f"\n{row}")
    assert row.duplicates == 0, f"duplicate provider calls: {row}"
    assert row.jobs_lost == 0, f"jobs lost or left non-final: {row}"
    assert row.callbacks_lost == 0, f"callbacks lost: {row}"
    assert row.peak <= row.limit, f"the concurrency limit was exceeded: {row}"
    assert row.resumed in ("yes", "n/a"), f"the system did not resume by itself: {row}"
    assert row.readyz_down in ("yes", "n/a") and row.producers_503 in ("yes", "n/a"), row


def _finish(db: Database, run_ids: list[int]) -> bool:
    return wait_until(lambda: runs_finished(db, run_ids), FINISH_TIMEOUT_S, every_s=0.5)


def _duration(campaign: Campaign, m: Measured) -> float:
    return (m.last_final_at or time.time()) - campaign.started_at


# --- outages: what the services say while a dependency is down -------------------------------


def _readyz_reports_down(stack: Stack, component: str) -> bool:
    """api and calls both answer 503, naming ``component`` as the one unreachable."""
    for url in (stack.api, stack.calls):
        try:
            response = requests.get(f"{url}/readyz", timeout=5)
            body = response.json()
        except (requests.RequestException, ValueError):
            return False
        if response.status_code != 503 or body["checks"][component]["ok"] is not False:
            return False
    return True


def _producers_refuse(stack: Stack, probe: Campaign, code: str) -> bool:
    """Starting a run and importing leads both answer 503 with ``code``."""
    business, run_id = probe.runs[0]
    answers = [
        requests.post(f"{stack.api}/api/runs/{run_id}/start", headers=business.headers,
                      timeout=10),
        requests.post(f"{stack.api}/api/leads/import", data="phone\n+14155550999\n",
                      headers={**business.headers, "Content-Type": "text/csv"}, timeout=10),
    ]  # fmt: skip
    for response in answers:
        try:
            refused = response.status_code == 503 and response.json()["error"]["code"] == code
        except (ValueError, KeyError):
            refused = False
        if not refused:
            print(f"producer answered {response.status_code}: {response.text[:300]}")
            return False
    return True


def _nothing_written(db: Database, probe: Campaign) -> bool:
    """After the outage: the refused start left the run a draft, the import left no job."""
    business, run_id = probe.runs[0]
    with db.session() as session:
        run = session.get(Run, run_id)
        jobs = session.scalar(
            select(func.count())
            .select_from(BackgroundJob)
            .where(BackgroundJob.business_id == business.id)
        )
    return run is not None and run.status == RunStatus.DRAFT and not jobs


@dataclass
class Outage:
    campaign: Campaign
    #: A one-business run the producers are tried on during the outage, started after it.
    probe: Campaign
    fault_end: float
    ready_after_s: float | None
    readyz_down: bool
    producers_503: bool
    resumed: bool
    notes: str

    @property
    def run_ids(self) -> list[int]:
        return self.campaign.run_ids + self.probe.run_ids

    @property
    def expected_jobs(self) -> int:
        return self.campaign.expected_jobs + self.probe.expected_jobs


def _outage(
    stack: Stack,
    db: Database,
    *,
    component: str,
    code: str,
    stop: Callable[[], None],
    start: Callable[[], None],
) -> Outage:
    """A campaign with ``component`` down for OUTAGE_S in the middle."""
    stack.sim.reset()
    exchange = 571 if component == "broker" else 581
    campaign = create_campaign(stack, db, exchange, OUTAGE_BUSINESSES, LEADS, SLOTS)
    probe = create_campaign(stack, db, exchange + 1, 1, 5, SLOTS)  # started after the outage
    start_campaign(stack, campaign)
    wait_until_placed(db, campaign, OUTAGE_AT_CALL)
    down_at = time.monotonic()
    stop()
    readyz_down = _readyz_reports_down(stack, component)
    refused = _producers_refuse(stack, probe, code)
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
    fault_end = time.time()
    start()
    is_ready = wait_until(lambda: ready(stack.api) and ready(stack.calls), 60)
    ready_after = time.time() - fault_end if is_ready else None
    nothing_written = _nothing_written(db, probe)
    business, run_id = probe.runs[0]
    started = requests.post(f"{stack.api}/api/runs/{run_id}/start", headers=business.headers,
                            timeout=10)  # fmt: skip
    probe.started_at = time.time()
    finished = _finish(db, campaign.run_ids + probe.run_ids)
    return Outage(
        campaign,
        probe,
        fault_end,
        ready_after,
        readyz_down,
        producers_503=refused and nothing_written,
        resumed=is_ready and started.status_code == 200 and finished,
        notes=f"during the outage the producers {'' if refused else 'did not all '}answered 503 "
        f"and {'wrote nothing' if nothing_written else 'WROTE ROWS'}; afterwards the refused "
        f"start answered {started.status_code}",
    )


def _record_outage(
    report: dict[str, ChaosRow],
    request: pytest.FixtureRequest,
    stack: Stack,
    db: Database,
    outage: Outage,
    scenario: str,
    fault: str,
) -> None:
    m = measure(stack, db, outage.run_ids, outage.expected_jobs)
    row = row_for(
        scenario,
        fault,
        len(outage.run_ids),
        SLOTS,
        m,
        fault_end=outage.fault_end,
        duration_s=_duration(outage.campaign, m),
        ready_after_s=outage.ready_after_s,
        readyz_down=outage.readyz_down,
        producers_503=outage.producers_503,
        resumed=outage.resumed,
        notes=outage.notes,
    )
    _record(report, request, row)


# --- the scenarios ----------------------------------------------------------------------------


def test_baseline_without_a_fault(
    stack: Stack, db: Database, report: dict[str, ChaosRow], request: pytest.FixtureRequest
) -> None:
    stack.sim.reset()
    campaign = create_campaign(stack, db, 541, BUSINESSES, LEADS, SLOTS)
    start_campaign(stack, campaign)
    finished = _finish(db, campaign.run_ids)
    m = measure(stack, db, campaign.run_ids, campaign.expected_jobs)
    row = row_for("no fault (baseline)", "none", BUSINESSES, SLOTS, m, fault_end=None,
                  duration_s=_duration(campaign, m), resumed=None)  # fmt: skip
    _record(report, request, row)
    assert finished, "the campaign did not finish"


def test_sigkill_of_a_worker_mid_run(
    stack: Stack, db: Database, report: dict[str, ChaosRow], request: pytest.FixtureRequest
) -> None:
    stack.sim.reset()
    campaign = create_campaign(stack, db, 551, 1, 30, 3)
    start_campaign(stack, campaign)
    wait_until_placed(db, campaign, 8)
    stack.kill_worker(0)
    time.sleep(1.0)
    fault_end = time.time()
    stack.start_worker(0)
    resumed = _finish(db, campaign.run_ids)
    m = measure(stack, db, campaign.run_ids, campaign.expected_jobs)
    row = row_for("worker SIGKILL", "kill -9 of 1 of 2 workers for 1 s", 1, 3, m,
                  fault_end=fault_end, duration_s=_duration(campaign, m),
                  resumed=resumed)  # fmt: skip
    _record(report, request, row)


def test_redis_loses_every_message_mid_run(
    stack: Stack,
    db: Database,
    servers: Servers,
    report: dict[str, ChaosRow],
    request: pytest.FixtureRequest,
) -> None:
    stack.sim.reset()
    campaign = create_campaign(stack, db, 552, 1, 30, 3)
    start_campaign(stack, campaign)
    wait_until_placed(db, campaign, 8)
    fault_end = time.time()
    servers.lose_every_message()  # queues, delayed messages, locks: all gone
    resumed = _finish(db, campaign.run_ids)
    m = measure(stack, db, campaign.run_ids, campaign.expected_jobs)
    if servers.rabbitmq:
        scenario, fault = "RabbitMQ purged", "every queue purged and Redis flushed mid-run"
    else:
        scenario, fault = "Redis FLUSHDB", "every key deleted mid-run"
    row = row_for(scenario, fault, 1, 3, m, fault_end=fault_end,
                  duration_s=_duration(campaign, m), resumed=resumed)  # fmt: skip
    _record(report, request, row)


def test_workers_killed_at_random_moments_of_a_500_call_campaign(
    stack: Stack, db: Database, report: dict[str, ChaosRow], request: pytest.FixtureRequest
) -> None:
    rng = random.Random(SEED)
    stack.sim.reset()
    campaign = create_campaign(stack, db, 561, BUSINESSES, LEADS, SLOTS)
    # Random moments, as calls placed so far (one in each third of the first 400), so the same
    # seed hits the same phase of the run whatever the machine's speed.
    moments = [rng.randrange(low, low + 100) for low in (40, 160, 280)]
    start_campaign(stack, campaign)
    kills: list[str] = []
    fault_ends: list[float] = []
    for k, moment in enumerate(moments):
        wait_until_placed(db, campaign, moment)
        time.sleep(rng.uniform(0, 0.3))  # land anywhere in what the workers are doing
        placed = calls_placed(db, campaign)
        last = k == len(moments) - 1
        victims = list(range(len(stack.workers))) if last else [rng.randrange(len(stack.workers))]
        for index in victims:
            stack.kill_worker(index)
        down_s = rng.uniform(0.5, 2.0)
        time.sleep(down_s)
        fault_ends.append(time.time())
        for index in victims:
            # Not waiting for it to boot: the next kill may come while it does.
            stack.start_worker(index, wait=False)
        kills.append(f"workers {victims} at call {placed} for {down_s:.1f} s")
    for index in range(len(stack.workers)):
        stack.wait_for_worker(index)
    resumed = _finish(db, campaign.run_ids)
    m = measure(stack, db, campaign.run_ids, campaign.expected_jobs)
    gaps = [m.first_create_after(end) for end in fault_ends]
    row = row_for(
        "workers SIGKILLed x3 (500 calls)",
        "3 x kill -9 at random moments, the last of every worker",
        BUSINESSES,
        SLOTS,
        m,
        fault_end=fault_ends[-1],
        duration_s=_duration(campaign, m),
        resumed=resumed,
        notes=f"CHAOS_SEED={SEED}: {'; '.join(kills)}; first new call after each restart: "
        + ", ".join("n/a" if g is None else f"{g:.1f} s" for g in gaps),
    )
    _record(report, request, row)
    # Exactly once: a worker killed between its claim and the provider's answer leaves an
    # attempt the reconciler resolves by asking the provider, so every lead is called.
    assert m.failures == {}, f"jobs failed: {m.failures}"
    assert m.outcomes.get("completed") == campaign.expected_jobs, m.outcomes


def test_redis_restarted_with_its_data_lost(
    stack: Stack,
    db: Database,
    servers: Servers,
    report: dict[str, ChaosRow],
    request: pytest.FixtureRequest,
) -> None:
    outage = _outage(
        stack, db, component="broker", code="queue_unavailable",
        stop=servers.stop_broker, start=servers.start_broker,
    )  # fmt: skip
    if servers.rabbitmq:
        scenario = "RabbitMQ node restarted"
        fault = f"rabbitmq-server SIGKILLed, down {OUTAGE_S:g} s, restarted (durable queues)"
    else:
        scenario = "Redis restarted, data lost"
        fault = f"redis-server SIGKILLed, down {OUTAGE_S:g} s, restarted empty"
    _record_outage(report, request, stack, db, outage, scenario, fault)


def test_postgres_restarted(
    stack: Stack,
    db: Database,
    servers: Servers,
    report: dict[str, ChaosRow],
    request: pytest.FixtureRequest,
) -> None:
    outage = _outage(
        stack, db, component="database", code="database_unavailable",
        stop=servers.postgres.stop_immediately, start=servers.postgres.start,
    )  # fmt: skip
    _record_outage(report, request, stack, db, outage, "PostgreSQL restarted",
                   f"pg_ctl stop -m immediate, down {OUTAGE_S:g} s, started again")  # fmt: skip


def test_calls_service_killed_while_callbacks_keep_coming(
    stack: Stack, db: Database, report: dict[str, ChaosRow], request: pytest.FixtureRequest
) -> None:
    stack.sim.reset()
    campaign = create_campaign(stack, db, 591, OUTAGE_BUSINESSES, LEADS, SLOTS)
    start_campaign(stack, campaign)
    wait_until_placed(db, campaign, OUTAGE_AT_CALL)
    killed_at = time.time()
    stack.kill_service("calls")
    time.sleep(CALLS_DOWN_S)
    fault_end = time.time()
    stack.start_service("calls")  # returns once its /readyz answers
    ready_after = time.time() - fault_end
    resumed = _finish(db, campaign.run_ids)
    m = measure(stack, db, campaign.run_ids, campaign.expected_jobs)
    retried = sum(
        1
        for call in stack.sim.ledger()["calls"]
        for callback in call["callbacks"]
        if callback["attempts"] > 1
    )
    row = row_for(
        "calls service SIGKILLed",
        f"kill -9 of calls (gunicorn master and workers), restarted after {CALLS_DOWN_S:g} s",
        OUTAGE_BUSINESSES,
        SLOTS,
        m,
        fault_end=fault_end,
        duration_s=_duration(campaign, m),
        ready_after_s=ready_after,
        resumed=resumed,
        notes=f"unreachable for {fault_end + ready_after - killed_at:.1f} s in all; callbacks "
        f"that needed the simulator's retries: {retried}",
    )
    _record(report, request, row)
    assert retried > 0, "no callback met the outage: the scenario tested nothing"
