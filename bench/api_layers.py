"""What validating and serializing through pydantic costs per request, by Flask integration.

The api's four hot endpoints — ``GET /api/runs`` (a page of 20 runs with progress),
``GET /api/calls`` (a page of 50 calls, filtered), ``POST /api/leads`` (a body validated:
phone parsed, zone checked) and ``GET /api/me`` — served by one small Flask app per
candidate, side by side in one process:

- ``hand``: what the api did before issue 23 — query parameters read by hand, dicts built by
  hand, ``jsonify`` (the floor: no schema at all, and no document);
- ``spectree``, ``flask-openapi3`` and ``flask-pydantic`` with the api's own pydantic models
  (``services/api/*/schemas.py``), each used the way its documentation shows.

The rows come from memory, the same objects for every app, so the figures are the layer's
cost (routing, parsing, validation, serialization) and not the database's, which is the same
whatever the layer. Then the same four requests through the real api on PostgreSQL
(bench/api_app.py), for the layer's share of a whole request. Each round runs every app's
requests in turn (the order rotating); the figure is the median over rounds of the CPU time
per request (``time.process_time``, not wall time: two cores shared by several jobs disturb
wall time far more than CPU time).
Every answer is checked before timing: same status, and the same JSON body up to the
datetime notation.

    .venv/bin/python -m bench.api_layers [--quick]        (make bench-api)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, jsonify, request
from flask.testing import FlaskClient

from bench import api_app
from bench.support import exit_cleanly_on_sigterm, median, table, write_result
from libs.campaigns.leads import InvalidLead, parse_lead
from libs.common.models import RunStatus
from services.api.account.schemas import Me
from services.api.calls.schemas import Call, CallFilter, CallPage
from services.api.leads.schemas import Lead, LeadInput
from services.api.runs.schemas import Run, RunPage, allowed_actions
from services.api.schemas import Paging

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STATUSES = ["queued", "dialing", "in_call", "completed", "failed", "canceled"]
LEAD_BODY = {"name": "Ada Lovelace", "phone": "(415) 555-0100",
             "timezone": "America/Los_Angeles", "email": "ada@example.com"}  # fmt: skip
#: (name, method, path, body): what each app is asked, every round.
REQUESTS = [
    ("GET /api/runs", "GET", "/api/runs?page=1&per_page=20", None),
    ("GET /api/calls", "GET", "/api/calls?run_id=7&status=completed&page=1&per_page=50", None),
    ("POST /api/leads", "POST", "/api/leads", LEAD_BODY),
    ("GET /api/me", "GET", "/api/me", None),
]


@dataclass
class RunRow:
    id: int
    name: str = "Spring campaign"
    status: RunStatus = RunStatus.RUNNING
    max_attempts: int = 2
    retry_delay_s: int = 600
    window_start: str = "09:00"
    window_end: str = "20:00"
    created_at: datetime = NOW
    started_at: datetime | None = NOW
    finished_at: datetime | None = None


@dataclass
class CallRow:
    id: int
    run_id: int | None = 7
    job_id: int | None = 70
    lead_id: int | None = 700
    attempt: int = 1
    direction: str = "outbound"
    to_number: str = "+14155550100"
    status: str = "completed"
    provider_call_sid: str | None = "CA" + "0" * 32
    answered_by: str | None = "human"
    duration_s: int | None = 42
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime = NOW
    ended_at: datetime | None = NOW + timedelta(seconds=42)


@dataclass
class LeadRow:
    id: int
    name: str
    phone_e164: str
    email: str | None
    timezone: str | None
    notes: str | None
    source: str = "api"
    callback_requested: bool = False
    last_call_status: str | None = None
    last_called_at: datetime | None = None
    created_at: datetime = NOW


RUNS = [RunRow(id=i) for i in range(20, 0, -1)]
PROGRESS = {"total": 500, "done": 120, "percent": 24.0, "active_calls": 3, "attempts": 131,
            "by_status": {s: 20 for s in STATUSES}, "eta_s": 812.5}  # fmt: skip
CALLS = [CallRow(id=i, error_code="busy" if i % 5 == 0 else None) for i in range(50, 0, -1)]
ME = {"role": "business", "token_id": 3,
      "business": {"id": 1, "name": "Acme", "timezone": "America/New_York",
                   "max_concurrent_calls": 3}}  # fmt: skip


def _saved_lead(phone: str, name: str | None, zone: str | None, email: str | None,
                notes: str | None) -> LeadRow:  # fmt: skip
    return LeadRow(id=1, name=name or "", phone_e164=phone, email=email, timezone=zone,
                   notes=notes)  # fmt: skip


# --- hand: the api before issue 23 -----------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _hand_int(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
        raise ValueError(name)
    return int(raw)


def hand_app() -> Flask:
    app = Flask("hand")

    @app.get("/api/runs")
    def runs() -> Any:
        page, per_page = _hand_int("page", 1, 1, 10**6), _hand_int("per_page", 50, 1, 100)
        items = [{"id": r.id, "name": r.name, "status": r.status.value,
                  "max_attempts": r.max_attempts, "retry_delay_s": r.retry_delay_s,
                  "window": {"start": r.window_start, "end": r.window_end},
                  "created_at": _iso(r.created_at), "started_at": _iso(r.started_at),
                  "finished_at": _iso(r.finished_at), "progress": PROGRESS,
                  "actions": allowed_actions(r.status)}
                 for r in RUNS]  # fmt: skip
        return jsonify({"items": items, "page": page, "per_page": per_page, "total": 20})

    @app.get("/api/calls")
    def calls() -> Any:
        page, per_page = _hand_int("page", 1, 1, 10**6), _hand_int("per_page", 50, 1, 200)
        _hand_int("run_id", None, 1, 2**62), _hand_int("lead_id", None, 1, 2**62)
        if request.args.get("status") not in (None, "", *STATUSES, "completed"):
            raise ValueError("status")
        items = [{"id": c.id, "run_id": c.run_id, "job_id": c.job_id, "lead_id": c.lead_id,
                  "attempt": c.attempt, "direction": c.direction, "to": c.to_number,
                  "status": c.status, "provider_call_sid": c.provider_call_sid,
                  "answered_by": c.answered_by, "duration_s": c.duration_s,
                  "error": {"code": c.error_code, "message": c.error_message or ""}
                  if c.error_code else None,
                  "created_at": _iso(c.created_at), "ended_at": _iso(c.ended_at)}
                 for c in CALLS]  # fmt: skip
        return jsonify({"items": items, "page": page, "per_page": per_page, "total": 50})

    @app.post("/api/leads")
    def leads() -> Any:
        try:
            data = parse_lead(request.get_json())
        except InvalidLead as exc:
            return jsonify({"error": {"code": "bad_request", "message": str(exc)}}), 400
        row = _saved_lead(data.phone_e164, data.name, data.timezone, data.email, data.notes)
        return jsonify({"id": row.id, "name": row.name, "phone": row.phone_e164,
                        "email": row.email, "timezone": row.timezone, "notes": row.notes,
                        "source": row.source, "callback_requested": row.callback_requested,
                        "last_call_status": row.last_call_status,
                        "last_called_at": _iso(row.last_called_at),
                        "created_at": _iso(row.created_at)}), 201  # fmt: skip

    @app.get("/api/me")
    def me() -> Any:
        return jsonify(ME)

    return app


def _run_page(paging: Paging) -> RunPage:
    items = [Run.of(r, PROGRESS) for r in RUNS]  # type: ignore[arg-type]
    return RunPage(items=items, page=paging.page, per_page=paging.per_page, total=20)


def _call_page(query: CallFilter) -> CallPage:
    items = [Call.model_validate(c) for c in CALLS]
    return CallPage(items=items, page=query.page, per_page=query.per_page, total=50)


def _lead(body: LeadInput) -> Lead:
    return Lead.model_validate(
        _saved_lead(body.phone, body.name, body.timezone, body.email, body.notes)
    )


# --- spectree ---------------------------------------------------------------------------------


def spectree_app(backend: Any = None) -> Flask:
    from spectree import Response, SpecTree

    app = Flask("spectree")
    spec = SpecTree("flask", backend=backend, annotations=True, validation_error_status=400)

    @app.get("/api/runs")
    @spec.validate(resp=Response(HTTP_200=RunPage))
    def runs(query: Paging) -> RunPage:
        return _run_page(query)

    @app.get("/api/calls")
    @spec.validate(resp=Response(HTTP_200=CallPage))
    def calls(query: CallFilter) -> CallPage:
        return _call_page(query)

    @app.post("/api/leads")
    @spec.validate(resp=Response(HTTP_201=Lead))
    def leads(json: LeadInput) -> tuple[Lead, int]:
        return _lead(json), 201

    @app.get("/api/me")
    @spec.validate(resp=Response(HTTP_200=Me))
    def me() -> Me:
        return Me.model_validate(ME)

    spec.register(app)
    return app


# --- flask-openapi3 ---------------------------------------------------------------------------


def openapi3_app() -> Flask:
    from flask_openapi3.openapi import OpenAPI

    app = OpenAPI("openapi3", validation_error_status=400)

    def out(model: Any, status: int = 200) -> Any:
        return app.response_class(model.model_dump_json(), status, mimetype="application/json")

    @app.get("/api/runs", responses={200: RunPage})
    def runs(query: Paging) -> Any:
        return out(_run_page(query))

    @app.get("/api/calls", responses={200: CallPage})
    def calls(query: CallFilter) -> Any:
        return out(_call_page(query))

    @app.post("/api/leads", responses={201: Lead})
    def leads(body: LeadInput) -> Any:
        return out(_lead(body), 201)

    @app.get("/api/me", responses={200: Me})
    def me() -> Any:
        return out(Me.model_validate(ME))

    return app


# --- flask-pydantic ---------------------------------------------------------------------------


def flask_pydantic_app() -> Flask:
    from flask_pydantic import validate

    app = Flask("flask_pydantic")

    # Its decorator reads raw annotations, which this module's future import makes strings:
    # the models go in as arguments, and come out on the request, as its README also shows.
    @app.get("/api/runs")
    @validate(query=Paging)
    def runs() -> RunPage:
        return _run_page(request.query_params)  # type: ignore[attr-defined]

    @app.get("/api/calls")
    @validate(query=CallFilter)
    def calls() -> CallPage:
        return _call_page(request.query_params)  # type: ignore[attr-defined]

    @app.post("/api/leads")
    @validate(body=LeadInput, on_success_status=201)
    def leads() -> Lead:
        return _lead(request.body_params)  # type: ignore[attr-defined]

    @app.get("/api/me")
    @validate()
    def me() -> Me:
        return Me.model_validate(ME)

    return app


def spectree_api_app() -> Flask:
    """spectree with the api's plugin (services/api/spec.py: headers and cookies read only
    when a route has a model for them)."""
    from services.api.spec import FlaskPlugin

    return spectree_app(FlaskPlugin)


CANDIDATES: dict[str, Callable[[], Flask]] = {
    "hand": hand_app,
    "spectree": spectree_app,
    "spectree (api's plugin)": spectree_api_app,
    "flask-openapi3": openapi3_app,
    "flask-pydantic": flask_pydantic_app,
}


#: What services/api uses.
CHOSEN = "spectree (api's plugin)"


def _send(client: FlaskClient, method: str, path: str, body: Any) -> Any:
    return client.open(path, method=method, json=body)


def _normalised(data: Any) -> Any:
    """Datetimes as instants: pydantic writes UTC as Z, isoformat() as +00:00."""
    return json.loads(json.dumps(data).replace("+00:00", "Z"))


def check_same_answers(clients: dict[str, FlaskClient]) -> None:
    for name, method, path, body in REQUESTS:
        answers = {}
        for candidate, client in clients.items():
            response = _send(client, method, path, body)
            answers[candidate] = (response.status_code, _normalised(response.get_json()))
        reference = answers["hand"]
        for candidate, answer in answers.items():
            assert answer == reference, f"{name}: {candidate} {str(answer)[:300]} != {reference}"


def cpu_per_request(client: FlaskClient, method: str, path: str, body: Any, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        _send(client, method, path, body)
    return (time.process_time() - start) / n


#: What `make bench-api` runs (the report's reproduce line).
COMMAND = "make bench-api"


def markdown(result: dict[str, Any]) -> str:
    """docs/benchmarks.md's section: CPU per request by candidate, and the whole request."""
    figures: dict[str, dict[str, float]] = result["cpu_us_per_request"]
    clients: list[str] = result["candidates"]
    rows = [
        [name, *(f"{by[c]:,.0f} µs ({by[c] / by['hand']:.2f}x)" for c in clients)]
        for name, by in figures.items()
    ]
    whole = result["app_cpu_us_per_request"]
    shares = [
        (figures[name][CHOSEN] - figures[name]["hand"]) / us * 100 for name, us in whole.items()
    ]
    requests = ", ".join(f"`{name}` {us:,.0f} µs" for name, us in whole.items())
    return f"""## API schema layer

`{result["command"]}` (= `.venv/bin/python -m bench.api_layers`): the api's four
hot endpoints served by one small Flask app per candidate, in one process, with the api's own
pydantic models and the same rows from memory; every app's answers are checked to be the same
before anything is timed. The figure is CPU time per request, the median of
{result["rounds"]} rounds of {result["requests_per_round"]} requests per endpoint and app, the
order rotating; in brackets, the ratio to `hand` (the hand-written validation and serializers
the api had before: the floor, with no schema and no document). The api uses {CHOSEN}; why,
with the profiles, is in [docs/api.md](api.md).

{table(["endpoint", *clients], rows, "l" + "r" * len(clients))}

The whole request through the real api on PostgreSQL (same run): {requests} of CPU, so the
chosen layer's difference from the hand-written floor is between {min(shares):+.1f} % and
{max(shares):+.1f} % of a request.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=400, help="per endpoint, app and round")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 100 requests")
    args = parser.parse_args()
    exit_cleanly_on_sigterm()
    rounds, n = (2, 100) if args.quick else (args.rounds, args.requests)
    clients = {name: build().test_client() for name, build in CANDIDATES.items()}
    check_same_answers(clients)
    samples: dict[str, dict[str, list[float]]] = {
        name: {c: [] for c in clients} for name, *_ in REQUESTS
    }
    for round_ in range(rounds):
        order = list(clients)[round_ % len(clients) :] + list(clients)[: round_ % len(clients)]
        for candidate in order:
            for name, method, path, body in REQUESTS:
                cpu_per_request(clients[candidate], method, path, body, n // 10)  # warm
                samples[name][candidate].append(
                    cpu_per_request(clients[candidate], method, path, body, n)
                )
    figures = {
        name: {c: round(median(values) * 1e6, 1) for c, values in by_candidate.items()}
        for name, by_candidate in samples.items()
    }
    rows = [
        [
            name,
            *(
                f"{figures[name][c]:.0f} µs ({figures[name][c] / figures[name]['hand']:.2f}x)"
                for c in clients
            ),
        ]
        for name in figures
    ]
    print(f"CPU per request, median of {rounds} rounds x {n} requests (ratio to hand):")
    print(table(["endpoint", *clients], rows))
    app = api_app.measure(rounds, max(50, n // 2))
    print("\nThe whole request in the real api (PostgreSQL; services/api with spectree):")
    print(table(["endpoint", "CPU per request", f"{CHOSEN} over hand, share"], [
        [name, f"{us:.0f} µs",
         f"{(figures[name][CHOSEN] - figures[name]['hand']) / us * 100:+.1f} %"]
        for name, us in app.items()
    ]))  # fmt: skip
    written = write_result(
        "api_layers",
        {
            "command": COMMAND,
            "rounds": rounds,
            "requests_per_round": n,
            "candidates": list(clients),
            "cpu_us_per_request": figures,
            "app_cpu_us_per_request": app,
        },
    )
    print(f"wrote {written}")


if __name__ == "__main__":
    main()
