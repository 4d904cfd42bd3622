"""Where coordination state belongs: Redis, or PostgreSQL with advisory locks? Measured.

The coordination state is small and hot: the scheduler's leader lock (renewed every few
seconds, checked on every emission), the account-wide calls-per-second limiter (taken before
every call is claimed, by every worker thread at once), once-only markers and nonces, worker
heartbeats, per-minute queue statistics. This measures the two operations that set the cost,
each done Switchboard's way in Redis (``libs/queueops/leader.py``, ``telephony/rate_limit.py``)
and the PostgreSQL way (an advisory lock on a pinned session; a GCRA row updated in a
transaction), from 1 and from 8 threads, with client CPU per operation.

    .venv/bin/python -m bench.coordination     (make bench-coordination)
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis

from bench.support import BENCH_REDIS_URL, table, write_result
from libs.queueops.leader import LeaderLock
from libs.telephony.rate_limit import CallRateLimiter
from tests.support.services import temporary_postgres_database

NAME = "coordination"
OPERATIONS = 2_000
THREADS = (1, 8)

PG_GCRA = """
INSERT INTO gcra (key, tat) VALUES (%(key)s, clock_timestamp())
ON CONFLICT (key) DO UPDATE
  SET tat = greatest(gcra.tat, clock_timestamp()) + %(interval)s * interval '1 microsecond'
RETURNING extract(epoch from (tat - clock_timestamp()))
"""


def _timed(op: Callable[[], object], threads: int, count: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = count // threads

    def work() -> None:
        mine = []
        for _ in range(per_thread):
            started = time.perf_counter()
            op()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    cpu, wall = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    latencies.sort()
    return {
        "ops_per_s": round(len(latencies) / wall),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
        "client_cpu_ms_per_op": round(cpu * 1000 / len(latencies), 3),
    }


def run() -> dict[str, Any]:
    client = redis.Redis.from_url(BENCH_REDIS_URL)
    client.flushdb()
    results: dict[str, Any] = {}
    with temporary_postgres_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE gcra (key text PRIMARY KEY, tat timestamptz NOT NULL)")
        local = threading.local()

        def pg() -> psycopg.Connection[Any]:
            if getattr(local, "conn", None) is None:
                local.conn = psycopg.connect(url, autocommit=True)
            return local.conn  # type: ignore[no-any-return]

        lock = LeaderLock(client, "bench:leader", ttl_s=10)
        limiter = CallRateLimiter(client, cps=1_000_000, key="bench:cps")
        ops: dict[str, Callable[[], object]] = {
            "leader lock renew, Redis (SET NX / Lua compare-and-expire)": lock.acquire,
            "leader lock, PostgreSQL (pg_try_advisory_lock on the session)": lambda: (
                pg().execute("SELECT pg_try_advisory_lock(42)").fetchone()
            ),
            "CPS limiter take, Redis (GCRA in Lua)": limiter.try_acquire,
            "CPS limiter take, PostgreSQL (GCRA row, INSERT … ON CONFLICT UPDATE)": lambda: (
                pg().execute(PG_GCRA, {"key": "cps", "interval": 1}).fetchone()
            ),
        }
        for name, op in ops.items():
            for threads in THREADS:
                op()  # connect first
                figures = _timed(op, threads, OPERATIONS)
                results[f"{name} x{threads}"] = figures
                print(f"{name:<72} {threads} thread(s): {json.dumps(figures)}", flush=True)
    client.flushdb()
    return {"benchmark": NAME, "command": "make bench-coordination", "operations": OPERATIONS,
            "results": results, "cores": os.cpu_count()}  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    """docs/benchmarks.md's section: each operation, Redis against PostgreSQL, by threads."""
    rows = [
        [name.rsplit(" x", 1)[0], name.rsplit(" x", 1)[1], f"{r['ops_per_s']:,}",
         f"{r['p50_ms']:.2f} ms", f"{r['p99_ms']:.2f} ms", f"{r['client_cpu_ms_per_op']:.3f} ms"]
        for name, r in result["results"].items()
    ]  # fmt: skip
    header = ["operation", "threads", "operations/s", "p50", "p99", "client CPU per operation"]
    return f"""## Coordination state

`{result["command"]}` (= `.venv/bin/python -m bench.coordination`, not in `make bench`): the
two operations that set what coordination state costs, {result["operations"]:,} times each from
1 and from 8 threads, done Switchboard's way in Redis (`libs/queueops/leader.py`,
`libs/telephony/rate_limit.py`) and the PostgreSQL way (an advisory lock on a pinned
session; a GCRA row updated in a transaction). Why coordination stays in Redis:
[docs/deploy.md](deploy.md).

{table(header, rows, "lrrrrr")}
"""


if __name__ == "__main__":
    write_result(NAME, run())
