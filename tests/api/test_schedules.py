"""Schedules through the API: validation with clear 400s, next_due_at kept current, tenant
isolation, and the manual trigger's rate limit and broker check."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import redis
from flask.testing import FlaskClient

from libs.common.models import utcnow
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from services.api.app import create_app
from tests.conftest import Tenant
from tests.support.services import unreachable_redis_url


def _lead(client: FlaskClient, tenant: Tenant, phone: str, timezone: str | None = None) -> int:
    body = {"phone": phone, **({"timezone": timezone} if timezone else {})}
    response = client.post("/api/leads", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.json
    return int(response.json["id"])


def _post(client: FlaskClient, tenant: Tenant, **body: object):  # type: ignore[no-untyped-def]
    return client.post("/api/schedules", json=body, headers=tenant.headers)


def test_create_defaults_to_the_leads_zone_then_the_business(
    client: FlaskClient, tenant_a: Tenant
) -> None:
    berlin = _lead(client, tenant_a, "+14155550101", "Europe/Berlin")
    plain = _lead(client, tenant_a, "+14155550102")
    created = _post(client, tenant_a, lead_id=berlin, local_time="09:30")
    assert created.status_code == 201, created.json
    schedule = created.json
    assert schedule["timezone"] == "Europe/Berlin" and schedule["enabled"] is True
    assert schedule["days"] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    due = datetime.fromisoformat(schedule["next_due_at"])
    assert due > utcnow()
    local = due.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (9, 30)
    other = _post(client, tenant_a, lead_id=plain, local_time="18:00", days=["sat", "sun"])
    assert other.json["timezone"] == "America/New_York"  # the business's zone
    assert datetime.fromisoformat(other.json["next_due_at"]).astimezone(UTC).weekday() in (5, 6)


def test_bad_input_is_400_with_a_clear_message(
    client: FlaskClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    lead = _lead(client, tenant_a, "+14155550103")
    foreign = _lead(client, tenant_b, "+14155550104")
    cases = [
        ({"local_time": "09:00"}, "lead_id is required"),
        ({"lead_id": lead}, "local_time is required"),
        ({"lead_id": lead, "local_time": "25:00"}, "local_time must be HH:MM"),
        ({"lead_id": lead, "local_time": "9:00"}, "local_time must be HH:MM"),
        ({"lead_id": lead, "local_time": 900}, "local_time must be a string"),
        ({"lead_id": lead, "local_time": "09:00", "timezone": "Mars/Olympus"}, "IANA"),
        ({"lead_id": lead, "local_time": "09:00", "timezone": ""}, "IANA"),
        ({"lead_id": lead, "local_time": "09:00", "days": []}, "days must be"),
        ({"lead_id": lead, "local_time": "09:00", "days": ["funday"]}, "'funday'"),
        ({"lead_id": lead, "local_time": "09:00", "enabled": "yes"}, "enabled must be"),
        ({"lead_id": lead, "local_time": "09:00", "colour": "red"}, "unknown fields: colour"),
        ({"lead_id": foreign, "local_time": "09:00"}, f"unknown lead {foreign}"),
    ]
    for body, message in cases:
        response = _post(client, tenant_a, **body)
        assert response.status_code == 400, body
        assert message in response.json["error"]["message"], (body, response.json)
    not_json = client.post("/api/schedules", data="x", headers=tenant_a.headers)
    assert not_json.status_code == 400
    assert client.get("/api/schedules", headers=tenant_a.headers).json["total"] == 0


def test_update_recomputes_next_due_and_disable_clears_it(
    client: FlaskClient, tenant_a: Tenant
) -> None:
    lead = _lead(client, tenant_a, "+14155550105", "Asia/Kolkata")
    schedule = _post(client, tenant_a, lead_id=lead, local_time="09:00").json
    url = f"/api/schedules/{schedule['id']}"
    moved = client.patch(url, json={"local_time": "10:15"}, headers=tenant_a.headers).json
    due = datetime.fromisoformat(moved["next_due_at"]).astimezone(UTC)
    assert (due.hour, due.minute) == (4, 45)  # 10:15 at +05:30
    off = client.patch(url, json={"enabled": False}, headers=tenant_a.headers).json
    assert off["next_due_at"] is None
    on = client.patch(url, json={"enabled": True, "timezone": "UTC"}, headers=tenant_a.headers)
    due = datetime.fromisoformat(on.json["next_due_at"])
    assert (due.hour, due.minute) == (10, 15) and on.json["timezone"] == "UTC"
    back = client.patch(url, json={"timezone": None}, headers=tenant_a.headers).json
    assert back["timezone"] == "Asia/Kolkata"
    bad = client.patch(url, json={"days": ["mon", 3]}, headers=tenant_a.headers)
    assert bad.status_code == 400
    assert client.patch(url, json={"lead_id": 1}, headers=tenant_a.headers).status_code == 400
    assert client.get(url, headers=tenant_a.headers).json["timezone"] == "Asia/Kolkata"


def test_one_schedule_per_lead_and_tenants_are_isolated(
    client: FlaskClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    lead = _lead(client, tenant_a, "+14155550106")
    schedule = _post(client, tenant_a, lead_id=lead, local_time="09:00").json
    again = _post(client, tenant_a, lead_id=lead, local_time="10:00")
    assert again.status_code == 409
    url = f"/api/schedules/{schedule['id']}"
    assert client.get(url, headers=tenant_b.headers).status_code == 404
    assert client.patch(url, json={"enabled": False}, headers=tenant_b.headers).status_code == 404
    assert client.delete(url, headers=tenant_b.headers).status_code == 404
    assert client.get("/api/schedules", headers=tenant_b.headers).json["total"] == 0
    occurrences = client.get(f"{url}/occurrences", headers=tenant_a.headers).json
    assert occurrences["items"] == [] and occurrences["total"] == 0
    assert client.delete(url, headers=tenant_a.headers).status_code == 204
    assert client.get(url, headers=tenant_a.headers).status_code == 404


def test_trigger_queues_a_due_check_then_answers_429_past_the_limit(
    client: FlaskClient,
    tenant_a: Tenant,
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    limit = settings.schedule_trigger_per_minute
    responses = [
        client.post("/api/schedules/trigger", headers=tenant_a.headers) for _ in range(limit + 1)
    ]
    assert [r.status_code for r in responses] == [202] * limit + [429]
    assert responses[0].json["business_id"] == tenant_a.business_id
    limited = responses[-1]
    assert limited.json["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    queued = [
        json.loads(redis_client.hget("dramatiq:default.msgs", mid) or b"{}")
        for mid in redis_client.lrange("dramatiq:default", 0, -1)
    ]
    assert len(queued) == limit
    assert {m["actor_name"] for m in queued} == {"schedules.check_due"}
    assert {m["kwargs"]["business_id"] for m in queued} == {tenant_a.business_id}


def test_trigger_scopes(
    client: FlaskClient,
    tenant_a: Tenant,
    tenant_b: Tenant,
    operator_headers: dict[str, str],
) -> None:
    other = client.post(
        "/api/schedules/trigger", json={"business_id": tenant_b.business_id},
        headers=tenant_a.headers,
    )  # fmt: skip
    assert other.status_code == 403
    everyone = client.post("/api/schedules/trigger", headers=operator_headers)
    assert everyone.status_code == 202 and everyone.json["business_id"] is None
    one = client.post(
        "/api/schedules/trigger", json={"business_id": tenant_b.business_id},
        headers=operator_headers,
    )  # fmt: skip
    assert one.status_code == 202 and one.json["business_id"] == tenant_b.business_id
    unknown = client.post(
        "/api/schedules/trigger", json={"business_id": 999_999}, headers=operator_headers
    )
    assert unknown.status_code == 400
    bad = client.post("/api/schedules/trigger", json=[1], headers=operator_headers)
    assert bad.status_code == 400


def test_trigger_with_the_broker_down_is_503(settings: Settings, tenant_a: Tenant) -> None:
    dead = settings.with_overrides(redis_url=unreachable_redis_url())
    dead_client = create_app(dead, broker=build_broker(dead, worker=False)).test_client()
    response = dead_client.post("/api/schedules/trigger", headers=tenant_a.headers)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "queue_unavailable"
    assert response.headers["Retry-After"]


def test_queue_status_lists_the_periodic_jobs(
    client: FlaskClient, operator_headers: dict[str, str]
) -> None:
    report = client.get("/api/queue/status", headers=operator_headers).json
    jobs = {j["name"]: j for j in report["components"]["scheduler"]["periodic"]}
    assert jobs["schedules_tick"]["actor"] == "schedules.tick"
    assert jobs["schedules_tick"]["period_s"] == 60
    assert jobs["reconcile"]["actor"] == "maintenance.reconcile"
    assert {"last_run_at", "next_run_at"} <= set(jobs["schedules_tick"])
