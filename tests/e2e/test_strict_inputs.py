"""Careless and hostile inputs over HTTP, against a real gunicorn api and a real worker (issue 24,
items 6 and 8): a boolean is not an id, strings have their documented maximum lengths, and a
CSV import says which rows were merged as duplicates and which value was kept.

The worker consumes the ``low`` queue only (CSV imports), so a message the api wrongly queued
on any other queue would stay in Redis, where the tests count it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from libs.common import repositories
from libs.common.contracts import LEADS_IMPORT_CSV, QUEUES, SCHEDULES_CHECK_DUE
from libs.common.db import Database
from libs.common.models import TokenRole
from libs.queueops.broker_adapter.redis import RedisAdapter
from tests.support.processes import gunicorn_argv, running, service_env, switchboard_argv
from tests.support.services import free_port


@dataclass
class Api:
    url: str
    business_id: int
    business: dict[str, str]
    operator: dict[str, str]


@pytest.fixture
def api(
    database_url: str, redis_url: str, redis_client: redis.Redis, db: Database, tmp_path: Path
) -> Iterator[Api]:
    assert LEADS_IMPORT_CSV.queue == "low" and SCHEDULES_CHECK_DUE.queue != "low"
    with db.session() as session:
        business = repositories.create_business(session, "Careful Co")
        _, business_secret = repositories.create_token(session, TokenRole.BUSINESS, business.id)
        _, operator_secret = repositories.create_token(session, TokenRole.OPERATOR, None)
        session.commit()
        business_id = business.id
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SWITCHBOARD_VAR_DIR=str(tmp_path),
        API_BIND=f"127.0.0.1:{port}",
    )
    worker = [*switchboard_argv("worker"), "--processes", "1", "--threads", "2", "-Q", "low"]
    with (
        running(gunicorn_argv("api"), {**env, "SERVICE_ROLE": "api"}, tmp_path / "api.log",
                f"{url}/readyz"),
        running(worker, {**env, "SERVICE_ROLE": "worker"}, tmp_path / "worker.log"),
    ):  # fmt: skip
        yield Api(
            url,
            business_id,
            {"Authorization": f"Bearer {business_secret}"},
            {"Authorization": f"Bearer {operator_secret}"},
        )


def _queued(client: redis.Redis) -> int:
    """Messages waiting on every queue but the worker's (ready and delayed)."""
    depths = RedisAdapter(client).depths([q for q in QUEUES if q != "low"])
    return sum(depth.ready + depth.delayed for depth in depths.values())


def _error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    error: dict[str, Any] = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    return error


def test_a_boolean_business_id_is_a_400_and_queues_nothing(
    api: Api, redis_client: redis.Redis
) -> None:
    trigger = f"{api.url}/api/schedules/trigger"
    for who, headers in (("business", api.business), ("operator", api.operator)):
        for value in (True, False):
            response = requests.post(trigger, json={"business_id": value}, headers=headers,
                                     timeout=10)  # fmt: skip
            error = _error(response, 400)
            assert "business_id" in error["message"], (who, error)
    assert _queued(redis_client) == 0
    # The same request with the business's real id is queued: the count above can see one.
    accepted = requests.post(trigger, json={"business_id": api.business_id}, headers=api.business,
                             timeout=10)  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["business_id"] == api.business_id
    assert _queued(redis_client) == 1


def test_a_megabyte_actor_name_is_a_400(api: Api) -> None:
    retry = f"{api.url}/api/admin/failed/retry"
    response = requests.post(retry, json={"actor": "a" * 1024 * 1024}, headers=api.operator,
                             timeout=30)  # fmt: skip
    error = _error(response, 400)
    assert "actor" in error["message"] and "200" in error["message"], error
    # A contract-sized name is an ordinary filter (nothing is dead-lettered: nothing retried).
    fine = requests.post(retry, json={"actor": "system.ping"}, headers=api.operator, timeout=10)
    assert fine.status_code == 200, fine.text


def _finished_job(api: Api, job_id: int, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = requests.get(
            f"{api.url}/api/jobs/{job_id}", headers=api.business, timeout=10
        ).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_a_csv_import_names_its_duplicate_rows_their_first_line_and_the_value_kept(
    api: Api,
) -> None:
    csv = (
        "phone,name,notes\n"  # line 1
        "+14155550301,Ada,first\n"  # line 2
        "+14155550302,Bob,\n"  # line 3
        "(415) 555-0301,Adele,\n"  # line 4: line 2's number; a new name, no notes
        "not a phone,Nobody,\n"  # line 5: invalid
        "+14155550302,,\n"  # line 6: line 3's number, nothing new
    )
    response = requests.post(f"{api.url}/api/leads/import", headers=api.business, timeout=10,
                             files={"file": ("leads.csv", csv, "text/csv")})  # fmt: skip
    assert response.status_code == 202, response.text
    job = _finished_job(api, response.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    # Every row is accounted for: created + updated + invalid + duplicates.
    assert (result["rows"], result["created"], result["updated"]) == (5, 2, 0)
    assert (result["invalid"], result["duplicates"]) == (1, 2)
    assert [e["line"] for e in result["errors"]] == [5]
    assert result["duplicate_rows"] == [
        {"line": 4, "duplicate_of": 2, "phone": "+14155550301",
         "changed": {"name": {"kept": "Adele", "dropped": "Ada"}}},
        {"line": 6, "duplicate_of": 3, "phone": "+14155550302", "changed": {}},
    ]  # fmt: skip
    # What the report says was kept is what was stored; the empty cells dropped nothing.
    leads = requests.get(f"{api.url}/api/leads", headers=api.business, timeout=10).json()
    stored = {lead["phone"]: (lead["name"], lead["notes"]) for lead in leads["items"]}
    assert stored == {"+14155550301": ("Adele", "first"), "+14155550302": ("Bob", None)}
