"""Every operation with a JSON request body, found in the app's own /api/openapi.json (a new one
is covered without editing this file), gets hostile bodies: nested 33 to 100,000 levels deep
(closed or unclosed), huge, wrong-typed (bools for integers, numbers for strings, arrays for
objects) and truncated. No answer is a 5xx, and every 4xx is the JSON error shape.

Each body goes with a business token and with an operator token, so routes for either role
(the operations API, the operator's trigger) are reached past authorization."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.common.db import Database
from libs.common.models import Call
from libs.web.validation import MAX_JSON_DEPTH
from tests.conftest import Tenant

HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
#: Per operation; two requests (business and operator token) per example.
MAX_EXAMPLES = 40
#: app_base's MAX_CONTENT_LENGTH is 10 MiB: one body past it checks the 413 is JSON too.
OVER_THE_LIMIT = 10 * 1024 * 1024 + 1

Body = tuple[bytes, str]  # (raw bytes, what the case is, for the failure report)


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type", "object")
    return set(kind) if isinstance(kind, list) else {kind}


def _wrong(doc: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of a type the schema does not allow (nested objects and arrays: wrong inside)."""
    schema = _resolve(doc, schema)
    types = _types(schema)
    candidates: list[st.SearchStrategy[Any]] = []
    if "integer" in types or "number" in types:
        candidates += [st.booleans(), st.text(max_size=5), st.just([1]), st.just({"n": 1})]
        if "number" not in types:
            candidates.append(st.floats(allow_nan=False, allow_infinity=False))
    if "string" in types:
        candidates += [st.integers(), st.floats(allow_nan=False), st.booleans(), st.just(["x"])]
        candidates.append(st.just({"s": "x"}))
    if "boolean" in types:
        candidates += [st.integers(0, 1), st.sampled_from(["true", "false", "yes"]), st.none()]
    if "array" in types:
        candidates += [st.just({"0": 1}), st.text(max_size=5), st.integers()]
        if depth < 2 and "items" in schema:
            candidates.append(st.lists(_wrong(doc, schema["items"], depth + 1), max_size=3))
    if "object" in types:
        candidates += [st.just([]), st.just([{}]), st.text(max_size=5), st.integers()]
        if depth < 2 and schema.get("properties"):
            candidates.append(_wrong_object(doc, schema, depth + 1))
    return st.one_of(candidates) if candidates else st.booleans()


def _wrong_object(
    doc: dict[str, Any], schema: dict[str, Any], depth: int = 0
) -> st.SearchStrategy[dict[str, Any]]:
    properties = _resolve(doc, schema).get("properties", {})
    wrong = {name: _wrong(doc, sub, depth) for name, sub in properties.items()}
    return st.fixed_dictionaries({}, optional=wrong)  # type: ignore[arg-type]


def _plausible(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A body shaped like the schema (to be truncated or stuffed)."""
    body: dict[str, Any] = {}
    for name, sub in _resolve(doc, schema).get("properties", {}).items():
        types = _types(_resolve(doc, sub))
        body[name] = (
            1 if types & {"integer", "number"} else
            "09:00" if "string" in types else
            True if "boolean" in types else
            [] if "array" in types else {}
        )  # fmt: skip
    return body


@st.composite
def _deep(draw: st.DrawFn, field: str | None) -> Body:
    depth = draw(st.integers(MAX_JSON_DEPTH + 1, 100_000) | st.sampled_from([33, 1_000, 100_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"a":', "}]")]))
    closed = draw(st.booleans())
    nested = opener * depth + ("1" + closer * depth if closed else "")
    text = nested if field is None else f'{{"{field}": {nested}' + ("}" if closed else "")
    return text.encode(), f"nested {depth} levels of {opener!r} (closed: {closed}) at {field}"


@st.composite
def _huge(draw: st.DrawFn, fields: list[str]) -> Body:
    field = draw(st.sampled_from(fields or ["x"]))
    kind = draw(st.sampled_from(["string", "array", "keys", "over_the_limit"]))
    if kind == "string":
        size = draw(st.sampled_from([10_000, 1_000_000]))
        body: Any = {field: "9" * size}
    elif kind == "array":
        body = {field: list(range(100_000))}
    elif kind == "keys":
        body = {f"k{i}": i for i in range(50_000)}
    else:
        return b'{"' + field.encode() + b'": "' + b"x" * OVER_THE_LIMIT + b'"}', "past the limit"
    return json.dumps(body).encode(), f"huge {kind} at {field}"


def _bodies(doc: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[Body]:
    fields = list(_resolve(doc, schema).get("properties", {}))
    plausible = json.dumps(_plausible(doc, schema)).encode()
    wrong_typed = _wrong_object(doc, schema).map(lambda b: (json.dumps(b).encode(), f"typed {b}"))
    not_an_object = st.sampled_from([b"[]", b"[{}]", b'"x"', b"1", b"true", b"null"])
    truncated = st.integers(0, max(0, len(plausible) - 1)).map(
        lambda n: (plausible[:n], f"truncated at {n}: {plausible[:n]!r}")
    )
    return st.one_of(
        _deep(None),
        st.sampled_from(fields or ["x"]).flatmap(_deep),
        _huge(fields),
        wrong_typed,
        wrong_typed,  # the richest family: drawn twice as often
        truncated,
        not_an_object.map(lambda raw: (raw, f"not an object: {raw!r}")),
    )


def _json_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                found.append((method, path, content["application/json"]["schema"]))
    return found


def _fill_path(path: str, ids: dict[str, int]) -> str:
    """Path parameters name real rows (else a route may 404 before it reads the body)."""
    for name, value in ids.items():
        path = path.replace("{" + name + "}", str(value))
    assert "{" not in path, f"{path}: give this path parameter a row in the fixture"
    return path


@pytest.fixture
def row_ids(client: FlaskClient, tenant_a: Tenant, db: Database) -> dict[str, int]:
    lead = client.post("/api/leads", json={"phone": "+14155550160"}, headers=tenant_a.headers)
    assert lead.status_code == 201, lead.json
    schedule = client.post(
        "/api/schedules", json={"lead_id": lead.json["id"], "local_time": "09:00"},
        headers=tenant_a.headers,
    )  # fmt: skip
    assert schedule.status_code == 201, schedule.json
    endpoint = client.post("/api/webhooks/endpoints", headers=tenant_a.headers,
                           json={"url": "https://hooks.test/", "event_types": ["*"]})  # fmt: skip
    assert endpoint.status_code == 201, endpoint.json
    disposition = client.post("/api/dispositions", headers=tenant_a.headers,
                              json={"code": "bodies"})  # fmt: skip
    assert disposition.status_code == 201, disposition.json
    with db.session() as session:  # calls are made by the dialer, not by the API
        call = Call(business_id=tenant_a.business_id, to_number="+14155550160",
                    status="completed")  # fmt: skip
        session.add(call)
        session.commit()
        call_id = call.id
    return {"lead_id": lead.json["id"], "schedule_id": schedule.json["id"],
            "endpoint_id": endpoint.json["id"], "disposition_id": disposition.json["id"],
            "call_id": call_id}  # fmt: skip


def _problem(response: Any) -> str | None:
    if response.status_code >= 500:
        return f"{response.status_code} {response.get_data(as_text=True)[:300]}"
    if response.status_code >= 400:
        error = (response.get_json(silent=True) or {}).get("error")
        if not (
            isinstance(error, dict)
            and isinstance(error.get("code"), str)
            and isinstance(error.get("message"), str)
        ):
            return f"{response.status_code} without the error shape: {response.data[:300]!r}"
    return None


def _check_operation(
    client: FlaskClient,
    tokens: dict[str, dict[str, str]],
    method: str,
    url: str,
    bodies: st.SearchStrategy[Body],
) -> None:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=HEALTH,
              database=None)  # fmt: skip
    @given(case=bodies)
    def check(case: Body) -> None:
        raw, what = case
        for role, headers in tokens.items():
            response = client.open(
                url, method=method, data=raw, headers=headers, content_type="application/json"
            )
            problem = _problem(response)
            assert problem is None, f"{role} token, {what[:200]}: {problem}"

    check()


def test_hostile_json_bodies_get_4xx_json_errors_never_a_5xx(
    client: FlaskClient,
    tenant_a: Tenant,
    operator_headers: dict[str, str],
    row_ids: dict[str, int],
) -> None:
    doc = client.get("/api/openapi.json", headers=tenant_a.headers).json
    assert doc is not None
    operations = _json_operations(doc)
    assert len(operations) >= 10  # every documented JSON body, not a silent subset
    tokens = {"business": tenant_a.headers, "operator": operator_headers}
    failures: list[str] = []
    for method, path, schema in operations:
        url = _fill_path(path, row_ids)
        try:
            _check_operation(client, tokens, method.upper(), url, _bodies(doc, schema))
        except BaseException as exc:  # every operation's failures, reported together
            failures.append(f"{method.upper()} {path}: {str(exc)[:800]}")
    assert not failures, "\n\n".join(failures)


def test_a_deep_body_is_a_cheap_400_naming_the_limit(client: FlaskClient, tenant_a: Tenant) -> None:
    for raw in ("[" * 100_000, '{"a":' * 100_000, '{"name": ' + "[" * 40 + "]" * 40 + "}"):
        response = client.post(
            "/api/leads", data=raw, content_type="application/json", headers=tenant_a.headers
        )
        assert response.status_code == 400, response.json
        assert f"deeper than {MAX_JSON_DEPTH} levels" in response.json["error"]["message"]
    # At the limit it is an ordinary body, read and validated field by field.
    at_limit = '{"name": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    response = client.post(
        "/api/leads", data=at_limit, content_type="application/json", headers=tenant_a.headers
    )
    assert response.status_code == 400
    assert "deeper" not in response.json["error"]["message"]
