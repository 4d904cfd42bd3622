"""schemathesis against the api's own OpenAPI document, with a business token: generated
requests for every operation (valid and invalid bodies, parameters, paths) never get a 5xx,
and every response matches the documented schema (status, content type, body). Gmail is
configured (the simulator), so its routes answer as they would in production.

Found so far, and fixed: ids past BIGINT in paths and bodies (500 from the database, now 404 /
400), NUL characters and lone surrogates in JSON text (500 from PostgreSQL, now 400).

The operations are driven with hypothesis directly: schemathesis's pytest plugin does not run
under this pytest version (it reads a private attribute pytest 9 removed)."""

from __future__ import annotations

from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Tenant

HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much]
#: No 5xx; the status, content type and body are the documented ones. (Not "schema-valid data
#: is accepted": a phone number is a string to the schema, but not every string is a number.)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


def test_no_5xx_and_every_response_matches_the_schema(gmail_app: Flask, tenant_a: Tenant) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", gmail_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30  # every documented operation, not a silent subset
    failures: list[str] = []
    for operation in operations:

        @settings(max_examples=20, deadline=None, suppress_health_check=HEALTH, database=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=tenant_a.headers, checks=CHECKS)

        try:
            check()
        except BaseException as exc:  # every operation's failures, reported together
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
