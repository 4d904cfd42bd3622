"""The generated OpenAPI document covers every route served, and real responses match it."""

from typing import Any

import jsonschema
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from libs.common.db import Database
from tests.api.conftest import connect_inbox
from tests.conftest import Tenant
from tests.receipt_factories import make_receipts


def _flask_paths(app: Flask) -> set[tuple[str, str]]:
    served = set()
    rule: Rule
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add((path, method.lower()))
    return served


def _documented_paths(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, ops in document["paths"].items() for method in ops}


def test_every_route_is_documented_and_every_documented_route_exists(
    api_app: Flask, client: FlaskClient
) -> None:
    """A route added without ``@api.validate`` is missing from the document: this fails."""
    document = client.get("/api/openapi.json").json
    jsonschema.Draft202012Validator.check_schema(document["components"]["schemas"]["Run"])
    served = _flask_paths(api_app) - {("/api/openapi.json", "get")}  # the document itself
    assert served == _documented_paths(document)


def test_the_document_is_generated_once_and_names_each_model_once(client: FlaskClient) -> None:
    first = client.get("/api/openapi.json")
    assert first.status_code == 200 and first.json["openapi"].startswith("3.1")
    assert client.get("/api/openapi.json").json == first.json
    schemas = first.json["components"]["schemas"]
    assert {"Error", "Run", "Lead", "Call", "Me", "Job"} <= set(schemas)
    # Strings a client sends are bounded, and the bound is documented.
    for name in ("LeadInput", "RunInput", "DncInput", "ScheduleInput", "FailedFilter"):
        for field, prop in schemas[name]["properties"].items():
            options = prop.get("anyOf", [prop])
            for option in options:
                if option.get("type") == "string" and "enum" not in option:
                    assert "maxLength" in option, (name, field)


def _validate(document: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    response_spec = document["paths"][path][method]["responses"][str(status)]
    schema = response_spec["content"]["application/json"]["schema"]
    resolver_schema = {**schema, "components": document["components"]}
    jsonschema.validate(body, resolver_schema, cls=jsonschema.Draft202012Validator)


def test_responses_match_their_schemas(
    client: FlaskClient, tenant_a: Tenant, operator_headers: dict[str, str]
) -> None:
    document = client.get("/api/openapi.json").json
    jsonschema.Draft202012Validator.check_schema(document["components"]["schemas"]["Job"])
    me = client.get("/api/me", headers=tenant_a.headers)
    _validate(document, "/api/me", "get", 200, me.json)
    ping = client.post("/api/system/ping", headers=tenant_a.headers)
    _validate(document, "/api/system/ping", "post", 202, ping.json)
    job_id = ping.json["job"]["id"]
    job = client.get(f"/api/jobs/{job_id}", headers=tenant_a.headers)
    _validate(document, "/api/jobs/{job_id}", "get", 200, job.json)
    missing = client.get("/api/jobs/999999", headers=tenant_a.headers)
    _validate(document, "/api/jobs/{job_id}", "get", 404, missing.json)
    unauth = client.get("/api/me")
    _validate(document, "/api/me", "get", 401, unauth.json)
    status = client.get("/api/queue/status", headers=operator_headers)
    _validate(document, "/api/queue/status", "get", 200, status.json)
    forbidden = client.get("/api/queue/status", headers=tenant_a.headers)
    _validate(document, "/api/queue/status", "get", 403, forbidden.json)


def test_gmail_and_receipt_responses_match_their_schemas(
    gmail_client: FlaskClient, db: Database, tenant_a: Tenant
) -> None:
    document = gmail_client.get("/api/openapi.json").json
    headers = tenant_a.headers
    connect = gmail_client.get("/api/gmail/connect", headers=headers)
    _validate(document, "/api/gmail/connect", "get", 200, connect.json)
    connect_inbox(gmail_client, tenant_a)
    connections = gmail_client.get("/api/gmail/connections", headers=headers)
    _validate(document, "/api/gmail/connections", "get", 200, connections.json)
    forged = gmail_client.get("/api/gmail/callback?state=forged&code=x")
    _validate(document, "/api/gmail/callback", "get", 400, forged.json)
    queued = gmail_client.post("/api/receipts/sync", headers=headers)
    _validate(document, "/api/receipts/sync", "post", 202, queued.json)
    running = gmail_client.post("/api/receipts/sync", headers=headers)
    _validate(document, "/api/receipts/sync", "post", 409, running.json)
    receipt_id = make_receipts(db, tenant_a.business_id)[0]
    listed = gmail_client.get("/api/receipts", headers=headers)
    _validate(document, "/api/receipts", "get", 200, listed.json)
    one = gmail_client.get(f"/api/receipts/{receipt_id}", headers=headers)
    _validate(document, "/api/receipts/{receipt_id}", "get", 200, one.json)
    bad = gmail_client.get("/api/receipts?from=x", headers=headers)
    _validate(document, "/api/receipts", "get", 400, bad.json)
