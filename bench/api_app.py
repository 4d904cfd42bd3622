"""CPU per request of the real api (``services.api.app.create_app``) on its hot endpoints, on a
temporary PostgreSQL database: the whole request as gunicorn would run it — authentication,
queries, validation, serialization — without the network.

Only the app is imported, so the same file measures any commit of it: docs/api.md compares
the api before issue 23 (hand validation and serializers) with the schema-first one this way.

    .venv/bin/python -m bench.api_app [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

import redis
from flask.testing import FlaskClient

from bench.support import BENCH_REDIS_URL, median
from libs.common import migrate, repositories
from libs.common.db import Database
from libs.common.models import Call, CallJob, CallJobStatus, Lead, Run, RunStatus, TokenRole, utcnow
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from tests.support.services import temporary_postgres_database

#: (name, method, path): the four the SPA calls most (the runs page polls every second).
REQUESTS = [
    ("GET /api/runs", "GET", "/api/runs?page=1&per_page=20"),
    ("GET /api/calls", "GET", "/api/calls?run_id={run_id}&status=completed&page=1&per_page=50"),
    ("POST /api/leads", "POST", "/api/leads"),
    ("GET /api/me", "GET", "/api/me"),
]
_phones = count(1000)


def _seed(db: Database) -> tuple[str, int]:
    """A business with 20 runs of 25 jobs each, and 50 completed calls on one of them."""
    with db.session() as session:
        business = repositories.create_business(session, "Bench", "UTC", 3)
        _, token = repositories.create_token(session, TokenRole.BUSINESS, business.id)
        leads = [Lead(business_id=business.id, name=f"Lead {i}", phone_e164=f"+1212555{i:04d}")
                 for i in range(25)]  # fmt: skip
        session.add_all(leads)
        session.flush()
        runs = []
        for r in range(20):
            run = Run(business_id=business.id, name=f"Run {r}", status=RunStatus.RUNNING,
                      started_at=utcnow())  # fmt: skip
            session.add(run)
            session.flush()
            runs.append(run)
            statuses = list(CallJobStatus)
            session.add_all(
                CallJob(run_id=run.id, business_id=business.id, lead_id=lead.id,
                        phone_e164=lead.phone_e164, timezone="UTC",
                        status=statuses[i % len(statuses)], attempt=1)
                for i, lead in enumerate(leads)
            )  # fmt: skip
        session.add_all(
            Call(business_id=business.id, run_id=runs[0].id, lead_id=leads[i % 25].id,
                 attempt=1 + i // 25, direction="outbound", to_number=leads[i % 25].phone_e164,
                 status="completed", provider_call_sid=f"CA{i:032d}", duration_s=30)
            for i in range(50)
        )  # fmt: skip
        session.commit()
        return token, runs[0].id


@contextmanager
def api_client() -> Iterator[tuple[FlaskClient, dict[str, str], int]]:
    from services.api.app import create_app

    redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
    with temporary_postgres_database() as url, tempfile.TemporaryDirectory() as var:
        migrate.upgrade(url)
        db = Database(url)
        token, run_id = _seed(db)
        settings = Settings(app_env="test", service_role="api", database_url=url,
                            redis_url=BENCH_REDIS_URL, var_dir=Path(var),
                            metrics_dir=Path(var) / "metrics")  # fmt: skip
        app = create_app(settings, broker=build_broker(settings, worker=False))
        try:
            yield app.test_client(), {"Authorization": f"Bearer {token}"}, run_id
        finally:
            db.dispose()


def _send(client: FlaskClient, headers: dict[str, str], method: str, path: str) -> Any:
    body = None
    if method == "POST":
        body = {"name": "Ada", "phone": f"+1415555{next(_phones):04d}", "timezone": "UTC"}
    response = client.open(path, method=method, json=body, headers=headers)
    assert response.status_code in (200, 201), (path, response.status_code, response.get_json())
    return response


def measure(rounds: int, n: int) -> dict[str, float]:
    """Median over rounds of the CPU µs per request, per endpoint."""
    samples: dict[str, list[float]] = {name: [] for name, *_ in REQUESTS}
    with api_client() as (client, headers, run_id):
        for _ in range(rounds):
            for name, method, path in REQUESTS:
                path = path.format(run_id=run_id)
                for _ in range(n // 10):
                    _send(client, headers, method, path)  # warm
                start = time.process_time()
                for _ in range(n):
                    _send(client, headers, method, path)
                samples[name].append((time.process_time() - start) / n)
    return {name: round(median(values) * 1e6, 1) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, n = (2, 50) if args.quick else (args.rounds, args.requests)
    for name, value in measure(rounds, n).items():
        print(f"{name}: {value:.0f} µs CPU per request")


if __name__ == "__main__":
    main()
