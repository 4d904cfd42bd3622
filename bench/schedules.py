"""Schedule tick benchmark: the due check on 100,000 and 1,000,000 schedules, 1,000 due.

The tick reads the ``next_due_at`` index from its start and stops at "now", so its cost should
follow the due schedules, not the table. Side by side, the baseline a tick without that index
would be: reading every enabled schedule to find the due ones. Runs on PostgreSQL; messages go
to an in-memory broker so the figures are the database's part of the tick.

    .venv/bin/python -m bench.schedules [--sizes 100000,1000000 --due 1000 --trials 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select, text

from bench.support import table, write_result
from libs.common import migrate
from libs.common.db import Database
from libs.common.models import Business, Schedule, utcnow
from services.worker.schedules.due import process_due
from tests.support.services import temporary_postgres_database

COMMAND = "make bench-schedules"

_LEADS = """
INSERT INTO leads (business_id, name, phone_e164, source, callback_requested)
SELECT :business, 'Lead ' || g, '+1' || (2000000000 + g)::text, 'api', false
FROM generate_series(1, :total) AS g
"""
# The first ``due`` leads' schedules are due 30 s ago; the rest spread over the day after the
# next hour (populating a million rows and the trials take minutes on a slow machine: none of
# them may fall due meanwhile).
_SCHEDULES = """
INSERT INTO schedules (business_id, lead_id, enabled, local_time, timezone, days_mask,
                       next_due_at)
SELECT :business, l.id, true, '09:00', 'UTC', 127,
       CASE WHEN l.id < :first + :due THEN CAST(:now AS timestamptz) - interval '30 seconds'
            ELSE CAST(:now AS timestamptz) + interval '1 hour' + random() * interval '1 day'
       END
FROM leads AS l
"""


def populate(db: Database, total: int, due: int) -> dict[str, Any]:
    started = time.perf_counter()
    with db.session() as session:
        business = Business(name="Bench", timezone="UTC", max_concurrent_calls=3)
        session.add(business)
        session.commit()
        business_id = business.id
    now = utcnow()
    with db.engine.begin() as conn:
        conn.execute(text(_LEADS), {"business": business_id, "total": total})
        first = conn.execute(text("SELECT min(id) FROM leads")).scalar_one()
        conn.execute(
            text(_SCHEDULES), {"business": business_id, "first": first, "due": due, "now": now}
        )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE leads"))
        conn.execute(text("VACUUM ANALYZE schedules"))
    with db.session() as session:
        due_ids = list(
            session.scalars(
                select(Schedule.id).where(Schedule.next_due_at <= now).order_by(Schedule.id)
            )
        )
    assert len(due_ids) == due, (len(due_ids), due)
    return {"due_ids": due_ids, "populate_s": time.perf_counter() - started}


def reset_due(db: Database, due_ids: list[int]) -> None:
    """Make the same schedules due again and forget their occurrences, for the next trial."""
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM schedule_occurrences"))
        conn.execute(
            text("UPDATE schedules SET next_due_at = now() - interval '30 seconds' "
                 "WHERE id = ANY(:ids)"),
            {"ids": due_ids},
        )  # fmt: skip


def time_tick(db: Database, due: int) -> float:
    broker = StubBroker()
    broker.declare_queue("high")
    started = time.perf_counter()
    result = process_due(db, broker, utcnow(), grace_s=3600)
    elapsed = time.perf_counter() - started
    assert result.queued == due and broker.queues["high"].qsize() == due, result
    return elapsed


def time_full_scan(db: Database, due: int) -> float:
    """The baseline: read every enabled schedule and keep the due ones."""
    started = time.perf_counter()
    now = utcnow()
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, next_due_at FROM schedules WHERE enabled")).all()
    found = sum(1 for _, next_due in rows if next_due is not None and next_due <= now)
    elapsed = time.perf_counter() - started
    assert found == due, found
    return elapsed


def due_query_plan(db: Database) -> str:
    with db.engine.connect() as conn:
        plan = conn.execute(
            text("EXPLAIN SELECT * FROM schedules WHERE next_due_at <= now() "
                 "ORDER BY next_due_at LIMIT 500 FOR UPDATE SKIP LOCKED")
        ).scalars().all()  # fmt: skip
    return " / ".join(line.strip() for line in plan if "Scan" in line)


def bench_size(total: int, due: int, trials: int) -> dict[str, Any]:
    with temporary_postgres_database() as url:
        migrate.upgrade(url)
        db = Database(url)
        try:
            populated = populate(db, total, due)
            ticks, scans = [], []
            for _ in range(trials):
                reset_due(db, populated["due_ids"])
                ticks.append(time_tick(db, due))
                scans.append(time_full_scan(db, 0))
            return {
                "schedules": total,
                "due": due,
                "populate_s": round(populated["populate_s"], 1),
                "tick_ms_median": round(statistics.median(ticks) * 1000, 1),
                "tick_ms_all": [round(t * 1000, 1) for t in ticks],
                "full_scan_ms_median": round(statistics.median(scans) * 1000, 1),
                "plan": due_query_plan(db),
            }
        finally:
            db.dispose()


def markdown(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md section, figures from ``result`` (bench/results/schedules.json)."""
    rows, base = result["results"], result["results"][0]
    due, trials = base["due"], len(base["tick_ms_all"])
    body = [
        [f"{r['schedules']:,}", f"{r['due']:,}", f"{r['tick_ms_median']} ms",
         f"**{r['tick_ms_median'] / base['tick_ms_median']:.2f}**" if r is not base else "1.00",
         f"{r['full_scan_ms_median']} ms",
         f"{r['full_scan_ms_median'] / base['full_scan_ms_median']:.2f}"]
        for r in rows
    ]  # fmt: skip
    largest = rows[-1]
    plan = largest["plan"].split(" / ")[-1].removeprefix("->").split("(")[0].strip()
    sizes = " and ".join(f"{r['schedules']:,}" for r in rows)
    return f"""## Schedule tick

`{result["command"]}` (= `.venv/bin/python -m bench.schedules`): the due check
(`services/worker/schedules/due.py`, what `schedules.tick` runs) on PostgreSQL with {sizes}
schedules, {due:,} of them due; median of {trials} ticks, each after making the same {due:,} due
again. Messages go to an in-memory broker, so the figures are the database's and Python's part
of the tick (computing {due:,} next firings, inserting {due:,} occurrences, moving {due:,}
`next_due_at`). The baseline beside it is what a tick without the index would do: read every
enabled schedule to find the due ones. Results: `bench/results/schedules.json`.

{table(["schedules", "due", "tick (median)", "vs first", "full-scan baseline", "vs first"],
       body, "rrrrrr")}

The due query's plan at {largest["schedules"]:,}: `{plan}`. The tick costs about
{largest["tick_ms_median"] / due:.2f} ms per due schedule whatever the table size; the scan grows
with it.
"""  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated table sizes")
    parser.add_argument("--due", type=int, default=1000, help="schedules due at the tick")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes must be integers separated by commas, e.g. 100000,1000000")
    if any(size < args.due for size in sizes) or args.due < 1 or args.trials < 1:
        parser.error("every size must be at least --due, and --due and --trials at least 1")
    results = []
    for size in sizes:
        print(f"populating {size:,} schedules ({args.due:,} due)...", flush=True)
        results.append(bench_size(size, args.due, args.trials))
    base = results[0]
    print(f"\nschedule tick, {args.due:,} due, median of {args.trials} ({COMMAND})")
    print(f"{'schedules':>12} {'tick ms':>9} {'x base':>7} {'full scan ms':>13} {'x base':>7}")
    for r in results:
        print(
            f"{r['schedules']:>12,} {r['tick_ms_median']:>9.1f} "
            f"{r['tick_ms_median'] / base['tick_ms_median']:>7.2f} "
            f"{r['full_scan_ms_median']:>13.1f} "
            f"{r['full_scan_ms_median'] / base['full_scan_ms_median']:>7.2f}"
        )
    print(f"due query plan: {results[-1]['plan']}")
    write_result("schedules", {"command": COMMAND, "results": results})


if __name__ == "__main__":
    main()
