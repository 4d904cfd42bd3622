"""Dialer benchmark: 50 businesses x 3 slots x 20 leads, simulated 1-s calls.

Runs the real stack (api, calls, 2 workers, scheduler, Twilio simulator) on PostgreSQL and
Redis, and reports:
- slot utilization: ideal makespan / actual makespan (the ideal is the baseline: every slot
  busy all the time, calls back to back);
- dispatch gap p50/p99: a call's end at the provider to the next call created in that slot;
- peak provider-side concurrency per business (must be <= 3);
- CPU milliseconds per call, summed over every process of the stack.

    .venv/bin/python -m bench.dialer [--businesses 50 --slots 3 --leads 20 --call-s 1]
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
from sqlalchemy import func, select

from bench.support import table, write_result
from libs.common import migrate
from libs.common.db import Database
from libs.common.models import CallJob, Run, RunStatus
from tests.conftest import empty_database
from tests.support.services import (
    POSTGRES_ADMIN_URL,
    REDIS_TEST_URL,
    temporary_postgres_database,
)
from tests.support.stack import Stack, campaign_stack, make_business
from tests.support.twilio_sim import peak_concurrency

COMMAND = "make bench-dialer"


def stack_cpu_seconds(stack: Stack) -> dict[str, float]:
    """User+system CPU of every process of the stack, children included, by service."""
    roots = {**stack.services, **{f"worker{i}": p for i, p in enumerate(stack.workers)}}
    out = {}
    for name, popen in roots.items():
        total = 0.0
        try:
            root = psutil.Process(popen.pid)
            for process in [root, *root.children(recursive=True)]:
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
        out[name] = total
    return out


def _wait_in_database(db: Database, run_ids: list[int], timeout_s: float) -> None:
    """One query a second: polling 50 runs through the API would load the stack it measures."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with db.session() as session:
            open_runs = session.scalar(
                select(func.count())
                .select_from(Run)
                .where(
                    Run.id.in_(run_ids),
                    Run.status.not_in([RunStatus.COMPLETED, RunStatus.CANCELED]),
                )
            )
        if not open_runs:
            return
        time.sleep(1.0)
    raise TimeoutError(f"runs not finished after {timeout_s} s")


def dispatch_gaps(calls: list[dict[str, Any]], slots: int) -> list[float]:
    """For each call after the first ``slots``: created_at minus the end of the call whose slot
    it took (the earliest-ending slot still held)."""
    ordered = sorted(calls, key=lambda c: c["created_at"])
    ends = [c["ended_at"] for c in ordered[:slots]]
    heapq.heapify(ends)
    gaps = []
    for call in ordered[slots:]:
        freed = heapq.heappop(ends)
        gaps.append(max(0.0, call["created_at"] - freed))
        heapq.heappush(ends, call["ended_at"])
    return gaps


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    with (
        temporary_postgres_database() as database_url,
        tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp,
    ):
        migrate.upgrade(database_url)
        db = Database(database_url)
        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
        with campaign_stack(
            database_url, REDIS_TEST_URL, Path(tmp), workers=2, cps=args.cps
        ) as stack:
            talk = max(args.call_s - args.ring_s, 0.05)
            stack.sim.scenario(default={"ring_s": args.ring_s, "talk_s": talk})
            businesses = [
                make_business(db, f"Bench {b}", limit=args.slots) for b in range(args.businesses)
            ]
            runs = []
            for b, business in enumerate(businesses):
                leads = [
                    {"phone": f"+1415{555 + b // 10:03d}{b % 10}{i:03d}"} for i in range(args.leads)
                ]
                requests.post(f"{stack.api}/api/leads/bulk", json={"leads": leads},
                              headers=business.headers, timeout=30).raise_for_status()  # fmt: skip
                run_id = requests.post(
                    f"{stack.api}/api/runs",
                    json={"name": "bench", "filter": {},
                          "window": {"start": "00:00", "end": "23:59"}},
                    headers=business.headers, timeout=30,
                ).json()["id"]  # fmt: skip
                runs.append((business, run_id))
            cpu_before = stack_cpu_seconds(stack)
            started = time.time()
            for business, run_id in runs:
                requests.post(f"{stack.api}/api/runs/{run_id}/start", headers=business.headers,
                              timeout=30).raise_for_status()  # fmt: skip
            _wait_in_database(db, [run_id for _, run_id in runs], timeout_s=600)
            finished = time.time()
            cpu_after = stack_cpu_seconds(stack)
            ledger = stack.sim.ledger()["calls"]
            with db.session() as session:
                owner = {str(j.id): j.business_id for j in session.scalars(select(CallJob))}
            per_business: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for call in ledger:
                per_business[owner[call["job"]]].append(call)
        empty_database(db)
        db.dispose()
    calls = len(ledger)
    rounds = math.ceil(args.leads / args.slots)
    ideal = max(rounds * args.call_s, calls / args.cps)
    actual = max(c["ended_at"] for c in ledger) - started
    gaps = [g for group in per_business.values() for g in dispatch_gaps(group, args.slots)]
    peaks = [peak_concurrency(group) for group in per_business.values()]
    return {
        "benchmark": "dialer",
        "command": COMMAND,
        "config": vars(args),
        "calls": calls,
        "ideal_makespan_s": round(ideal, 2),
        "actual_makespan_s": round(actual, 2),
        "runs_completed_after_s": round(finished - started, 2),
        "slot_utilization": round(ideal / actual, 3),
        "dispatch_gap_p50_ms": round(percentile(gaps, 0.50) * 1000, 1),
        "dispatch_gap_p99_ms": round(percentile(gaps, 0.99) * 1000, 1),
        "dispatch_gap_mean_ms": round(statistics.fmean(gaps) * 1000, 1) if gaps else None,
        "peak_concurrency_per_business_max": max(peaks),
        "peak_concurrency_per_business_min": min(peaks),
        "cpu_ms_per_call": round(
            sum(cpu_after[k] - cpu_before[k] for k in cpu_after) * 1000 / max(calls, 1), 2
        ),
        "cpu_ms_per_call_by_process": {
            k: round((cpu_after[k] - cpu_before[k]) * 1000 / max(calls, 1), 2) for k in cpu_after
        },
        "duplicate_attempts": calls - len({(c["job"], c["attempt"]) for c in ledger}),
        "cores": os.cpu_count(),
    }


def markdown(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md section, figures from ``result`` (bench/results/dialer.json)."""
    c, cpu = result["config"], result["cpu_ms_per_call_by_process"]
    talk = max(c["call_s"] - c["ring_s"], 0.05)
    rounds = math.ceil(c["leads"] / c["slots"])
    workers = sum(v for k, v in cpu.items() if k.startswith("worker"))
    needed = result["calls"] / result["ideal_makespan_s"]
    saturates = (result.get("cores") or 2) * 1000 / result["cpu_ms_per_call"]
    row = [
        f"{c['businesses']} businesses x {c['slots']} slots x {c['leads']} leads "
        f"(`{result['command']}`)",
        result["calls"], f"{result['ideal_makespan_s']} s", f"{result['actual_makespan_s']} s",
        f"**{result['slot_utilization']:.2f}**",
        f"{result['dispatch_gap_p50_ms']:.0f} ms / {result['dispatch_gap_p99_ms']:.0f} ms",
        f"{result['peak_concurrency_per_business_max']} (max), "
        f"{result['peak_concurrency_per_business_min']} (min)",
        f"{result['cpu_ms_per_call']} ms", result["duplicate_attempts"],
    ]  # fmt: skip
    # Measured once while building the dialer; make bench runs the 50-business case only.
    small = ["10 businesses x 3 slots x 20 leads (`python -m bench.dialer --businesses 10`, "
             "measured once, not rerun by `make bench`)", 200, "7.0 s", "8.8 s", "**0.79**",
             "101 ms / 296 ms", "3 (max), 3 (min)", "56.0 ms", 0]  # fmt: skip
    header = ["configuration", "calls", "ideal makespan", "actual",
              "slot utilization (ideal/actual)", "dispatch gap p50 / p99",
              "peak concurrency per business", "CPU per call (all processes)",
              "duplicate creates"]  # fmt: skip
    history = table(
        ["change", "slot utilization", "dispatch gap p50"],
        [["first run (Dramatiq's default 1 s idle poll; benchmark polling 50 runs through the "
          "API)", "0.12", "7488 ms"],
         ["worker idle poll 100 ms (`WORKER_POLL_MS`), benchmark polls the database once a "
          "second, lead written only on the final status", "0.20", "3847 ms"],
         ["no `initiated` callback (ringing attaches the call id), event marked applied without "
          "a reload", "0.23", "3284 ms"]],
    )  # fmt: skip
    return f"""## Dialer

`{result["command"]}` (= `.venv/bin/python -m bench.dialer`): the real stack (api, calls, two
worker processes with 4 threads each, scheduler, Twilio simulator) on PostgreSQL and Redis. Every
business has {c["slots"]} slots and {c["leads"]} leads; each simulated call rings {c["ring_s"]:g} s
and talks {talk:g} s; the account CPS limit is {c["cps"]:g} so the slots, not CPS, are the
constraint. The baseline is the **ideal makespan**: every slot busy all the time, calls back to
back (`ceil({c["leads"]}/{c["slots"]}) x {c["call_s"]:g} s = {rounds * c["call_s"]:g} s`).
Results are written to `bench/results/dialer.json`.

{table(header, [row, small])}

CPU per call by process at {c["businesses"]} businesses: calls service {cpu["calls"]} ms (3
status callbacks per call), workers {workers:.1f} ms (dispatch, claim, provider request, storing
the call id), simulator {cpu["simulator"]} ms, api {cpu["api"]} ms.

**Reading them.** At 10 businesses (30 concurrent calls) the slots stay busy: a freed slot is
refilled in about 100 ms. At {c["businesses"]} businesses ({c["businesses"] * c["slots"]}
concurrent calls, ~{needed:.0f} calls/s needed to reach the ideal) the whole stack, PostgreSQL
and the simulator share the machine's cores: at {result["cpu_ms_per_call"]} ms of CPU per call
they saturate around {saturates:.0f} calls/s, so callbacks queue in front of the calls service
and the gap grows to seconds. The limit is CPU on this machine, not a dispatch stall: the `high`
queue stays empty while callbacks wait (sampled while building it). Correctness holds at both
scales: never more than {c["slots"]} concurrent calls per business and no job attempt created
twice.

What changed the figures while building it (same command, 50 businesses, measured then):

{history}
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dialer", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--businesses", type=int, default=50)
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--leads", type=int, default=20)
    parser.add_argument("--call-s", type=float, default=1.0)
    parser.add_argument("--ring-s", type=float, default=0.1)
    parser.add_argument("--cps", type=float, default=200.0, help="account calls per second")
    args = parser.parse_args()
    if not POSTGRES_ADMIN_URL or not REDIS_TEST_URL:
        raise SystemExit("PostgreSQL and Redis are needed (TEST_POSTGRES_URL, TEST_REDIS_URL)")
    result = run(args)
    write_result("dialer", result)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
