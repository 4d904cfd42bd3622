"""Media-stream benchmark: how many concurrent calls, each streaming 50 frames/s, the media
server sustains with p99 frame latency under 20 ms and none dropped, next to a bare asyncio echo
WebSocket on the same server stack (bench/echo_ws.py under services/calls/media/gunicorn_conf.py);
then the agent's playback at the target count: the pacing of its frames as the caller receives
them (jitter, gaps) and the wait from the answer to its first audio.

Switchboard runs with ``EchoAgent`` (every frame in answers a frame out through the whole
pipeline: parse, recording, VAD, agent, paced playout), so both sides do one receive and one
send per frame and the latency is the same thing on both: a frame's send by "Twilio" to its
echo. Switchboard's side also answers the signed voice webhook, checks the signed upgrade,
validates every frame, records the WAV, counts metrics and writes the call log. The playback
phase runs ``bench.talker_agent:TalkerAgent`` (talks for the whole call). Load comes from
simulators/twilio/media_client.py in several client processes sharing the same cores; the CPU
each side spends per frame is measured (server process trees and the clients).

    .venv/bin/python -m bench.media_streams [--seconds 5 --steps 100,200,...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.support import Check, table, tree_cpu_seconds, write_result
from libs.common import migrate
from libs.common.db import Database
from libs.common.models import Business, PhoneNumber
from services.calls.media.server import IDLE_SWEEP_S, MEDIA_PATH
from simulators.twilio.media_client import StreamResult, Target, run_streams
from tests.support.processes import gunicorn_argv, running, service_env
from tests.support.services import REDIS_TEST_URL, free_port, temporary_postgres_database

COMMAND = "make bench-media"
NUMBER = "+14155550000"
AUTH_TOKEN = "bench-auth-token"
P99_BOUND_MS = 20.0
TARGET_STREAMS = 500
JITTER_P99_BOUND_MS = 10.0
MAX_GAP_BOUND_MS = 60.0
FIRST_AUDIO_P99_BOUND_MS = 1000.0
DEFAULT_STEPS = "100,200,300,400,500,600,700,800,1000"

#: New calls per second while ramping up: a busy inbound line, not a thundering herd.
ARRIVALS_PER_S = 50
#: Frames sent this close to the ramp's end or the hang-up are outside the steady window.
SETTLE_S = 0.5


class CpuSampler:
    """The servers' CPU seconds, sampled twice a second in a thread, to read the CPU spent in
    any window of the run (the steady one: every call up, none being set up)."""

    def __init__(self, pids: tuple[int, ...]) -> None:
        self.pids = pids
        self.samples = [(time.monotonic(), self._cpu())]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _cpu(self) -> float:
        return sum(tree_cpu_seconds(pid) for pid in self.pids)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.samples.append((time.monotonic(), self._cpu()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> float:
        inside = [(t, c) for t, c in self.samples if start <= t <= end]
        if len(inside) < 2:
            return 0.0
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0) * (end - start)


@dataclass(frozen=True)
class Side:
    target: Target
    pids: tuple[int, ...]  # the server process trees whose CPU is counted


def _client(target: Target, first: int, count: int, seconds: float, ramp_s: float
            ) -> tuple[list[StreamResult], float, list[float]]:  # fmt: skip
    """One load-generator process's calls, its CPU time, and its own garbage collections'
    pauses over 1 ms (its loop stops meanwhile: what it measures then is late by as much)."""
    pauses: list[float] = []
    started = 0.0

    def on_collection(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        elif (pause := time.perf_counter() - started) > 0.001:
            pauses.append(round(pause * 1000, 1))

    # Forked from this script, the process holds everything it imported (the ORM, the
    # server's modules): out of the collector's walk, as the media server does with its own.
    gc.freeze()
    gc.callbacks.append(on_collection)
    cpu = time.process_time()
    try:
        results = asyncio.run(
            run_streams(target, count, seconds, ramp_s, first_index=first, end_together=True)
        )
    finally:
        gc.callbacks.remove(on_collection)
    return results, time.process_time() - cpu, pauses


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2) if ordered else -1.0


def _pacing(results: list[StreamResult], start: float, end: float) -> dict[str, float]:
    """Gaps between consecutive agent frames as each caller received them, in the window."""
    jitter, gaps = [], []
    for r in results:
        arrivals = [t for t in r.arrivals if start <= t <= end]
        for a, b in itertools.pairwise(arrivals):
            gap = (b - a) * 1000
            gaps.append(gap)
            jitter.append(abs(gap - 20.0))
    first = [(r.first_audio_at - r.answered_at) * 1000 for r in results if r.first_audio_at]
    # Where the wait goes: the voice webhook and the upgrade (answer → socket open), then the
    # start, the claim and the agent's first frame (socket open → first audio).
    opening = [(r.opened_at - r.answered_at) * 1000 for r in results if r.first_audio_at]
    starting = [(r.first_audio_at - r.opened_at) * 1000 for r in results if r.first_audio_at]
    return {
        "gaps": len(gaps),
        "jitter_p50_ms": _percentile(jitter, 0.50),
        "jitter_p99_ms": _percentile(jitter, 0.99),
        "max_gap_ms": round(max(gaps), 1) if gaps else -1.0,
        "first_audio_p50_ms": _percentile(first, 0.50),
        "first_audio_p99_ms": _percentile(first, 0.99),
        "first_audio_max_ms": round(max(first), 1) if first else -1.0,
        "answer_to_open_p99_ms": _percentile(opening, 0.99),
        "open_to_first_audio_p99_ms": _percentile(starting, 0.99),
    }


def _scrape(target: Target) -> dict[str, float]:
    """The media server's /metrics as {series: value}: the pacer's lateness and the garbage
    collector's pauses are read from it before and after the playback phase."""
    url = target.ws_url.replace("ws://", "http://").removesuffix(MEDIA_PATH) + "/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(("switchboard_media_pacer_lateness", "switchboard_media_gc_pause")):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    return values


def _histogram(before: dict[str, float], after: dict[str, float], name: str,
               labels: str = "") -> dict[str, Any]:  # fmt: skip
    """A histogram's observations between two scrapes: count, and the bucket bound under
    which 50 %, 99 % and all of them fall (ms; inf: above the largest bucket)."""
    prefix = f'{name}_bucket{{{labels}{"," if labels else ""}le="'
    buckets = sorted(
        (float(series[len(prefix):].split('"')[0]), value - before.get(series, 0.0))
        for series, value in after.items() if series.startswith(prefix)
    )  # fmt: skip
    count = buckets[-1][1] if buckets else 0.0

    def bound(q: float) -> float:
        for le, cumulative in buckets:
            if cumulative >= q * count:
                return round(le * 1000, 1)
        return float("inf")

    return {"count": int(count), "p50_ms_le": bound(0.5), "p99_ms_le": bound(0.99),
            "max_ms_le": bound(1.0)}  # fmt: skip


def _late_sends(results: list[StreamResult], start: float, end: float) -> dict[str, float]:
    """How late the load generator itself sent its frames in the window: a gap a caller
    measures while its own process was not running is not the server's."""
    late = [ms for r in results for t, ms in r.late_sends if start <= t <= end]
    sent = sum(1 for r in results for t in r.arrivals if start <= t <= end) or 1
    late.sort()
    over = len(late) - int(0.01 * sent)  # the 99th percentile among every send
    return {
        "late_sends_over_2ms": len(late),
        "late_send_p99_ms": round(late[over], 1) if over >= 0 and late else 0.0,
        "late_send_max_ms": round(late[-1], 1) if late else 0.0,
    }


def measure(pool: ProcessPoolExecutor, clients: int, side: Side, streams: int,
            seconds: float) -> dict[str, Any]:  # fmt: skip
    shares = [streams // clients + (1 if i < streams % clients else 0) for i in range(clients)]
    firsts = [sum(shares[:i]) for i in range(clients)]
    started = time.monotonic()
    sampler = CpuSampler(side.pids)
    server_cpu = sum(tree_cpu_seconds(pid) for pid in side.pids)
    ramp_s = max(1.0, streams / ARRIVALS_PER_S)
    futures = [
        pool.submit(_client, side.target, first, n, seconds, ramp_s)
        for first, n in zip(firsts, shares, strict=True)
        if n
    ]
    results: list[StreamResult] = []
    client_cpu = 0.0
    client_gc: list[float] = []
    for future in futures:
        part, cpu, pauses = future.result()
        results += part
        client_cpu += cpu
        client_gc += pauses
    server_cpu = sum(tree_cpu_seconds(pid) for pid in side.pids) - server_cpu
    sampler.stop()
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
    frames = max(sent + echoed, 1)
    # Steady state alone (no call set-up or hang-up in it): frames moved per second of the
    # window is 2 x 50 x streams for an echo; the talker only sends, 50 x streams.
    window = max(first_down - everyone_up, 1e-9)
    per_s = (2 if side.target.voice_url is None or echoed else 1) * 50 * streams
    steady_us = sampler.between(everyone_up, first_down) / (window * per_s) * 1e6
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
        # CPU per frame moved (one in plus one out is two), each side of the socket.
        "server_cpu_us_per_frame": round(server_cpu / frames * 1e6, 1),
        "client_cpu_us_per_frame": round(client_cpu / frames * 1e6, 1),
        "server_steady_cpu_us_per_frame": round(steady_us, 1),
        "pacing": _pacing(results, everyone_up, first_down),
        "client_sends": {
            **_late_sends(results, everyone_up, first_down),
            "gc_pauses_over_1ms": len(client_gc),
            "gc_pause_max_ms": max(client_gc, default=0.0),
        },
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


def _servers(stack: ExitStack, database_url: str, workdir: Path) -> dict[str, Side]:
    """The bare echo server, and Switchboard (webhooks + media server) twice: with EchoAgent for
    the search, with TalkerAgent for the playback phase. Same media gunicorn settings for all."""
    sides = {}
    for name, agent in (("echo", None), ("switchboard", "services.calls.media.agent:EchoAgent"),
                        ("playback", "bench.talker_agent:TalkerAgent")):  # fmt: skip
        media_port = free_port()
        media = f"http://127.0.0.1:{media_port}"
        ws_url = media.replace("http://", "ws://") + "/ws/media"
        env = service_env(
            DATABASE_URL=database_url, REDIS_URL=REDIS_TEST_URL,
            SWITCHBOARD_VAR_DIR=str(workdir / name), TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            CALLS_MEDIA_BIND=f"127.0.0.1:{media_port}", MEDIA_STREAM_URL=ws_url,
            SERVICE_ROLE="calls", LOG_LEVEL="WARNING", VOICE_AGENT=agent or "",
        )  # fmt: skip
        argv = gunicorn_argv("calls/media") + (["bench.echo_ws:app_factory"] if not agent else [])
        media_process = stack.enter_context(
            running(argv, env, workdir / f"{name}-media.log", f"{media}/readyz")
        )
        if not agent:
            sides[name] = Side(Target(ws_url=ws_url), (media_process.pid,))
            continue
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        webhooks = stack.enter_context(running(
            gunicorn_argv("calls"), {**env, "CALLS_BIND": f"127.0.0.1:{port}",
                                     "PUBLIC_BASE_URL": url},
            workdir / f"{name}-webhooks.log", f"{url}/readyz"))  # fmt: skip
        target = Target(ws_url, f"{url}/webhook/twilio/voice", AUTH_TOKEN, NUMBER)
        sides[name] = Side(target, (media_process.pid, webhooks.pid))
    return sides


def _line(name: str, row: dict[str, Any]) -> str:
    return (f"{name:>12} {row['streams']:>5} streams  p50 {row['p50_ms']:>7.2f} ms  "
            f"p99 {row['p99_ms']:>8.2f} ms  (ramp {row['ramp_s']:g} s: p99 "
            f"{row['ramp_p99_ms']:.0f} ms)  dropped {row['dropped_streams']:>3}  "
            f"cpu/frame server {row['server_cpu_us_per_frame']:.0f} us "
            f"(steady {row['server_steady_cpu_us_per_frame']:.0f}), client "
            f"{row['client_cpu_us_per_frame']:.0f} us  "
            f"{'ok' if row['sustained'] else 'NOT sustained'}")  # fmt: skip


def _search(pool: ProcessPoolExecutor, clients: int, sides: dict[str, Side],
            steps: list[int], seconds: float, rows: dict[str, list[dict[str, Any]]]
            ) -> dict[str, int]:  # fmt: skip
    """One round: raise the stream count until each side misses; its last pass is its max."""
    names = ("echo", "switchboard")
    best = dict.fromkeys(names, 0)
    failed: set[str] = set()
    for streams in steps:
        for name in names:  # side by side at each step
            if name in failed:
                continue
            row = measure(pool, clients, sides[name], streams, seconds)
            rows[name].append(row)
            print(_line(name, row), flush=True)
            if row["sustained"]:
                best[name] = streams
            else:
                failed.add(name)
        if failed == set(names):
            break
    return best


def _playback(pool: ProcessPoolExecutor, clients: int, side: Side, streams: int,
              seconds: float) -> dict[str, Any]:  # fmt: skip
    before = _scrape(side.target)
    row = measure(pool, clients, side, streams, seconds)
    time.sleep(IDLE_SWEEP_S + 0.2)  # the server writes its collections' pauses each sweep
    after = _scrape(side.target)
    # Where a gap comes from: the server's pacer woke late (its loop busy or the process
    # not running), a collection paused it, or the load generator was late itself. The
    # server's figures cover the whole phase (ramp included), the client's the steady window.
    row["server"] = {
        "pacer_lateness": _histogram(before, after, "switchboard_media_pacer_lateness_seconds"),
        **{
            f"gc_gen{g}": _histogram(
                before, after, "switchboard_media_gc_pause_seconds", f'generation="{g}"'
            )
            for g in (0, 1, 2)
        },
    }
    pacing = row["pacing"]
    row["pacing_ok"] = (
        row["dropped_streams"] == 0
        and 0 <= pacing["jitter_p99_ms"] < JITTER_P99_BOUND_MS
        and 0 <= pacing["max_gap_ms"] <= MAX_GAP_BOUND_MS
        and 0 <= pacing["first_audio_p99_ms"] < FIRST_AUDIO_P99_BOUND_MS
    )
    print(f"    playback {streams:>5} streams  jitter p50 {pacing['jitter_p50_ms']:.2f} ms, "
          f"p99 {pacing['jitter_p99_ms']:.2f} ms, max gap {pacing['max_gap_ms']:.1f} ms; "
          f"answer to first audio p50 {pacing['first_audio_p50_ms']:.0f} ms, p99 "
          f"{pacing['first_audio_p99_ms']:.0f} ms (webhook + upgrade p99 "
          f"{pacing['answer_to_open_p99_ms']:.0f} ms, start to first frame p99 "
          f"{pacing['open_to_first_audio_p99_ms']:.0f} ms); dropped {row['dropped_streams']}  "
          f"{'ok' if row['pacing_ok'] else 'NOT ok'}", flush=True)  # fmt: skip
    late, client = row["server"]["pacer_lateness"], row["client_sends"]
    gcs = ", ".join(
        f"gen{g} {row['server'][f'gc_gen{g}']['count']} "
        f"(max <= {row['server'][f'gc_gen{g}']['max_ms_le']} ms)"
        for g in (0, 1, 2)
    )
    print(f"             where gaps come from: server pacer wakes {late['count']}, late p50 <= "
          f"{late['p50_ms_le']} ms, p99 <= {late['p99_ms_le']} ms, max <= {late['max_ms_le']} ms;"
          f" collections {gcs}; load generator sends late > 2 ms: "
          f"{client['late_sends_over_2ms']}, p99 {client['late_send_p99_ms']} ms, max "
          f"{client['late_send_max_ms']} ms, its collections over 1 ms "
          f"{client['gc_pauses_over_1ms']} (max {client['gc_pause_max_ms']} ms)",
          flush=True)  # fmt: skip
    return row


def run(steps: list[int], seconds: float, clients: int, rounds: int, playback_streams: int
        ) -> dict[str, Any]:  # fmt: skip
    rows: dict[str, list[dict[str, Any]]] = {"echo": [], "switchboard": []}
    playback: list[dict[str, Any]] = []
    per_round: list[dict[str, int]] = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-media-")))
        database_url = stack.enter_context(temporary_postgres_database())
        migrate.upgrade(database_url)
        _business(database_url)
        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
        sides = _servers(stack, database_url, workdir)
        pool = stack.enter_context(ProcessPoolExecutor(clients))
        for round_no in range(rounds):
            print(f"round {round_no + 1} of {rounds}", flush=True)
            per_round.append(_search(pool, clients, sides, steps, seconds, rows))
            playback.append(_playback(pool, clients, sides["playback"], playback_streams,
                                      seconds))  # fmt: skip
        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    best = {
        name: int(statistics.median(r[name] for r in per_round)) for name in ("echo", "switchboard")
    }
    return {"steps": rows, "rounds": per_round, "max_sustained": best, "playback": playback}


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


def _playback_median(result: dict[str, Any], key: str) -> float:
    values = [r["pacing"][key] for r in result.get("playback", [])]
    return statistics.median(values) if values else float("nan")


def checks(result: dict[str, Any]) -> list[Check]:
    best, ratio = result["max_sustained"], result["ratio"]
    jitter = _playback_median(result, "jitter_p99_ms")
    gap = _playback_median(result, "max_gap_ms")
    first = _playback_median(result, "first_audio_p99_ms")
    streams = result.get("target_streams", TARGET_STREAMS)
    dropped = max((r["dropped_streams"] for r in result.get("playback", [])), default=0)
    return [
        Check("Media streams sustained (p99 < 20 ms, none dropped)", f">= {streams}",
              str(best["switchboard"]), best["switchboard"] >= streams),
        Check("Media streams vs a bare asyncio echo, same stack", ">= 0.8x", f"{ratio:.2f}x",
              ratio >= 0.8),
        Check(f"Agent playback at {streams} streams: p99 jitter", "< 10 ms", f"{jitter:.1f} ms",
              0 <= jitter < JITTER_P99_BOUND_MS and not dropped),
        Check(f"Agent playback at {streams} streams: longest gap", "<= 60 ms", f"{gap:.0f} ms",
              0 <= gap <= MAX_GAP_BOUND_MS and not dropped),
        Check("Answer to first agent audio, p99", "< 1 s", f"{first:.0f} ms",
              0 <= first < FIRST_AUDIO_P99_BOUND_MS),
    ]  # fmt: skip


def _gap_sources(playback: list[dict[str, Any]]) -> str:
    """Where the playback phases' gaps could come from, per round (results from before these
    figures were recorded have none: nothing is said)."""
    parts = []
    for i, r in enumerate(playback):
        if "server" not in r:
            continue
        late, client = r["server"]["pacer_lateness"], r["client_sends"]
        parts.append(
            f"round {i + 1}: pacer woke late p99 <= {late['p99_ms_le']:g} ms, max <= "
            f"{late['max_ms_le']:g} ms; {r['server']['gc_gen2']['count']} full collections in "
            f"the server; the load generator's sends late by {client['late_send_max_ms']:g} ms "
            f"at most, its collections {client['gc_pause_max_ms']:g} ms at most"
        )
    if not parts:
        return ""
    return (
        "\nWhere gaps could come from (the server's figures over the whole phase, from its "
        "`/metrics`; the load generator's in the steady window): " + "; ".join(parts) + ".\n"
    )


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
    cpu_rows = []
    for name in ("echo", "switchboard"):
        mine = [r for r in result["steps"][name] if r["sustained"]]
        if mine:
            cpu_rows.append(
                [
                    name,
                    statistics.median(r["server_steady_cpu_us_per_frame"] for r in mine),
                    statistics.median(r["server_cpu_us_per_frame"] for r in mine),
                    statistics.median(r["client_cpu_us_per_frame"] for r in mine),
                ]
            )
    playback_rows = [
        [
            i + 1,
            r["streams"],
            r["pacing"]["jitter_p50_ms"],
            r["pacing"]["jitter_p99_ms"],
            r["pacing"]["max_gap_ms"],
            r["pacing"]["first_audio_p50_ms"],
            r["pacing"]["first_audio_p99_ms"],
            r["dropped_streams"],
        ]
        for i, r in enumerate(result.get("playback", []))
    ]
    steps = sorted({r["streams"] for rows_ in result["steps"].values() for r in rows_})
    cores = result.get("cores", 2)
    return f"""## Media streams

`{result["command"]}` (= `.venv/bin/python -m bench.media_streams`): how many concurrent
calls, each streaming 20 ms μ-law frames at 50 frames/s, the media server sustains with **p99
frame latency under {result["p99_bound_ms"]:g} ms and none dropped**, next to a **bare asyncio
echo WebSocket on the same server stack** (`bench/echo_ws.py`: aiohttp on uvloop under the
media server's own `services/calls/media/gunicorn_conf.py`, {result["workers"]} workers, the
same WebSocket settings). Switchboard runs `EchoAgent` (every frame in answers a frame out) through
the whole pipeline: signed voice webhook, signed upgrade, frame parsing, WAV recording, the
agent, the playout, metrics, the call log (the local VAD runs only for agents that use it, as
the keypad and cascaded ones do; the echo and realtime agents do not: ~1.5 µs a frame).
Load: `simulators/twilio/media_client.py` (asyncio, its WebSocket
`simulators/twilio/ws_client.py`: one write per frame sent, frames handled as they are read)
in {result["clients"]} processes on the same cores; both servers are measured with it.
Calls arrive at {ARRIVALS_PER_S} per second; latency is taken in the steady window when every
call is up. Steps
{", ".join(map(str, steps))} ({result["seconds"]:g} s of audio per call); echo and Switchboard
alternate at each step; {result["rounds_run"]} rounds, the median maximum counts.

{table(["round", "bare echo", "Switchboard"], rows, "lrr")}

At its maximum Switchboard's p99 was {p99:.1f} ms (p50 {p50:.2f} ms). CPU per frame moved (one
in and one out count two), medians over the sustained steps: the server's in the steady window,
the server's over the whole step (call set-up included), and the load generator's:

{table(["side", "server steady µs", "server all µs", "client µs"], cpu_rows, "lrrr")}

**Playback** (after each round): {result.get("target_streams", TARGET_STREAMS)} calls whose agent
talks for the whole call (`bench/talker_agent.py`), the frames' spacing as each caller received
them, and the wait from the voice webhook (the answer) to the first agent frame:

{
        table(
            [
                "round",
                "streams",
                "jitter p50 ms",
                "jitter p99 ms",
                "longest gap ms",
                "first audio p50 ms",
                "first audio p99 ms",
                "dropped",
            ],
            playback_rows,
            "rrrrrrrr",
        )
    }
{_gap_sources(result.get("playback", []))}
Run on {cores} cores shared with PostgreSQL, Redis and the load generator (load average
{result.get("load_average", "?")} at the end). See docs/voice.md for the design and what the
profiles showed.
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.media_streams")
    parser.add_argument("--seconds", type=float, default=5.0, help="audio per call, per step")
    parser.add_argument("--steps", default=DEFAULT_STEPS, help="stream counts to try, in order")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes")
    parser.add_argument("--rounds", type=int, default=3, help="searches; the median max counts")
    parser.add_argument("--playback-streams", type=int, default=TARGET_STREAMS,
                        help="streams of the playback phase (pacing, first audio)")  # fmt: skip
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    print(f"media streams at 50 frames/s, {args.seconds:g} s per step, "
          f"{os.cpu_count()} cores ({COMMAND})", flush=True)  # fmt: skip
    out = run(steps, args.seconds, args.clients, args.rounds, args.playback_streams)
    best = out["max_sustained"]
    ratio = best["switchboard"] / best["echo"] if best["echo"] else 0.0
    out.update(
        command=COMMAND, rounds_run=args.rounds, seconds=args.seconds, clients=args.clients,
        workers=int(os.environ.get("CALLS_MEDIA_WORKERS", "2")), p99_bound_ms=P99_BOUND_MS,
        target_streams=TARGET_STREAMS, ratio=round(ratio, 2), cores=os.cpu_count(),
        load_average=[round(x, 2) for x in os.getloadavg()],
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
