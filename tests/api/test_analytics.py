"""Run analytics from rows: attempts, answers by who answered, rates, talk time, dispositions
and the provider's price, per run and per UTC day; a business sees only its own calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from libs.common.db import Database
from libs.common.models import Call, Run, RunStatus, utcnow
from tests.conftest import Tenant


def make_run(db: Database, business_id: int) -> int:
    with db.session() as session:
        run = Run(business_id=business_id, name="stats", status=RunStatus.COMPLETED)
        session.add(run)
        session.commit()
        return run.id


def add_calls(db: Database, business_id: int, run_id: int | None,
              calls: list[dict[str, Any]]) -> None:  # fmt: skip
    with db.session() as session:
        for fields in calls:
            session.add(Call(business_id=business_id, run_id=run_id, direction="outbound",
                             to_number="+14155550100", **fields))  # fmt: skip
        session.commit()


YESTERDAY = datetime.now(UTC) - timedelta(days=1)
CALLS = [
    {"status": "completed", "answered_by": "human", "duration_s": 65, "price_micros": 28_000,
     "disposition": "interested", "price_unit": "USD"},
    {"status": "completed", "answered_by": None, "duration_s": 5, "price_micros": 14_000},
    {"status": "completed", "answered_by": "machine_end_beep", "duration_s": 20,
     "disposition": "voicemail"},
    {"status": "completed", "answered_by": "machine_start", "duration_s": 3,
     "price_micros": 14_000, "created_at": YESTERDAY},
    {"status": "completed", "answered_by": "fax", "duration_s": 2},
    {"status": "busy", "disposition": "voicemail"},
    {"status": "no-answer", "created_at": YESTERDAY},
    {"status": "failed", "error_code": "31005"},
]  # fmt: skip


def test_a_run_s_figures(client: FlaskClient, db: Database, tenant_a: Tenant) -> None:
    run_id = make_run(db, tenant_a.business_id)
    add_calls(db, tenant_a.business_id, run_id, CALLS)
    add_calls(db, tenant_a.business_id, make_run(db, tenant_a.business_id),
              [{"status": "completed", "duration_s": 999}])  # another run: not counted  # fmt: skip
    answer = client.get(f"/api/runs/{run_id}/analytics", headers=tenant_a.headers)
    assert answer.status_code == 200, answer.json
    totals = answer.json["totals"]
    assert {k: totals[k] for k in ("attempts", "answered", "humans", "machines", "fax")} == {
        "attempts": 8, "answered": 5, "humans": 2, "machines": 2, "fax": 1}  # fmt: skip
    assert totals["answer_rate"] == 0.625 and totals["machine_rate"] == 0.4
    assert totals["talk_time_s"] == 65 + 5 + 20 + 3 + 2
    assert totals["cost_estimate"] == 0.056 and totals["priced_calls"] == 3
    assert totals["by_status"] == {"busy": 1, "completed": 5, "failed": 1, "no-answer": 1}
    assert totals["dispositions"] == {"interested": 1, "voicemail": 2}
    assert answer.json["currency"] == "USD"
    days = answer.json["days"]
    assert [d["date"] for d in days] == [YESTERDAY.date().isoformat(), utcnow().date().isoformat()]
    assert [d["attempts"] for d in days] == [2, 6]
    assert days[0]["machines"] == 1 and days[0]["answer_rate"] == 0.5


def test_an_empty_run_and_another_business(
    client: FlaskClient, db: Database, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    run_id = make_run(db, tenant_a.business_id)
    empty = client.get(f"/api/runs/{run_id}/analytics", headers=tenant_a.headers).json
    assert empty["totals"]["attempts"] == 0 and empty["totals"]["answer_rate"] is None
    assert empty["days"] == []
    add_calls(db, tenant_a.business_id, run_id, CALLS)
    assert client.get(f"/api/runs/{run_id}/analytics", headers=tenant_b.headers).status_code == 404
    theirs = client.get("/api/analytics/daily", headers=tenant_b.headers).json
    assert theirs["totals"]["attempts"] == 0


def test_daily_across_runs(client: FlaskClient, db: Database, tenant_a: Tenant) -> None:
    add_calls(db, tenant_a.business_id, make_run(db, tenant_a.business_id), CALLS)
    old = {"status": "completed", "duration_s": 1, "created_at": utcnow() - timedelta(days=40)}
    add_calls(db, tenant_a.business_id, None, [old])
    daily = client.get("/api/analytics/daily?days=7", headers=tenant_a.headers).json
    assert daily["totals"]["attempts"] == 8  # the call 40 days ago is outside the window
    one = client.get("/api/analytics/daily?days=1", headers=tenant_a.headers).json
    assert one["totals"]["attempts"] == 6
