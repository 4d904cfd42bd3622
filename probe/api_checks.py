"""The api's operations, from outside: tenant isolation, authentication and roles, bad input.
Operations come from the api's own OpenAPI document, so a new one is probed as it lands."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import requests

from probe import openapi
from probe.fixtures import Owned, snapshot, wait_for_job
from probe.model import AUTH, BAD_INPUT, ISOLATION, Check, judge
from probe.openapi import Operation
from probe.paths import PRIVATE_PATH_PROBES, serves_private
from probe.raw import raw_exchange, raw_get
from probe.target import Client

Record = Callable[[Check], Check]
#: The probe's own id for a row nobody has (path parameters of auth checks).
NO_ROW = 1
#: An api body is refused past 10 MB (nginx, the console, Flask alike).
OVER_THE_LIMIT = 10 * 1024 * 1024 + 1


#: What an upload operation gets where a JSON one gets a plausible body.
PLAUSIBLE_CSV = b"phone,name\n+14155550998,Probe\n"


def _send(client: Client, op: Operation, path: str, token: str | None, body: Any = None,
          **kwargs: Any) -> requests.Response:  # fmt: skip
    if body is not None and "data" not in kwargs:
        kwargs["json"] = body
    elif "text/csv" in (op.spec.get("requestBody") or {}).get("content", {}):
        kwargs.setdefault("files", {"file": ("leads.csv", PLAUSIBLE_CSV, "text/csv")})
    return client.api(op.method, path, token, **kwargs)


def _role_token(client: Client, op: Operation) -> str:
    target = client.target
    return target.operator if op.role == "operator" else target.business_a


#: Bodies the schema alone cannot make valid ("exactly one of lead_ids or filter").
VALID_BODIES: dict[str, dict[str, Any]] = {"POST /api/runs": {"name": "probe", "filter": {}}}


def _body_for(doc: dict[str, Any], op: Operation, ids: dict[str, Any]) -> Any:
    """A body the operation would accept, so that what is probed is the only reason to refuse."""
    schema = op.json_schema()
    if schema is None:
        return None
    return {**openapi.plausible_body(doc, schema, ids), **VALID_BODIES.get(op.name, {})}


# -- tenant isolation ---------------------------------------------------------------------------


def check_isolation(client: Client, doc: dict[str, Any], ops: list[Operation], owned: Owned,
                    record: Record) -> None:  # fmt: skip
    """B, with A's ids in paths, bodies and filters: 404s and 4xx, A's rows unchanged, and no
    answer of B's carrying anything of A's."""
    b = client.target.business_b
    before = snapshot(client, owned)
    for op in ops:
        if op.role not in ("business", "either"):
            continue
        if op.path_params and all(p in owned.ids for p in op.path_params):
            response = _send(client, op, op.fill(owned.ids), b, _body_for(doc, op, {}))
            problem, server_error = judge(response, {404})
            record(Check(ISOLATION, op.name, "B names A's row", response.status_code, problem,
                         server_error, leak=response.status_code < 400))  # fmt: skip
        schema = op.json_schema()
        named = [n for n in openapi.properties(doc, schema) if n in owned.ids] if schema else []
        if named and not op.path_params:
            body = openapi.plausible_body(doc, schema or {}, owned.ids)
            response = _send(client, op, op.path, b, body)
            problem, server_error = judge(response)
            record(Check(ISOLATION, op.name, f"B's body names A's {', '.join(named)}",
                         response.status_code, problem, server_error,
                         leak=response.status_code < 400))  # fmt: skip
        if op.method == "GET" and not op.path_params:
            _check_listing(client, op, owned, record)
    after = snapshot(client, owned)
    for name, state in before.items():
        changed = after.get(name) != state
        record(Check(ISOLATION, f"A's {name.removesuffix('_id')}", "unchanged by B's attempts",
                     None, f"changed: {state} → {after.get(name)}" if changed else None,
                     leak=changed))  # fmt: skip


def _check_listing(client: Client, op: Operation, owned: Owned, record: Record) -> None:
    filters = {p["name"]: owned.ids[p["name"]] for p in op.query_params() if p["name"] in owned.ids}
    cases = {"B's listing": {}} | ({"B's listing filtered by A's ids": filters} if filters else {})
    for case, params in cases.items():
        response = client.api("GET", op.path, client.target.business_b, params=params)
        problem, server_error = judge(response, allow_success=True)
        found = [m for m in owned.markers if m and m in response.text]
        if found:
            problem = f"B's answer shows A's {found[:3]}"
        record(Check(ISOLATION, op.name, case, response.status_code, problem, server_error,
                     leak=bool(found)))  # fmt: skip


# -- authentication and roles --------------------------------------------------------------------


def check_auth(client: Client, doc: dict[str, Any], ops: list[Operation], owned: Owned,
               record: Record) -> dict[str, str]:  # fmt: skip
    """Returns the made-up secrets it sent, for the log check."""
    a = client.target.business_a
    altered = a[:-4] + ("AAAA" if not a.endswith("AAAA") else "BBBB")
    unknown = "sb_" + secrets.token_urlsafe(32)
    bad_headers = {
        "no Authorization header": {},
        "Basic credentials": {"Authorization": "Basic cHJvYmU6cHJvYmU="},
        "an empty Bearer": {"Authorization": "Bearer "},
        "an unknown token": {"Authorization": f"Bearer {unknown}"},
        "A's token with its end altered": {"Authorization": f"Bearer {altered}"},
    }
    for op in ops:
        path = op.fill(owned.ids, str(NO_ROW))
        body = _body_for(doc, op, owned.ids)
        if op.role == "public":
            response = _send(client, op, path, None, body)
            problem, server_error = judge(response, allow_success=True)
            record(Check(AUTH, op.name, "public, no token", response.status_code, problem,
                         server_error))  # fmt: skip
            continue
        for case, headers in bad_headers.items():
            response = _send(client, op, path, None, body, headers=headers)
            problem, server_error = judge(response, {401})
            record(Check(AUTH, op.name, case, response.status_code, problem, server_error,
                         leak=response.status_code < 400))  # fmt: skip
        wrong_roles = {
            "operator": ("a business token", a),
            "business": ("an operator token", client.target.operator),
        }
        wrong_role = wrong_roles.get(op.role)
        if wrong_role:
            response = _send(client, op, path, wrong_role[1], body)
            problem, server_error = judge(response, {403})
            record(Check(AUTH, op.name, wrong_role[0], response.status_code, problem,
                         server_error, leak=response.status_code < 400))  # fmt: skip
    for path, status in PRIVATE_PATH_PROBES:
        raw = raw_get(client.target.api, path)
        client.recorder.requests += 1
        leak = serves_private(raw.body)
        problem = "served a private endpoint" if leak else None
        if raw.status != status and problem is None:
            problem = f"{raw.status}, nginx answers {status}"
        record(Check(AUTH, "private paths", path, raw.status, problem, raw.status >= 500, leak))
    return {"an unknown token the probe sent": unknown, "A's token, altered": altered}


# -- bad input -----------------------------------------------------------------------------------


def _hostile_bodies(doc: dict[str, Any], op: Operation, ids: dict[str, Any]
                    ) -> list[tuple[str, bytes, bool]]:  # fmt: skip
    """(case, raw body, must be refused) for an operation with a JSON body."""
    schema = op.json_schema() or {}
    props = openapi.properties(doc, schema)
    plausible = openapi.plausible_body(doc, schema, ids)
    first = next(iter(props), "x")
    raw = json.dumps(plausible).encode()
    cases: list[tuple[str, bytes, bool]] = [
        ("100,000 nested arrays, unclosed", b"[" * 100_000, True),
        ("100,000 nested objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, True),
        (f"33 levels at {first}", f'{{"{first}": {"[" * 33}{"]" * 33}}}'.encode(), True),
        ("truncated", raw[: max(1, len(raw) // 2)], True),
        ("not an object", b"[]", True),
        ("null", b"null", True),
        ("invalid UTF-8", b'{"' + first.encode() + b'": "\xff\xfe"}', True),
        (
            "50,000 unknown keys",
            json.dumps({f"k{i}": i for i in range(50_000)}).encode(),
            openapi.closed(doc, schema),
        ),
    ]
    for name, sub in props.items():
        wrong = openapi.wrong_value(sub)
        if wrong is not None:
            value, kind = wrong
            cases.append((f"{kind} for {name}", json.dumps({**plausible, name: value}).encode(),
                          True))  # fmt: skip
        if "string" in openapi.types_of(sub) and "enum" not in sub:
            # Refused only where the document promises a maximum length.
            huge = json.dumps({**plausible, name: "9" * 1024 * 1024}).encode()
            cases.append((f"1 MB string for {name}", huge, "maxLength" in sub))
    return cases


def check_bad_input(client: Client, doc: dict[str, Any], ops: list[Operation], owned: Owned,
                    record: Record) -> None:  # fmt: skip
    for op in ops:
        if op.role == "public":
            continue
        token = _role_token(client, op)
        path = op.fill(owned.ids, str(NO_ROW))
        if op.json_schema() is not None:
            for case, raw, must_refuse in _hostile_bodies(doc, op, owned.ids):
                response = client.api(op.method, path, token, data=raw,
                                      headers={"Content-Type": "application/json"})  # fmt: skip
                problem, server_error = judge(response, allow_success=not must_refuse)
                record(Check(BAD_INPUT, op.name, case, response.status_code, problem,
                             server_error))  # fmt: skip
        for name in op.path_params:
            for value in ("abc", "-1", "0", "9" * 40):
                bad_path = op.fill({**owned.ids, name: value}, str(NO_ROW))
                response = _send(client, op, bad_path, token, _body_for(doc, op, owned.ids))
                problem, server_error = judge(response)
                record(Check(BAD_INPUT, op.name, f"{name}={value[:12]}", response.status_code,
                             problem, server_error))  # fmt: skip
        for param in op.query_params():
            for value in ("x" * 2000, "\x00", "-1", "1e400", "[]"):
                response = client.api(op.method, op.fill(owned.ids, str(NO_ROW)), token,
                                       params={param["name"]: value})  # fmt: skip
                problem, server_error = judge(response, allow_success=True)
                record(Check(BAD_INPUT, op.name, f"query {param['name']}={value[:12]!r}",
                             response.status_code, problem, server_error))  # fmt: skip
    _check_limits(client, record)
    _check_csv(client, record)


def _check_limits(client: Client, record: Record) -> None:
    """What the servers in front of Flask refuse must be JSON errors too (item 7)."""
    a, api = client.target.business_a, client.target.api
    many = {f"X-Probe-{i}": "1" for i in range(120)}
    cases: list[tuple[str, Callable[[], requests.Response], int]] = [
        ("a 6 KB query string", lambda: client.api("GET", "/api/me?q=" + "x" * 6144, a), 414),
        ("a 9 KB Authorization header",
         lambda: client.api("GET", "/api/me", "x" * 9216), 431),
        ("120 headers", lambda: client.api("GET", "/api/me", a, headers=many), 431),
        ("a body over 10 MB", lambda: client.api(
            "POST", "/api/leads", a, data=b"x" * OVER_THE_LIMIT,
            headers={"Content-Type": "application/json"}), 413),
    ]  # fmt: skip
    for case, send, status in cases:
        response = send()
        problem, server_error = judge(response, {status})
        record(Check(BAD_INPUT, "the server in front of the api", case, response.status_code,
                     problem, server_error))  # fmt: skip
    raw = raw_exchange(api, b"GET /api/me HTTP/1.1 extra\r\nHost: probe\r\n\r\n")
    client.recorder.requests += 1
    problem = (
        None
        if raw.status == 400 and raw.content_type.startswith("application/json")
        else (f"{raw.status} {raw.content_type}: {raw.body[:100]!r}")
    )
    record(Check(BAD_INPUT, "the server in front of the api", "a malformed request line",
                 raw.status, problem, raw.status >= 500))  # fmt: skip


#: Hostile CSV files and what their import must come to: a 400 at once, or a job that ends.
CSV_CASES: list[tuple[str, bytes]] = [
    ("binary garbage", bytes(range(256)) * 64),
    ("no phone column", b"name,email\nAda,ada@example.com\n"),
    ("invalid UTF-8", b"phone,name\n+14155550100,\xff\xfe\n"),
    ("a 100,000-column row", b"phone\n" + b",".join([b"+14155550100"] * 100_000) + b"\n"),
    ("an unclosed quote", b'phone,name\n+14155550100,"Ada\n'),
    ("an empty file", b""),
]


def _check_csv(client: Client, record: Record) -> None:
    a = client.target.business_a
    operation = "POST /api/leads/import"
    for case, content in CSV_CASES:
        response = client.api("POST", "/api/leads/import", a,
                              files={"file": ("leads.csv", content, "text/csv")})  # fmt: skip
        problem, server_error = judge(response, {202, 400})
        if problem is None and response.status_code == 202:
            job = wait_for_job(client, a, response.json()["job"]["id"])
            if job.get("status") not in ("succeeded", "failed"):
                problem = f"the import job did not end: {job.get('status')}"
            elif job["status"] == "failed" and (job.get("error") or {}).get("code") in (
                None, "internal_error"):  # fmt: skip
                problem = f"the import failed without a reason: {job.get('error')}"
        record(Check(BAD_INPUT, operation, f"CSV: {case}", response.status_code, problem,
                     server_error))  # fmt: skip
    _check_csv_duplicates(client, record)


def _check_csv_duplicates(client: Client, record: Record) -> None:
    """A careless file: one number twice. The result names the repeat, its first line and the
    value kept (item 8)."""
    a = client.target.business_a
    n = secrets.randbelow(9_999)
    number, other = f"+1415555{n:04d}", f"+1415555{n + 1:04d}"
    content = f"phone,name\n{number},First\n{other},Other\n{number},Second\n"
    response = client.api("POST", "/api/leads/import", a,
                          files={"file": ("leads.csv", content.encode(), "text/csv")})  # fmt: skip
    problem, server_error = judge(response, {202})
    if problem is None:
        job = wait_for_job(client, a, response.json()["job"]["id"])
        rows = (job.get("result") or {}).get("duplicate_rows")
        expected = [{"line": 4, "duplicate_of": 2, "phone": number,
                     "changed": {"name": {"kept": "Second", "dropped": "First"}}}]  # fmt: skip
        if rows != expected:
            problem = f"duplicate rows reported as {rows}, expected {expected}"
    record(Check(BAD_INPUT, "POST /api/leads/import", "CSV: one number on two lines",
                 response.status_code, problem, server_error))  # fmt: skip
