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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import redis
import requests
from sqlalchemy import func, select

from bench.support import Check, table, write_result
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


def _wait_until_booted(stack: Stack, timeout_s: float = 60.0) -> None:
    """Until the stack idles: a Dramatiq worker answers its metrics port before its worker
    processes have imported the actors, and that boot (seconds of CPU) is not a call's cost.
    Idle is under a tenth of a core over half a second, across every process."""
    deadline = time.monotonic() + timeout_s
    before = stack_cpu_seconds(stack)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        after = stack_cpu_seconds(stack)
        if sum(after.values()) - sum(before.values()) < 0.05:
            return
        before = after


def _start_run(stack: Stack, business: Any, run_id: int) -> None:
    requests.post(f"{stack.api}/api/runs/{run_id}/start", headers=business.headers,
                  timeout=30).raise_for_status()  # fmt: skip


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


#: main before issue 19 (docs/benchmarks.md, measured 2026-12-02 15:46 on this 2-core machine,
#: commit 6e4d10d's code): the "before" column of the report.
BEFORE: dict[str, Any] = {
    "label": "main before issue 19 (2 workers, 1 calls service x 2 processes)",
    "actual_makespan_s": 43.24,
    "slot_utilization": 0.162,
    "dispatch_gap_p50_ms": 4038.4,
    "dispatch_gap_p99_ms": 14117.2,
    "peak_concurrency_per_business_max": 3,
    "cpu_ms_per_call": 62.39,
    "cpu_ms_per_call_switchboard": 52.49,
    "cpu_ms_per_call_by_process": {"simulator": 9.9, "api": 0.5, "calls": 16.91,
                                   "scheduler": 0.15, "worker0": 16.91, "worker1": 18.02},
    "duplicate_attempts": 0,
}  # fmt: skip
#: py-spy (``py-spy record -r 100 -f raw --nonblocking`` on every worker and calls process for
#: 12 s of a ``--only default --leads 60`` run, 2026-12-06 15:57, quiet machine), samples by step
#: (the innermost frame naming one); py-spy's idle filter keeps waits on PostgreSQL and Redis
#: sockets, so these are shares of busy wall time.
PROFILE_BY_STEP = {
    "worker (1,800 samples, 2 processes)": [
        ("Dramatiq: consuming, acking, middleware (mostly waiting on Redis)", 30.9),
        ("dispatch pass: claim every free slot (`fill_slots`, one transaction)", 13.8),
        ("apply the callback: lock the call, move call, job, lead, run", 12.8),
        ("storing the call id (2 statements + commit)", 12.3),
        ("dispatch pass: commit, CPS limiter", 10.5),
        ("provider create (twilio SDK, kept-alive HTTP)", 9.2),
        ("`calls.status_changed`: commit, follow-ups", 4.5),
        ("other", 5.9),
    ],
    "calls (482 samples)": [
        ("store the callback (one INSERT ... ON CONFLICT, committed)", 24.5),
        ("enqueue `calls.status_changed` after the answer", 13.7),
        ("signature check", 1.7),
        ("parameters", 0.4),
        ("gunicorn's event loop, Flask, werkzeug", 59.8),
    ],
}
#: The two configurations ``make bench-dialer`` runs: worker processes (4 threads each) and
#: calls-service processes (gunicorn workers of the one calls service).
CONFIGS = {"default": (2, 1), "scaled": (4, 2)}
#: Targets from issue 19.
TARGETS = {"utilization": 0.85, "gap_p99_ms": 500, "cpu_ms": 15.0, "per_business": 3}


def run(args: argparse.Namespace, workers: int = 2, calls_processes: int = 1) -> dict[str, Any]:
    with (
        temporary_postgres_database() as database_url,
        tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp,
    ):
        migrate.upgrade(database_url)
        db = Database(database_url)
        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
        with campaign_stack(
            database_url,
            REDIS_TEST_URL,
            Path(tmp),
            workers=workers,
            cps=args.cps,
            extra_env={"CALLS_WORKERS": str(calls_processes)},
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
            _wait_until_booted(stack)
            cpu_before = stack_cpu_seconds(stack)
            started = time.time()
            # The businesses start their runs at once, as 50 independent tenants would: one
            # client starting them in turn spread the starts over ~1 s of its own round trips,
            # counted in the makespan as if the dialer had left those slots idle.
            with ThreadPoolExecutor(max_workers=16) as starters:
                list(starters.map(lambda run: _start_run(stack, *run), runs))
            starts_spread_s = time.time() - started
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
    cpu_ms = {k: (cpu_after[k] - cpu_before[k]) * 1000 / max(calls, 1) for k in cpu_after}
    return {
        "workers": workers,
        "calls_processes": calls_processes,
        "calls": calls,
        "ideal_makespan_s": round(ideal, 2),
        "actual_makespan_s": round(actual, 2),
        "runs_completed_after_s": round(finished - started, 2),
        "starts_spread_s": round(starts_spread_s, 2),
        "slot_utilization": round(ideal / actual, 3),
        "dispatch_gap_p50_ms": round(percentile(gaps, 0.50) * 1000, 1),
        "dispatch_gap_p99_ms": round(percentile(gaps, 0.99) * 1000, 1),
        "dispatch_gap_mean_ms": round(statistics.fmean(gaps) * 1000, 1) if gaps else None,
        "peak_concurrency_per_business_max": max(peaks),
        "peak_concurrency_per_business_min": min(peaks),
        "cpu_ms_per_call": round(sum(cpu_ms.values()), 2),
        # Switchboard's own processes: the simulator (and the load, the benchmark itself) apart.
        "cpu_ms_per_call_switchboard": round(
            sum(v for k, v in cpu_ms.items() if k != "simulator"), 2
        ),
        "cpu_ms_per_call_by_process": {k: round(v, 2) for k, v in cpu_ms.items()},
        "duplicate_attempts": calls - len({(c["job"], c["attempt"]) for c in ledger}),
        "calls_per_s": round(calls / actual, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round of median slot utilization, whole (its figures belong together), with every
    round's utilization, gap p99 and CPU per call beside it."""
    ordered = sorted(rounds, key=lambda r: r["slot_utilization"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(rounds) > 1:
        chosen["rounds"] = [
            {k: r[k] for k in ("slot_utilization", "dispatch_gap_p99_ms",
                               "cpu_ms_per_call_switchboard", "load_average_1m")}
            for r in rounds
        ]  # fmt: skip
    return chosen


def _rounds_line(r: dict[str, Any]) -> str:
    rounds = r.get("rounds")
    if not rounds:
        return "The default configuration ran once."
    figures = "; ".join(
        f"{x['slot_utilization']:.3f} / {x['dispatch_gap_p99_ms']:.0f} ms / "
        f"{x['cpu_ms_per_call_switchboard']} ms"
        for x in rounds
    )
    return (f"The default configuration ran {len(rounds)} times, one after the other; the row "
            f"is its round of median utilization. Every round (utilization / gap p99 / CPU per "
            f"call): {figures}.")  # fmt: skip


def _row(label: str, r: dict[str, Any]) -> list[Any]:
    cpu = r["cpu_ms_per_call_by_process"]
    workers = sum(v for k, v in cpu.items() if k.startswith("worker"))
    return [
        label, f"{r['actual_makespan_s']} s", f"**{r['slot_utilization']:.2f}**",
        f"{r['dispatch_gap_p50_ms']:.0f} ms / {r['dispatch_gap_p99_ms']:.0f} ms",
        f"**{r['cpu_ms_per_call_switchboard']} ms** (workers {workers:.1f}, calls "
        f"{cpu['calls']}, api {cpu['api']})", f"{cpu['simulator']} ms",
        r["peak_concurrency_per_business_max"], r["duplicate_attempts"],
        r.get("calls_per_s", "n/a"), r.get("load_average_1m", "n/a"),
    ]  # fmt: skip


def checks(result: dict[str, Any]) -> list[Check]:
    r = result["configs"]["default"]
    return [
        Check("Dialer: slot utilization (ideal / actual makespan)", f">= {TARGETS['utilization']}",
              f"{r['slot_utilization']:.2f}", r["slot_utilization"] >= TARGETS["utilization"]),
        Check("Dialer: dispatch gap p99", f"< {TARGETS['gap_p99_ms']} ms",
              f"{r['dispatch_gap_p99_ms']:.0f} ms",
              r["dispatch_gap_p99_ms"] < TARGETS["gap_p99_ms"]),
        Check("Dialer: CPU per call over Switchboard's processes (simulator apart)",
              f"<= {TARGETS['cpu_ms']:g} ms", f"{r['cpu_ms_per_call_switchboard']} ms",
              r["cpu_ms_per_call_switchboard"] <= TARGETS["cpu_ms"]),
        Check("Dialer: duplicate creates; most concurrent calls of a business", "0; <= 3",
              f"{r['duplicate_attempts']}; {r['peak_concurrency_per_business_max']}",
              r["duplicate_attempts"] == 0
              and r["peak_concurrency_per_business_max"] <= TARGETS["per_business"]),
    ]  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md section, figures from ``result`` (bench/results/dialer.json)."""
    c = result["config"]
    talk = max(c["call_s"] - c["ring_s"], 0.05)
    rounds = math.ceil(c["leads"] / c["slots"])
    configs = result["configs"]
    header = ["code and configuration", "actual makespan (ideal "
              f"{configs['default']['ideal_makespan_s']} s)", "slot utilization",
              "dispatch gap p50 / p99", "CPU per call, Switchboard's processes",
              "simulator CPU per call", "peak concurrency per business", "duplicate creates",
              "calls/s", "load average (1 min)"]  # fmt: skip
    rows = [_row(f"before: {BEFORE['label']}", BEFORE | {"calls_per_s": "23.1"})]
    profile = "\n\n".join(
        table([process, "share"], [[step, f"{share:.1f} %"] for step, share in steps], "lr")
        for process, steps in PROFILE_BY_STEP.items()
    )
    for name, r in configs.items():
        rows.append(_row(f"after: {name} ({r['workers']} worker processes x 4 threads, calls "
                         f"service x {r['calls_processes']})", r))  # fmt: skip
    return f"""## Dialer

`{result["command"]}` (= `.venv/bin/python -m bench.dialer`): the real stack (api, calls, worker
processes with 4 threads each, scheduler, Twilio simulator) on PostgreSQL and Redis, in two
configurations one after the other. Every business has {c["slots"]} slots and {c["leads"]} leads;
each simulated call rings {c["ring_s"]:g} s and talks {talk:g} s; the account CPS limit is
{c["cps"]:g} so the slots, not CPS, are the constraint. The baseline is the **ideal makespan**:
every slot busy all the time, calls back to back (`ceil({c["leads"]}/{c["slots"]}) x
{c["call_s"]:g} s = {rounds * c["call_s"]:g} s`). CPU per call is summed over Switchboard's own
processes (api, calls, workers, scheduler); the simulator is shown apart. Results are written to
`bench/results/dialer.json`; the "before" row is main's figures before issue 19 (the same command,
{BEFORE["cpu_ms_per_call"]} ms per call with the simulator).

{table(header, rows)}

{_rounds_line(configs["default"])}

Where the time goes, by step (py-spy on every worker and calls process during a `--only default`
run; shares of busy wall time, waits on PostgreSQL and Redis included):

{profile}

What changed (issue 19, docs/architecture.md): one call lifecycle of prebuilt statements; a
dispatch fills every free slot of its business in one pass and one transaction and places its
calls side by side (6 placing threads per worker process: placed in turn, the third call of a
pass waited for two provider round trips); only the final status callback is asked for (the
voice webhook applies `in-progress`). The calls service stores that callback in one INSERT and
answers; `calls.status_changed` applies it in a worker, under the call's lock, and fills the
slot it freed right there (no `dialer.dispatch` message). Idle Redis consumers of the urgent
queues block on a wake list filled by every enqueue instead of polling. The simulator sends its
callbacks over kept-alive `http.client` connections (`requests` prepared each one: 43 % of the
simulator's CPU) and the SDK's session is pooled for http as for https, its proxy settings read
once.

**Reading them.** Eight quiet runs of the default configuration on the final code of issue 19
(2026-12-06, load average 0.6 to 2) measured 0.835-0.867 utilization (median 0.858; six of the
eight at 0.85 or more), 82-171 ms gap p99 and 5.5-6.7 ms of Switchboard CPU per call. The
makespan holds about 1.2 s more than the ideal whatever the gaps: the 150 first calls go through
the account's {c["cps"]:g} CPS (the last of them is created ~0.75 s after the first, and every
later call of its slot follows it), and the 50 starts through the api spread over 0.25-0.4 s.
The same code with 60 leads per business (ideal 20 s) measured 0.887-0.916: the fixed start-up
cost, not the dispatch gap, is what keeps 20 leads near 0.85. The profile's lesson: the gap was
serialization, not CPU (a pass held its Dramatiq thread while it placed its calls in turn, so
other businesses' dispatches waited for a thread). The scaled configuration (4 workers, 2 calls
processes) measured 0.78-0.85 at 6.4-9.5 ms per call in two runs: no faster on 2 cores, where
its extra processes' consumers and connections are paid per call; docs/deploy.md says when to
add processes.
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
    parser.add_argument("--only", choices=sorted(CONFIGS), help="run one configuration")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs of the default configuration (its median round is reported)",
    )
    args = parser.parse_args()
    if not POSTGRES_ADMIN_URL or not REDIS_TEST_URL:
        raise SystemExit("PostgreSQL and Redis are needed (TEST_POSTGRES_URL, TEST_REDIS_URL)")
    names = [args.only] if args.only else list(CONFIGS)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    config = {k: v for k, v in vars(args).items() if k not in ("only", "rounds")}
    results = {}
    for name in names:
        workers, calls_processes = CONFIGS[name]
        # The targets' configuration runs several times and its median round is reported:
        # utilization moves by +-0.02 between runs of the same code on this machine.
        rounds = [run(argparse.Namespace(**config), workers, calls_processes)
                  for _ in range(args.rounds if name == "default" else 1)]  # fmt: skip
        for k, r in enumerate(rounds, 1):
            print(f"{name} round {k} of {len(rounds)}", r, flush=True)
        results[name] = median_round(rounds)
        print(name, results[name], flush=True)
    result = {"benchmark": "dialer", "command": COMMAND, "config": config, "before": BEFORE,
              "configs": results, "cores": os.cpu_count()}  # fmt: skip
    if args.only is None:
        write_result("dialer", result)
    for check in checks(result) if "default" in results else []:
        print(f"{check.what}: {check.measured} (target {check.target}) {check.verdict}")


if __name__ == "__main__":
    main()
