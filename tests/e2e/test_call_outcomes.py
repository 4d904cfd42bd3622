"""Issue 21's acceptance, end to end: api, calls, workers, scheduler and the Twilio simulator
as processes, on real PostgreSQL and Redis. A campaign with humans, machines (every AnsweredBy
value) and fax under a voicemail policy: the voicemail plays after the beep at the simulator,
the others are hung up on, machines come back by the run's policy, and the run's analytics
(through the API) match the simulator's ledger; a run whose calls fail at the provider pauses
itself and says why."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests

from libs.common.db import Database
from tests.conftest import empty_database
from tests.support.stack import Business, Stack, campaign_stack, make_business

pytestmark = pytest.mark.e2e

ANSWERED_BY = ["human", "machine_start", "machine_end_beep", "machine_end_silence",
               "machine_end_other", "fax", "unknown"]  # fmt: skip
VOICEMAIL = "Hello from the e2e bakery, please call us back."


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    empty_database(database)
    yield database
    empty_database(database)
    database.dispose()


@pytest.fixture(scope="module")
def stack(db: Database, database_url: str, redis_url: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # fmt: skip
    redis.Redis.from_url(redis_url).flushdb()
    with campaign_stack(database_url, redis_url, tmp_path_factory.mktemp("outcomes"),
                        workers=1) as running:  # fmt: skip
        yield running


def _api(stack: Stack, business: Business, method: str, path: str, **kwargs: Any) -> Any:
    response = requests.request(method, f"{stack.api}/api{path}", headers=business.headers,
                                timeout=10, **kwargs)  # fmt: skip
    assert response.status_code < 300, (path, response.status_code, response.text)
    return response.json()


def _start(stack: Stack, business: Business, phones: list[str], **options: Any) -> int:
    _api(stack, business, "POST", "/leads/bulk",
         json={"leads": [{"phone": p} for p in phones]})  # fmt: skip
    window = {"start": "00:00", "end": "23:59"}
    run = _api(stack, business, "POST", "/runs",
               json={"name": "outcomes", "filter": {}, "window": window, **options})  # fmt: skip
    _api(stack, business, "POST", f"/runs/{run['id']}/start")
    return int(run["id"])


def _until(what: str, check: Any, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out: {what}")


def test_machines_fax_and_humans_each_get_their_policy_and_analytics_match_the_ledger(
    stack: Stack, db: Database
) -> None:
    business = make_business(db, "Outcomes Bakery", limit=len(ANSWERED_BY))
    phones = [f"+1415556{i:04d}" for i in range(len(ANSWERED_BY))]
    stack.sim.scenario(default={"ring_s": 0.2, "talk_s": 2.0}, numbers={
        p: {"answered_by": a} for p, a in zip(phones, ANSWERED_BY, strict=True)})  # fmt: skip
    run_id = _start(stack, business, phones, amd={
        "detection": "DetectMessageEnd", "action": "voicemail", "voicemail_text": VOICEMAIL,
        "counts_as_attempt": False, "retry_after_s": 3600})  # fmt: skip

    def settled() -> dict[str, Any] | None:
        body = _api(stack, business, "GET", f"/runs/{run_id}/analytics")
        priced = body["totals"]["priced_calls"] == len(ANSWERED_BY)
        return body if body["totals"]["attempts"] == len(ANSWERED_BY) and priced else None

    analytics = _until("every call ended and priced", settled)
    ledger = {c["to"]: c for c in stack.sim.ledger()["calls"] if c["to"] in phones}
    by_answer = {ledger[p]["answered_by"]: ledger[p] for p in phones}
    for machine in ("machine_end_beep", "machine_end_silence", "machine_end_other"):
        assert by_answer[machine]["voicemail_after_beep"], by_answer[machine]
        assert VOICEMAIL in by_answer[machine]["twiml"][-1]
    for hung_up in ("machine_start", "fax"):
        assert by_answer[hung_up]["twiml"] == [] and by_answer[hung_up]["duration_s"] <= 1
    for person in ("human", "unknown"):
        assert by_answer[person]["twiml"] == [] and by_answer[person]["duration_s"] >= 2
    totals = analytics["totals"]
    answered = [c for c in ledger.values() if c["status"] == "completed"]
    assert totals["attempts"] == len(ledger) == len(ANSWERED_BY)
    assert totals["answered"] == len(answered)
    assert totals["machines"] == sum(c["answered_by"].startswith("machine") for c in answered)
    assert totals["fax"] == 1 and totals["humans"] == 2
    assert totals["talk_time_s"] == sum(c["duration_s"] for c in answered)
    assert round(totals["cost_estimate"], 5) == round(sum(-float(c["price"]) for c in answered), 5)
    # The four machines come back in an hour (not counted as attempts); the rest are done.
    run = _api(stack, business, "GET", f"/runs/{run_id}")
    assert run["status"] == "running" and run["progress"]["by_status"].get("queued") == 4
    calls = _api(stack, business, "GET", "/calls", params={"run_id": run_id})["items"]
    assert sorted(c["answered_by"] for c in calls) == sorted(ANSWERED_BY)


def test_a_run_whose_calls_fail_at_the_provider_pauses_itself_and_says_why(
    stack: Stack, db: Database
) -> None:
    business = make_business(db, "Failing Bakery", limit=2)
    phones = [f"+1415557{i:04d}" for i in range(40)]
    stack.sim.scenario(default={"ring_s": 0.1, "talk_s": 0.2},
                       numbers={p: {"outcome": "failed"} for p in phones})  # fmt: skip
    run_id = _start(stack, business, phones)

    def paused() -> dict[str, Any] | None:
        body = _api(stack, business, "GET", f"/runs/{run_id}")
        return body if body["status"] == "paused" else None

    run = _until("the run paused itself", paused)
    assert "failed at the provider" in run["paused_reason"] and run["auto_paused_at"]
    placed = [c for c in stack.sim.ledger()["calls"] if c["to"] in phones]
    assert len(placed) < len(phones)  # the list was not burned through
    resumed = _api(stack, business, "POST", f"/runs/{run_id}/resume")
    assert resumed["paused_reason"] is None
