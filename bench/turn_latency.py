"""Turn-latency benchmark: what the media path adds to a voice agent's answer.

Many concurrent calls (100 by default) talk to the speech-to-speech agent, which is bridged to
the realtime model simulator (simulators/realtime, the OpenAI Realtime wire format). Each
caller (simulators/twilio/media_client.py, Twilio's side) says something three times; a turn's
latency is from the caller's last speech frame leaving the client to the first frame of the
agent's answer arriving back at it. The simulator's own delays are known and subtracted: its
server VAD waits ``silence_duration_ms`` of quiet (the agent asks for SILENCE_DURATION_MS)
before it takes the turn as ended, then "thinks" for ``response_delay_ms``. What remains is the
path: Twilio-side socket → media server (parse, record, VAD, agent) → model socket, and back
(model delta → agent → pacer → Twilio-side socket), plus both simulators' own processing on
the same cores. A light run (10 calls) is measured beside it in the same run.

    .venv/bin/python -m bench.turn_latency [--calls 100 --response-delay-ms 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis
import requests

from bench.support import Check, table, write_result
from libs.common import migrate
from libs.common.db import Database
from libs.common.models import AgentSettings, Business, PhoneNumber
from services.calls.media.realtime.agent import SILENCE_DURATION_MS
from simulators.twilio.media_client import StreamResult, Target, run_streams
from tests.support.processes import gunicorn_argv, running, service_env
from tests.support.services import REDIS_TEST_URL, free_port, temporary_postgres_database

COMMAND = "make bench-turn"
NUMBER = "+14155550000"
AUTH_TOKEN = "bench-auth-token"
MODEL_KEY = "sk-bench"
P99_BOUND_MS = 50.0
#: Each caller's three utterances: (start, length) in seconds from the stream's start. The
#: greeting is over by the first; each answer (about a second) is over before the next.
SPEECH = [(2.5, 0.8), (5.5, 0.8), (8.5, 0.8)]
CALL_S = 11.0
ARRIVALS_PER_S = 50


def _business(database_url: str) -> None:
    db = Database(database_url)
    with db.session() as session:
        business = Business(name="Bench Co", timezone="UTC")
        session.add(business)
        session.flush()
        session.add(PhoneNumber(business_id=business.id, number_e164=NUMBER))
        session.add(
            AgentSettings(
                business_id=business.id,
                kind="realtime",
                model="gpt-realtime",
                instructions="",
                voice="alloy",
                tools=["update_lead"],
            )
        )
        session.commit()
    db.dispose()


def _client(target: Target, first: int, count: int) -> tuple[list[StreamResult], float]:
    cpu = time.process_time()
    ramp_s = max(1.0, count / ARRIVALS_PER_S)
    results = asyncio.run(
        run_streams(target, count, CALL_S, ramp_s, first_index=first, speech=SPEECH)
    )
    return results, time.process_time() - cpu


def turn_latencies(results: list[StreamResult]) -> list[float]:
    """Per turn: the speech end to the first agent frame after it, in milliseconds."""
    out = []
    for r in results:
        for ended in r.speech_ended_at:
            after = [t for t in r.arrivals if t > ended]
            if after:
                out.append((after[0] - ended) * 1000)
    return out


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1) if ordered else -1.0


def measure(
    pool: ProcessPoolExecutor, clients: int, target: Target, calls: int, model_ms: float
) -> dict[str, Any]:
    shares = [calls // clients + (1 if i < calls % clients else 0) for i in range(clients)]
    started = time.monotonic()
    futures = [pool.submit(_client, target, sum(shares[:i]), n) for i, n in enumerate(shares) if n]
    results: list[StreamResult] = []
    client_cpu = 0.0
    for future in futures:
        part, cpu = future.result()
        results += part
        client_cpu += cpu
    wall = time.monotonic() - started
    measured = turn_latencies(results)
    added = [m - model_ms for m in measured]
    turns_expected = calls * len(SPEECH)
    return {
        "calls": calls,
        "turns": len(measured),
        "turns_expected": turns_expected,
        "dropped_calls": sum(1 for r in results if not r.ok),
        "measured_p50_ms": _percentile(measured, 0.50),
        "measured_p99_ms": _percentile(measured, 0.99),
        "added_p50_ms": _percentile(added, 0.50),
        "added_p99_ms": _percentile(added, 0.99),
        "added_max_ms": round(max(added), 1) if added else -1.0,
        # The load generator's share of the cores it shares with the path it measures.
        "client_cpu_per_core": round(client_cpu / wall / clients, 3),
    }


def run(calls: int, light: int, clients: int, response_delay_ms: int) -> dict[str, Any]:
    model_ms = SILENCE_DURATION_MS + response_delay_ms
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-turn-")))
        database_url = stack.enter_context(temporary_postgres_database())
        migrate.upgrade(database_url)
        _business(database_url)
        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
        sim_port, port, media_port = free_port(), free_port(), free_port()
        sim = f"http://127.0.0.1:{sim_port}"
        stack.enter_context(
            running(
                [sys.executable, "-m", "simulators.realtime", "--port", str(sim_port)],
                service_env(),
                workdir / "sim.log",
                f"{sim}/_sim/healthz",
            )
        )
        requests.post(
            f"{sim}/_sim/behaviour",
            json={"greeting": "Hi.", "response_delay_ms": response_delay_ms},
            timeout=5,
        ).raise_for_status()
        url, stream_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{media_port}/ws/media"
        env = service_env(
            DATABASE_URL=database_url,
            REDIS_URL=REDIS_TEST_URL,
            SWITCHBOARD_VAR_DIR=str(workdir),
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            PUBLIC_BASE_URL=url,
            CALLS_BIND=f"127.0.0.1:{port}",
            CALLS_MEDIA_BIND=f"127.0.0.1:{media_port}",
            MEDIA_STREAM_URL=stream_url,
            SERVICE_ROLE="calls",
            LOG_LEVEL="WARNING",
            OPENAI_API_KEY=MODEL_KEY,
            REALTIME_API_BASE=f"ws://127.0.0.1:{sim_port}/v1",
        )
        stack.enter_context(
            running(gunicorn_argv("calls"), env, workdir / "calls.log", f"{url}/readyz")
        )
        stack.enter_context(
            running(
                gunicorn_argv("calls/media"),
                env,
                workdir / "media.log",
                f"http://127.0.0.1:{media_port}/readyz",
            )
        )
        target = Target(stream_url, f"{url}/webhook/twilio/voice", AUTH_TOKEN, NUMBER)
        pool = stack.enter_context(ProcessPoolExecutor(clients))
        rows = []
        for count in (light, calls):
            row = measure(pool, clients, target, count, model_ms)
            rows.append(row)
            print(
                f"{count:>4} calls  turns {row['turns']}/{row['turns_expected']}  measured "
                f"p50 {row['measured_p50_ms']:.0f} ms, p99 {row['measured_p99_ms']:.0f} ms; "
                f"path added p50 {row['added_p50_ms']:.1f} ms, p99 {row['added_p99_ms']:.1f} "
                f"ms (model {model_ms} ms subtracted)  dropped {row['dropped_calls']}; load "
                f"generator {row['client_cpu_per_core']:.0%} of a core per process",
                flush=True,
            )
        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    return {
        "rows": rows,
        "model_ms": model_ms,
        "silence_duration_ms": SILENCE_DURATION_MS,
        "response_delay_ms": response_delay_ms,
    }


def markdown(result: dict[str, Any]) -> str:
    rows = [
        [
            r["calls"],
            f"{r['turns']}/{r['turns_expected']}",
            r["measured_p50_ms"],
            r["measured_p99_ms"],
            r["added_p50_ms"],
            f"**{r['added_p99_ms']}**",
            r["dropped_calls"],
        ]
        for r in result["rows"]
    ]
    return f"""## Voice agent turn latency

`{result["command"]}` (= `.venv/bin/python -m bench.turn_latency`): concurrent calls to the
speech-to-speech agent, bridged to the realtime model simulator; each caller speaks three
times. A turn is timed from the caller's last speech frame leaving Twilio's side to the first
frame of the answer arriving back. The model's own time is subtracted: its server VAD's
{result["silence_duration_ms"]} ms of silence before it takes the turn as ended, plus the
{result["response_delay_ms"]} ms it is set to think ({result["model_ms"]} ms in all). What
remains is the path Switchboard adds (both sockets, parsing, recording, the agent, the pacer)
plus the simulators' own processing on the same {result.get("cores", 2)} cores. Target: **under
{P99_BOUND_MS:g} ms p99 at 100 calls**.

{
        table(
            [
                "calls",
                "turns",
                "measured p50 ms",
                "measured p99 ms",
                "added p50 ms",
                "added p99 ms",
                "dropped",
            ],
            rows,
            "rrrrrrr",
        )
    }
"""


def checks(result: dict[str, Any]) -> list[Check]:
    heavy = result["rows"][-1]
    return [
        Check(
            f"Turn latency the path adds at {heavy['calls']} calls, p99",
            "< 50 ms",
            f"{heavy['added_p99_ms']:.1f} ms",
            0 <= heavy["added_p99_ms"] < P99_BOUND_MS and not heavy["dropped_calls"],
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.turn_latency")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--light", type=int, default=10, help="the light run beside it")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--response-delay-ms",
        type=int,
        default=300,
        help="the simulated model's thinking time (subtracted)",
    )
    args = parser.parse_args()
    print(
        f"turn latency, {args.calls} concurrent calls ({COMMAND}), load average "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    out = run(args.calls, args.light, args.clients, args.response_delay_ms)
    heavy = out["rows"][-1]
    out.update(
        command=COMMAND,
        cores=os.cpu_count(),
        p99_bound_ms=P99_BOUND_MS,
        met=0 <= heavy["added_p99_ms"] < P99_BOUND_MS and not heavy["dropped_calls"],
        load_average=[round(x, 2) for x in os.getloadavg()],
    )
    write_result("turn_latency", out)


if __name__ == "__main__":
    main()
