"""Bearer tokens: 401 without a valid one, 404 across businesses, 403 on operator endpoints."""

from flask.testing import FlaskClient
from sqlalchemy import update

from libs.common.db import Database
from libs.common.models import ApiToken, BackgroundJob, utcnow
from tests.conftest import Tenant


def _job_for(db: Database, business_id: int | None) -> int:
    with db.session() as session:
        job = BackgroundJob(business_id=business_id, kind="test")
        session.add(job)
        session.commit()
        return job.id


def test_no_token_is_401(client: FlaskClient) -> None:
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_or_malformed_token_is_401(client: FlaskClient, tenant_a: Tenant) -> None:
    for header in ("Bearer sb_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer ", tenant_a.token):
        response = client.get("/api/me", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_revoked_token_is_401(client: FlaskClient, db: Database, tenant_a: Tenant) -> None:
    assert client.get("/api/me", headers=tenant_a.headers).status_code == 200
    with db.session() as session:
        session.execute(update(ApiToken).values(revoked_at=utcnow()))
        session.commit()
    assert client.get("/api/me", headers=tenant_a.headers).status_code == 401


def test_me_shows_the_business(client: FlaskClient, tenant_a: Tenant) -> None:
    body = client.get("/api/me", headers=tenant_a.headers).json
    assert body["role"] == "business"
    assert body["business"]["id"] == tenant_a.business_id
    assert body["business"]["max_concurrent_calls"] == 3


def test_business_a_gets_404_for_business_b_job(
    client: FlaskClient, db: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    job_b = _job_for(db, tenant_b.business_id)
    assert client.get(f"/api/jobs/{job_b}", headers=tenant_b.headers).status_code == 200
    response = client.get(f"/api/jobs/{job_b}", headers=tenant_a.headers)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    # Same answer as a job that does not exist at all: nothing leaks.
    missing = client.get("/api/jobs/999999", headers=tenant_a.headers)
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == response.json["error"]["code"]


def test_operator_endpoints_refuse_business_tokens(
    client: FlaskClient, tenant_a: Tenant, operator_headers: dict[str, str]
) -> None:
    response = client.get("/api/queue/status", headers=tenant_a.headers)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert client.get("/api/queue/status", headers=operator_headers).status_code == 200


def test_operator_sees_any_job(
    client: FlaskClient, db: Database, tenant_b: Tenant, operator_headers: dict[str, str]
) -> None:
    job_b = _job_for(db, tenant_b.business_id)
    assert client.get(f"/api/jobs/{job_b}", headers=operator_headers).status_code == 200


def test_health_and_openapi_need_no_token(client: FlaskClient) -> None:
    assert client.get("/api/healthz").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200
