"""Every 4xx/5xx is a JSON error, never an HTML page."""

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Tenant


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    response = client.get("/api/nope")
    assert response.status_code in (401, 404)  # /api/* asks for a token first
    assert response.is_json
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_wrong_method_is_json_405(client: FlaskClient, tenant_a: Tenant) -> None:
    response = client.delete("/api/me", headers=tenant_a.headers)
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_bad_path_parameter_is_404_not_500(client: FlaskClient, tenant_a: Tenant) -> None:
    for path in ("/api/jobs/abc", "/api/jobs/-1", "/api/jobs/1e9", "/api/jobs/%00"):
        response = client.get(path, headers=tenant_a.headers)
        assert response.status_code == 404, path
        assert response.is_json


def test_unexpected_errors_are_json_500(api_app: Flask) -> None:
    @api_app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaput")

    response = api_app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.json["error"]["code"] == "internal_error"
    assert "kaput" not in response.get_data(as_text=True)
