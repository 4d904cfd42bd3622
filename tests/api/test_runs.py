"""Runs through the API: created with one job per lead, state changes, progress from rows."""

import json

import redis
from flask.testing import FlaskClient
from sqlalchemy import update

from libs.common.db import Database
from libs.common.models import CallJob, CallJobStatus
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from services.api.app import create_app
from tests.conftest import Tenant
from tests.support.services import unreachable_redis_url


def _leads(client: FlaskClient, tenant: Tenant, n: int, base: int = 100) -> list[int]:
    leads = [{"phone": f"+1415555{i:04d}"} for i in range(base, base + n)]
    client.post("/api/leads/bulk", json={"leads": leads}, headers=tenant.headers)
    items = client.get("/api/leads?per_page=200", headers=tenant.headers).json["items"]
    return [lead["id"] for lead in items]


def _create(client: FlaskClient, tenant: Tenant, **body: object) -> dict:  # type: ignore[type-arg]
    response = client.post("/api/runs", json={"name": "Promo", **body}, headers=tenant.headers)
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def test_create_by_ids_and_by_filter(client: FlaskClient, tenant_a: Tenant) -> None:
    ids = _leads(client, tenant_a, 5)
    run = _create(client, tenant_a, lead_ids=ids[:3], max_attempts=2, retry_delay_s=60)
    assert run["status"] == "draft"
    assert run["progress"]["total"] == 3 and run["progress"]["by_status"]["queued"] == 3
    assert run["window"] == {"start": "08:00", "end": "21:00"}
    everyone = _create(client, tenant_a, filter={})
    assert everyone["progress"]["total"] == 5


def test_bad_run_input_is_400(client: FlaskClient, tenant_a: Tenant, tenant_b: Tenant) -> None:
    ids = _leads(client, tenant_a, 2)
    other = _leads(client, tenant_b, 1, base=500)
    cases = [
        {"lead_ids": ids},  # no name
        {"name": "x"},  # neither ids nor filter
        {"name": "x", "lead_ids": ids, "filter": {}},
        {"name": "x", "lead_ids": []},
        {"name": "x", "lead_ids": ["1"]},
        {"name": "x", "lead_ids": other},  # another business's lead
        {"name": "x", "lead_ids": ids, "max_attempts": 0},
        {"name": "x", "lead_ids": ids, "retry_delay_s": -5},
        {"name": "x", "lead_ids": ids, "window": {"start": "22:00", "end": "08:00"}},
        {"name": "x", "lead_ids": ids, "window": {"start": "8am", "end": "21:00"}},
        {"name": "x", "filter": {"source": "fax"}},  # matches nothing
        {"name": "x", "filter": {"colour": "red"}},
    ]
    for body in cases:
        response = client.post("/api/runs", json=body, headers=tenant_a.headers)
        assert response.status_code == 400, body
        assert response.json["error"]["code"] == "bad_request"


def test_compliance_limits_default_may_be_lowered_and_never_pass_3_percent(
    client: FlaskClient, tenant_a: Tenant
) -> None:
    ids = _leads(client, tenant_a, 2)
    default = _create(client, tenant_a, lead_ids=ids)
    assert default["compliance"] == {"max_abandon_rate": 0.03, "max_failure_rate": 0.5,
                                     "failure_window_s": 600, "min_failure_sample": 10}  # fmt: skip
    limits = {"max_abandon_rate": 0.015, "max_failure_rate": 0.2, "failure_window_s": 1800,
              "min_failure_sample": 25}  # fmt: skip
    strict = _create(client, tenant_a, lead_ids=ids, compliance=limits)
    assert strict["compliance"] == limits
    shown = client.get(f"/api/runs/{strict['id']}", headers=tenant_a.headers).json
    assert shown["compliance"] == limits
    zero = _create(client, tenant_a, lead_ids=ids, compliance={"max_abandon_rate": 0})
    assert zero["compliance"]["max_abandon_rate"] == 0  # pause at the first abandoned call
    for bad in (
        {"max_abandon_rate": 0.031},  # above the legal limit
        {"max_abandon_rate": 0.5},
        {"max_abandon_rate": -0.01},
        {"max_failure_rate": 0},
        {"max_failure_rate": 1.5},
        {"failure_window_s": 10},
        {"min_failure_sample": 0},
        {"max_abandon_rate": "3%"},
        {"grace": 1},
    ):
        response = client.post("/api/runs", json={"name": "x", "lead_ids": ids, "compliance": bad},
                               headers=tenant_a.headers)  # fmt: skip
        assert response.status_code == 400, bad
        assert response.json["error"]["code"] == "bad_request"
        assert "compliance" in json.dumps(response.json["error"]), response.json


def test_transitions_and_dispatch(
    client: FlaskClient, tenant_a: Tenant, redis_client: redis.Redis
) -> None:
    run = _create(client, tenant_a, lead_ids=_leads(client, tenant_a, 3))
    url = f"/api/runs/{run['id']}"
    assert client.post(f"{url}/resume", headers=tenant_a.headers).status_code == 409
    started = client.post(f"{url}/start", headers=tenant_a.headers)
    assert started.status_code == 200 and started.json["status"] == "running"
    [message_id] = redis_client.lrange("dramatiq:high", 0, -1)
    message = json.loads(redis_client.hget("dramatiq:high.msgs", message_id))
    assert message["actor_name"] == "dialer.dispatch"
    assert client.post(f"{url}/start", headers=tenant_a.headers).status_code == 409
    assert client.post(f"{url}/pause", headers=tenant_a.headers).json["status"] == "paused"
    assert client.post(f"{url}/resume", headers=tenant_a.headers).json["status"] == "running"
    canceled = client.post(f"{url}/cancel", headers=tenant_a.headers).json
    assert canceled["status"] == "canceled"
    assert canceled["progress"]["by_status"]["canceled"] == 3
    assert canceled["finished_at"] is not None


def test_progress_is_computed_from_rows(
    client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    run = _create(client, tenant_a, lead_ids=_leads(client, tenant_a, 4))
    client.post(f"/api/runs/{run['id']}/start", headers=tenant_a.headers)
    with db.session() as session:
        jobs = session.query(CallJob).order_by(CallJob.id).all()
        states = [CallJobStatus.DIALING, CallJobStatus.IN_CALL, CallJobStatus.COMPLETED]
        for job, state in zip(jobs, states, strict=False):
            session.execute(
                update(CallJob).where(CallJob.id == job.id).values(status=state, attempt=1)
            )
        session.commit()
    progress = client.get(f"/api/runs/{run['id']}", headers=tenant_a.headers).json["progress"]
    assert progress["active_calls"] == 2
    assert progress["done"] == 1 and progress["total"] == 4 and progress["percent"] == 25.0
    assert progress["attempts"] == 3


def test_start_with_the_broker_down_is_503_and_the_run_stays_draft(
    client: FlaskClient, settings: Settings, tenant_a: Tenant
) -> None:
    run = _create(client, tenant_a, lead_ids=_leads(client, tenant_a, 1))
    dead = settings.with_overrides(redis_url=unreachable_redis_url())
    dead_client = create_app(dead, broker=build_broker(dead, worker=False)).test_client()
    response = dead_client.post(f"/api/runs/{run['id']}/start", headers=tenant_a.headers)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "queue_unavailable"
    assert client.get(f"/api/runs/{run['id']}", headers=tenant_a.headers).json["status"] == "draft"


def test_runs_and_calls_are_isolated(
    client: FlaskClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    run = _create(client, tenant_a, lead_ids=_leads(client, tenant_a, 1))
    assert client.get(f"/api/runs/{run['id']}", headers=tenant_b.headers).status_code == 404
    assert client.post(f"/api/runs/{run['id']}/start", headers=tenant_b.headers).status_code == 404
    assert client.get("/api/runs", headers=tenant_b.headers).json["total"] == 0
    assert client.get("/api/calls", headers=tenant_b.headers).json["total"] == 0
    assert client.get("/api/calls?status=bogus", headers=tenant_a.headers).status_code == 400


def test_a_run_lists_the_actions_its_status_allows(client: FlaskClient, tenant_a: Tenant) -> None:
    """The console shows these as buttons instead of keeping its own copy of the transitions;
    each listed action is accepted, and every other one is a 409."""
    run = _create(client, tenant_a, lead_ids=_leads(client, tenant_a, 2))
    url = f"/api/runs/{run['id']}"
    seen = {}
    for step in ("start", "pause", "resume", "cancel"):
        current = client.get(url, headers=tenant_a.headers).json
        seen[current["status"]] = current["actions"]
        for other in {"start", "pause", "resume", "cancel"} - set(current["actions"]):
            assert client.post(f"{url}/{other}", headers=tenant_a.headers).status_code == 409
        assert step in current["actions"], (current["status"], current["actions"])
        assert client.post(f"{url}/{step}", headers=tenant_a.headers).status_code == 200
    final = client.get(url, headers=tenant_a.headers).json
    seen[final["status"]] = final["actions"]
    assert seen == {
        "draft": ["start", "cancel"],
        "running": ["pause", "cancel"],
        "paused": ["resume", "cancel"],
        "canceled": [],
    }
    listed = client.get("/api/runs", headers=tenant_a.headers).json["items"]
    assert listed[0]["actions"] == []
