"""Leads and the do-not-call list through the API."""

import io
import json

import redis
from flask.testing import FlaskClient

from tests.conftest import Tenant


def test_create_normalises_to_e164(client: FlaskClient, tenant_a: Tenant) -> None:
    response = client.post(
        "/api/leads",
        json={"name": "Ada", "phone": "(415) 555-0100", "timezone": "America/Los_Angeles"},
        headers=tenant_a.headers,
    )
    assert response.status_code == 201
    assert response.json["phone"] == "+14155550100"
    duplicate = client.post(
        "/api/leads", json={"phone": "+1 415 555 0100"}, headers=tenant_a.headers
    )
    assert duplicate.status_code == 409


def test_bad_input_is_a_clear_400(client: FlaskClient, tenant_a: Tenant) -> None:
    cases = [
        ({"phone": "not a phone"}, "phone"),
        ({"phone": "+1415555010"}, "phone"),
        ({"phone": "+14155550100", "timezone": "Mars/Olympus"}, "timezone"),
        ({"phone": "+14155550100", "name": 5}, "name"),
        ({}, "phone"),
    ]
    for body, field in cases:
        response = client.post("/api/leads", json=body, headers=tenant_a.headers)
        assert response.status_code == 400, body
        assert field in response.json["error"]["message"]
    for raw in ("[]", "nope", ""):
        response = client.post(
            "/api/leads", data=raw, content_type="application/json", headers=tenant_a.headers
        )
        assert response.status_code == 400


def test_bulk_is_all_or_nothing(client: FlaskClient, tenant_a: Tenant) -> None:
    leads = [{"phone": f"+1415555{i:04d}"} for i in range(100, 110)]
    bad = client.post(
        "/api/leads/bulk", json={"leads": [*leads, {"phone": "x"}]}, headers=tenant_a.headers
    )
    assert bad.status_code == 400
    assert bad.json["error"]["details"] == [
        {"index": 10, "error": bad.json["error"]["details"][0]["error"]}
    ]
    assert client.get("/api/leads", headers=tenant_a.headers).json["total"] == 0
    ok = client.post("/api/leads/bulk", json={"leads": leads}, headers=tenant_a.headers)
    assert ok.json == {"created": 10, "updated": 0}
    again = client.post("/api/leads/bulk", json={"leads": leads[:3]}, headers=tenant_a.headers)
    assert again.json == {"created": 0, "updated": 3}


def test_list_filters_and_pages(client: FlaskClient, tenant_a: Tenant, tenant_b: Tenant) -> None:
    leads = [{"phone": f"+1415555{i:04d}", "name": f"Person {i}"} for i in range(100, 125)]
    client.post("/api/leads/bulk", json={"leads": leads}, headers=tenant_a.headers)
    client.post("/api/leads", json={"phone": "+14155550999"}, headers=tenant_b.headers)
    page = client.get("/api/leads?page=2&per_page=10", headers=tenant_a.headers).json
    assert page["total"] == 25 and len(page["items"]) == 10
    assert page["items"][0]["name"] == "Person 110"
    assert client.get("/api/leads?q=Person 12", headers=tenant_a.headers).json["total"] == 5
    assert client.get("/api/leads?per_page=0", headers=tenant_a.headers).status_code == 400
    assert client.get("/api/leads?source=fax", headers=tenant_a.headers).status_code == 400


def test_update_delete_and_isolation(
    client: FlaskClient, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    lead = client.post("/api/leads", json={"phone": "+14155550100"}, headers=tenant_a.headers).json
    url = f"/api/leads/{lead['id']}"
    assert client.get(url, headers=tenant_b.headers).status_code == 404
    assert client.patch(url, json={"name": "X"}, headers=tenant_b.headers).status_code == 404
    assert client.delete(url, headers=tenant_b.headers).status_code == 404
    patched = client.patch(
        url, json={"name": "Grace", "callback_requested": True}, headers=tenant_a.headers
    )
    assert patched.json["name"] == "Grace" and patched.json["callback_requested"] is True
    assert client.patch(url, json={"color": "red"}, headers=tenant_a.headers).status_code == 400
    assert client.delete(url, headers=tenant_a.headers).status_code == 204
    assert client.get(url, headers=tenant_a.headers).status_code == 404


def test_operator_tokens_have_no_business_data(
    client: FlaskClient, operator_headers: dict[str, str]
) -> None:
    response = client.get("/api/leads", headers=operator_headers)
    assert response.status_code == 403
    assert "business token" in response.json["error"]["message"]


def test_dnc_list(client: FlaskClient, tenant_a: Tenant, tenant_b: Tenant) -> None:
    added = client.post(
        "/api/dnc", json={"phone": "415-555-0100", "reason": "asked"}, headers=tenant_a.headers
    )
    assert added.status_code == 201 and added.json["phone"] == "+14155550100"
    again = client.post("/api/dnc", json={"phone": "+14155550100"}, headers=tenant_a.headers)
    assert again.status_code == 200 and again.json["id"] == added.json["id"]
    assert client.get("/api/dnc", headers=tenant_b.headers).json["total"] == 0
    assert (
        client.delete(f"/api/dnc/{added.json['id']}", headers=tenant_b.headers).status_code == 404
    )
    assert (
        client.delete(f"/api/dnc/{added.json['id']}", headers=tenant_a.headers).status_code == 204
    )
    assert client.post("/api/dnc", json={"phone": "x"}, headers=tenant_a.headers).status_code == 400


def test_csv_import_is_queued_with_the_file_kept_for_the_worker(
    client: FlaskClient, tenant_a: Tenant, redis_client: redis.Redis
) -> None:
    csv = b"Name,Phone\nAda,(415) 555-0100\nBad,123\n"
    response = client.post(
        "/api/leads/import",
        data={"file": (io.BytesIO(csv), "leads.csv")},
        headers=tenant_a.headers,
    )
    assert response.status_code == 202
    job_id = response.json["job"]["id"]
    [message_id] = redis_client.lrange("dramatiq:low", 0, -1)
    message = json.loads(redis_client.hget("dramatiq:low.msgs", message_id))
    assert message["actor_name"] == "leads.import_csv"
    assert message["kwargs"] == {"background_job_id": job_id}


def test_csv_import_needs_a_file(client: FlaskClient, tenant_a: Tenant) -> None:
    response = client.post("/api/leads/import", json={"x": 1}, headers=tenant_a.headers)
    assert response.status_code == 400
    empty = client.post(
        "/api/leads/import", data=b"", content_type="text/csv", headers=tenant_a.headers
    )
    assert empty.status_code == 400
