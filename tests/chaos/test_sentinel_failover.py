"""Redis in HA: the whole system on ``REDIS_URL=redis+sentinel://…`` (broker and coordination
through Sentinel), and a Sentinel failover in the middle of a campaign. The run completes with
no duplicate provider call and no job lost."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from libs.common.db import Database
from tests.conftest import empty_database
from tests.support.chaos import (
    create_campaign,
    measure,
    runs_finished,
    start_campaign,
    wait_until_placed,
)
from tests.support.dedicated import redis_server_binary
from tests.support.sentinel import SentinelSetup, sentinel_setup
from tests.support.services import missing_service
from tests.support.stack import Stack, campaign_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

BUSINESSES, LEADS, SLOTS = 4, 40, 5
FAILOVER_AT_CALL = 40


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelSetup]:
    if redis_server_binary() is None:
        missing_service("a redis-server binary")
    with sentinel_setup() as setup:
        yield setup


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    empty_database(database)
    yield database
    empty_database(database)
    database.dispose()


@pytest.fixture(scope="module")
def stack(
    db: Database,
    database_url: str,
    sentinel: SentinelSetup,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("sentinel")
    with campaign_stack(database_url, sentinel.url, log_dir, cps=100) as running:
        running.sim.scenario(default={"ring_s": 0.1, "talk_s": 0.5})
        yield running


def test_a_sentinel_failover_mid_campaign_loses_and_duplicates_nothing(
    stack: Stack, db: Database, sentinel: SentinelSetup
) -> None:
    old_master = sentinel.master_port_now()
    campaign = create_campaign(stack, db, 601, BUSINESSES, LEADS, SLOTS)
    start_campaign(stack, campaign)
    wait_until_placed(db, campaign, FAILOVER_AT_CALL)
    failover_at = time.time()
    sentinel.failover()
    assert sentinel.master_port_now() != old_master
    finished = wait_until(lambda: runs_finished(db, campaign.run_ids), 150, every_s=0.5)
    m = measure(stack, db, campaign.run_ids, campaign.expected_jobs)
    print(f"\nfailover after {FAILOVER_AT_CALL} calls at {failover_at:.0f}: {m}")
    assert finished, f"the campaign did not finish after the failover\n{stack.logs()}"
    assert m.duplicates == 0, m
    assert m.jobs_lost == 0, m
    assert m.callbacks_lost == 0, m
    assert m.peak_per_business <= SLOTS, m
    assert m.first_create_after(failover_at) is not None, "nothing was dialed after the failover"
