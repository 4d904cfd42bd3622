"""Media-stream benchmark: how many concurrent calls, each streaming 50 frames/s, one calls
service sustains with p99 frame-handling latency under 20 ms, next to a bare echo WebSocket on
the same server stack (bench/echo_ws.py under the calls service's gunicorn_conf.py).

Switchboard runs with ``EchoAgent`` (every frame in answers a frame out, as a streaming voice
agent does), so both sides do one receive and one send per frame and the latency is the same
thing on both: a frame's send by "Twilio" to its echo. Switchboard's side also answers the
signed voice webhook, checks the signed upgrade, validates every frame, records the WAV,
counts metrics and writes the call log. Load comes from simulators/twilio/media_client.py in
several client processes; the steps alternate echo and Switchboard at each stream count.

    .venv/bin/python -m bench.media_streams [--seconds 5 --steps 25,50,100,...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

from bench.support import table, write_result
from libs.common import migrate
from libs.common.db import Database
from libs.common.models import Business, PhoneNumber
from simulators.twilio.media_client import StreamResult, Target, run_streams
from tests.support.processes import gunicorn_argv, running, service_env
from tests.support.services import REDIS_TEST_URL, free_port, temporary_postgres_database

COMMAND = "make bench-media"
NUMBER = "+14155550000"
AUTH_TOKEN = "bench-auth-token"
P99_BOUND_MS = 20.0
DEFAULT_STEPS = "25,50,75,100,125,150,200,250,300,400,500"


#: New calls per second while ramping up: a busy inbound line, not a thundering herd.
ARRIVALS_PER_S = 50
#: Frames sent this close to the ramp's end or the hang-up are outside the steady window.
SETTLE_S = 0.5


def _client(target: Target, first: int, count: int, seconds: float, ramp_s: float
            ) -> tuple[list[StreamResult], float]:  # fmt: skip
    cpu = time.process_time()
    results = asyncio.run(
        run_streams(target, count, seconds, ramp_s, first_index=first, end_together=True)
    )
    return results, time.process_time() - cpu


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2) if ordered else -1.0


def measure(pool: ProcessPoolExecutor, clients: int, target: Target, streams: int,
            seconds: float) -> dict[str, Any]:  # fmt: skip
    shares = [streams // clients + (1 if i < streams % clients else 0) for i in range(clients)]
    firsts = [sum(shares[:i]) for i in range(clients)]
    started = time.monotonic()
    ramp_s = max(1.0, streams / ARRIVALS_PER_S)
    futures = [
        pool.submit(_client, target, first, n, seconds, ramp_s)
        for first, n in zip(firsts, shares, strict=True)
        if n
    ]
    results: list[StreamResult] = []
    client_cpu = 0.0
    for future in futures:
        part, cpu = future.result()
        results += part
        client_cpu += cpu
    wall = time.monotonic() - started
    sent = sum(r.sent for r in results)
    echoed = sum(r.received_media for r in results)
    dropped = sum(1 for r in results if not r.ok)
    # The steady window: every call up, none hanging up yet. Call set-up (webhook, upgrade,
    # start) is measured apart, as the ramp's p99: it is what a burst of new calls costs.
    everyone_up = max((r.opened_at for r in results), default=0.0) + SETTLE_S
    first_down = min((r.closed_at for r in results if r.closed_at), default=0.0) - SETTLE_S
    steady, ramp = [], []
    for r in results:
        for sent_at, latency in zip(r.echoed_sent_at, r.latencies_ms, strict=True):
            if everyone_up <= sent_at <= first_down:
                steady.append(latency)
            elif sent_at < everyone_up:
                ramp.append(latency)
    p99 = _percentile(steady, 0.99)
    return {
        "streams": streams,
        "frames_sent": sent,
        "frames_echoed": echoed,
        "dropped_streams": dropped,
        "errors": sorted({r.error or "closed early" for r in results if not r.ok})[:3],
        "steady_frames": len(steady),
        "p50_ms": _percentile(steady, 0.50),
        "p99_ms": p99,
        "ramp_s": round(ramp_s, 1),
        "ramp_p99_ms": _percentile(ramp, 0.99),
        "client_cpu_per_core": round(client_cpu / wall / clients, 2),
        "sustained": dropped == 0 and echoed == sent and 0 <= p99 < P99_BOUND_MS,
    }


def _business(database_url: str) -> None:
    db = Database(database_url)
    with db.session() as session:
        business = Business(name="Bench Co", timezone="UTC")
        session.add(business)
        session.flush()
        session.add(PhoneNumber(business_id=business.id, number_e164=NUMBER))
        session.commit()
    db.dispose()


def _servers(stack: ExitStack, database_url: str, workdir: Path, threads: int
             ) -> dict[str, Target]:  # fmt: skip
    """The calls service (EchoAgent) and the bare echo server, same gunicorn settings."""
    targets = {}
    for name in ("echo", "switchboard"):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = service_env(
            DATABASE_URL=database_url, REDIS_URL=REDIS_TEST_URL,
            SWITCHBOARD_VAR_DIR=str(workdir / name), PUBLIC_BASE_URL=url,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN, CALLS_BIND=f"127.0.0.1:{port}",
            CALLS_THREADS=str(threads), SERVICE_ROLE="calls", LOG_LEVEL="WARNING",
            VOICE_AGENT="services.calls.media.agent:EchoAgent",
        )  # fmt: skip
        argv = gunicorn_argv("calls") + (["bench.echo_ws:app"] if name == "echo" else [])
        stack.enter_context(running(argv, env, workdir / f"{name}.log", f"{url}/readyz"))
        ws_url = url.replace("http://", "ws://") + "/ws/media"
        if name == "echo":
            targets[name] = Target(ws_url=ws_url)
        else:
            targets[name] = Target(ws_url, f"{url}/webhook/twilio/voice", AUTH_TOKEN, NUMBER)
    return targets


def _search(pool: ProcessPoolExecutor, clients: int, targets: dict[str, Target],
            steps: list[int], seconds: float, rows: dict[str, list[dict[str, Any]]]
            ) -> dict[str, int]:  # fmt: skip
    """One round: raise the stream count until each side misses; its last pass is its max."""
    best = dict.fromkeys(targets, 0)
    failed: set[str] = set()
    for streams in steps:
        for name in ("echo", "switchboard"):  # side by side at each step
            if name in failed:
                continue
            row = measure(pool, clients, targets[name], streams, seconds)
            rows[name].append(row)
            print(f"{name:>12} {streams:>5} streams  p50 {row['p50_ms']:>7.2f} ms  "
                  f"p99 {row['p99_ms']:>8.2f} ms  (ramp {row['ramp_s']:g} s: p99 "
                  f"{row['ramp_p99_ms']:.0f} ms)  dropped {row['dropped_streams']:>3}  "
                  f"client cpu/core {row['client_cpu_per_core']:.2f}  "
                  f"{'ok' if row['sustained'] else 'NOT sustained'}", flush=True)  # fmt: skip
            if row["sustained"]:
                best[name] = streams
            else:
                failed.add(name)
        if failed == set(targets):
            break
    return best


def run(steps: list[int], seconds: float, clients: int, threads: int, rounds: int
        ) -> dict[str, Any]:  # fmt: skip
    rows: dict[str, list[dict[str, Any]]] = {"echo": [], "switchboard": []}
    per_round: list[dict[str, int]] = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-media-")))
        database_url = stack.enter_context(temporary_postgres_database())
        migrate.upgrade(database_url)
        _business(database_url)
        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
        targets = _servers(stack, database_url, workdir, threads)
        pool = stack.enter_context(ProcessPoolExecutor(clients))
        for round_no in range(rounds):
            print(f"round {round_no + 1} of {rounds}", flush=True)
            per_round.append(_search(pool, clients, targets, steps, seconds, rows))
        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    best = {
        name: int(statistics.median(r[name] for r in per_round)) for name in ("echo", "switchboard")
    }
    return {"steps": rows, "rounds": per_round, "max_sustained": best}


def _per_round(steps: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split one side's steps into its rounds: each round starts again at the first step."""
    rounds: list[list[dict[str, Any]]] = []
    for step in steps:
        if not rounds or step["streams"] <= rounds[-1][-1]["streams"]:
            rounds.append([])
        rounds[-1].append(step)
    return rounds


def _cell(best: int, median_best: int, steps: list[dict[str, Any]]) -> str:
    """The round's maximum, and when it fell short of the median, the step that failed."""
    failed = [s for s in steps if not s["sustained"]]
    if best >= median_best or not failed:
        return str(best)
    first = failed[0]
    why = f"dropped {first['dropped_streams']}" if first["dropped_streams"] else (
        f"p99 {first['p99_ms']} ms")  # fmt: skip
    return f"{best} ({first['streams']}: {why})"


def markdown(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md section, figures from ``result`` (media_streams.json)."""
    best, ratio = result["max_sustained"], result["ratio"]
    by_side = {name: _per_round(result["steps"][name]) for name in ("echo", "switchboard")}
    rows = []
    for i, counts in enumerate(result["rounds"]):
        cells = []
        for name in ("echo", "switchboard"):
            steps = by_side[name][i] if i < len(by_side[name]) else []
            cells.append(_cell(counts[name], best[name], steps))
        rows.append([i + 1, *cells])
    rows.append(["**median**", f"**{best['echo']}**",
                 f"**{best['switchboard']}** (ratio **{ratio:.2f}**)"])  # fmt: skip
    at_max = [r for r in result["steps"]["switchboard"]
              if r["sustained"] and r["streams"] == best["switchboard"]]  # fmt: skip
    p99 = statistics.median(r["p99_ms"] for r in at_max) if at_max else float("nan")
    p50 = statistics.median(r["p50_ms"] for r in at_max) if at_max else float("nan")
    steps = sorted({r["streams"] for rows_ in result["steps"].values() for r in rows_})
    cpu = max((r["client_cpu_per_core"] for rs in result["steps"].values() for r in rs),
              default=0.0)  # fmt: skip
    cores = result.get("cores", 2)
    return f"""## Media streams

`{result["command"]}` (= `.venv/bin/python -m bench.media_streams`): how many concurrent
inbound calls, each streaming 20 ms μ-law frames at 50 frames/s, one calls service sustains with
**p99 frame latency under {result["p99_bound_ms"]:g} ms and no call dropped**, next to a **bare
echo WebSocket on the same server stack** (`bench/echo_ws.py`: Flask + simple-websocket under
the calls service's own `gunicorn_conf.py`, {result["workers"]} workers,
`CALLS_THREADS={result["threads"]}` for both so threads are not the limit).

Switchboard runs with `VOICE_AGENT=services.calls.media.agent:EchoAgent`, which answers every
frame with a frame (as a streaming voice agent does), so on both sides a frame's latency is the
same thing: its send by "Twilio" to its echo, measured by the load generator
(`simulators/twilio/media_client.py`, asyncio + aiohttp in {result["clients"]} processes, at
most {cpu:.2f} of a core each in this run: not the bottleneck). Switchboard's side also answers
the signed voice webhook, checks the signed upgrade, validates each frame, records the WAV,
counts metrics and writes the call log. Calls arrive at {ARRIVALS_PER_S} per second; latency is
taken in the steady window when every call is up (the ramp's p99 is printed apart: it is what a
burst of new calls costs). Steps {", ".join(map(str, steps))}, … ({result["seconds"]:g} s of
audio per call); echo and Switchboard alternate at each step; {result["rounds_run"]} rounds, the
median maximum counts.

{table(["round", "bare echo", "Switchboard"], rows, "lrr")}

At its maximum Switchboard's p99 was {p99:.1f} ms (p50 {p50:.2f} ms). Run on {cores} cores shared
with PostgreSQL, Redis and the load generator, so single steps are noisy (a round below the median
names, in brackets, the step that failed). Where the time goes (profiled while building it): per
frame the stack (wsproto parsing and framing, the reader thread handing each frame to the handler
thread) costs ~0.2 ms of CPU for echo and Switchboard alike; Switchboard's own handling is 0.014 ms
per frame (measured in-process); the rest of the gap is call set-up (webhook, upgrade, start: two
database writes per call) landing during the steady window of the slower calls. Two fixes came out
of this benchmark: frame metrics were taken under prometheus-client's process-wide lock three times
per frame (a lock convoy: p99 over 1 s at 100 streams), now batched per stream once a second; and
the api/calls workers `gc.freeze()` the loaded application (a full collection of its ~90,000
objects paused every stream ~45 ms).
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.media_streams")
    parser.add_argument("--seconds", type=float, default=5.0, help="audio per call, per step")
    parser.add_argument("--steps", default=DEFAULT_STEPS, help="stream counts to try, in order")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes")
    parser.add_argument("--threads", type=int, default=512, help="CALLS_THREADS for both")
    parser.add_argument("--rounds", type=int, default=3, help="searches; the median max counts")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    print(f"media streams at 50 frames/s, {args.seconds:g} s per step, "
          f"{os.cpu_count()} cores ({COMMAND})", flush=True)  # fmt: skip
    out = run(steps, args.seconds, args.clients, args.threads, args.rounds)
    best = out["max_sustained"]
    ratio = best["switchboard"] / best["echo"] if best["echo"] else 0.0
    out.update(
        command=COMMAND, rounds_run=args.rounds, seconds=args.seconds, clients=args.clients,
        threads=args.threads,
        workers=int(os.environ.get("CALLS_WORKERS", "2")), p99_bound_ms=P99_BOUND_MS,
        ratio=round(ratio, 2), cores=os.cpu_count(),
    )  # fmt: skip
    print(f"\nmost streams with p99 < {P99_BOUND_MS:g} ms and none dropped (median of "
          f"{args.rounds} rounds): switchboard "
          f"{best['switchboard']}, bare echo {best['echo']}, ratio {ratio:.2f}")  # fmt: skip
    sb = [r for r in out["steps"]["switchboard"] if r["sustained"]]
    if sb:
        p50 = statistics.median(r["p50_ms"] for r in sb)
        print(f"switchboard p99 at its max: {sb[-1]['p99_ms']} ms (median p50 {p50:.2f} ms)")
    write_result("media_streams", out)


if __name__ == "__main__":
    main()
