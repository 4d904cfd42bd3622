"""Soak: the whole stack under mixed load for a while, with memory and file-descriptor growth
per process measured and bounded.

Load, all at once: campaigns (a run of 30 leads started every 30 s: provider calls and their
signed status webhooks), inbound calls (10 concurrent media streams, 5 s each, back to back),
Gmail syncs (20 new messages and a sync every 20 s). Every 10 s each service's processes are
sampled (RSS, open file descriptors). Growth is the median over the run's second fifth (after
warm-up: caches, pools and lazy imports fill in the first) against the median over its last
fifth; a process growing beyond the bound fails the soak, as do a dropped stream or an error.

    .venv/bin/python -m bench.soak [--minutes 15]        (make soak)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import redis
import requests

from bench.support import table, write_result
from libs.common import migrate
from libs.common.crypto import generate_key, secret_box
from libs.common.db import Database
from libs.common.models import GmailConnection, PhoneNumber
from libs.common.settings import Settings
from simulators.twilio.media_client import Target, run_streams
from tests.support.gmail_sim import (
    CLIENT_ID,
    CLIENT_SECRET,
    GmailSimulator,
    gmail_simulator_process,
)
from tests.support.services import REDIS_TEST_URL, temporary_postgres_database
from tests.support.stack import Business, Stack, campaign_stack, make_business
from tests.support.twilio_sim import AUTH_TOKEN

COMMAND = "make soak"
NUMBER = "+14155550000"
#: A process may grow this much after warm-up (RSS: the larger of the two), no more.
RSS_BOUND_MB, RSS_BOUND_SHARE, FD_BOUND = 40.0, 0.25, 25
SAMPLE_EVERY_S = 10


def _processes(stack: Stack) -> dict[str, list[psutil.Process]]:
    roots = {**stack.services, **{f"worker{i}": p for i, p in enumerate(stack.workers)}}
    out = {}
    for name, popen in roots.items():
        root = psutil.Process(popen.pid)
        out[name] = [root, *root.children(recursive=True)]
    return out


def _sample(stack: Stack) -> dict[str, dict[str, float]]:
    sample = {}
    for name, processes in _processes(stack).items():
        rss = fds = 0.0
        for process in processes:
            try:
                rss += process.memory_info().rss / 2**20
                fds += process.num_fds()
            except psutil.Error:
                pass
        sample[name] = {"rss_mb": round(rss, 1), "fds": fds}
    return sample


class Load:
    def __init__(self, stack: Stack, business: Business, stop: threading.Event) -> None:
        self.stack, self.business, self.stop = stack, business, stop
        self.counts = {"runs": 0, "streams": 0, "streams_failed": 0, "syncs": 0, "sync_409": 0}
        self.errors: list[str] = []

    def every(self, period_s: float, action: Any) -> threading.Thread:
        def loop() -> None:
            while not self.stop.is_set():
                try:
                    action()
                except Exception as exc:  # the soak reports, it must not die on one error
                    self.errors.append(f"{action.__name__}: {type(exc).__name__}: {exc}"[:300])
                self.stop.wait(period_s)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def campaign(self) -> None:
        n = self.counts["runs"]
        leads = [{"phone": f"+1415666{n % 10}{i:03d}"} for i in range(30)]
        api, headers = self.stack.api, self.business.headers
        requests.post(f"{api}/api/leads/bulk", json={"leads": leads}, headers=headers,
                      timeout=10).raise_for_status()  # fmt: skip
        run = requests.post(
            f"{api}/api/runs",
            headers=headers,
            timeout=10,
            json={"name": f"soak {n}", "filter": {}, "window": {"start": "00:00", "end": "23:59"}},
        )
        run.raise_for_status()
        requests.post(f"{api}/api/runs/{run.json()['id']}/start", headers=headers,
                      timeout=10).raise_for_status()  # fmt: skip
        self.counts["runs"] += 1

    def streams(self) -> None:
        target = Target("", f"{self.stack.calls}/webhook/twilio/voice", AUTH_TOKEN, NUMBER)
        results = asyncio.run(run_streams(target, 10, seconds=5, ramp_s=1))
        self.counts["streams"] += len(results)
        self.counts["streams_failed"] += sum(1 for r in results if not r.ok)

    def sync(self, gsim: GmailSimulator) -> Any:
        def sync_receipts() -> None:
            gsim.generate(20, seed=int(time.time()))
            url, headers = f"{self.stack.api}/api/receipts/sync", self.business.headers
            response = requests.post(url, headers=headers, json={}, timeout=10)
            if response.status_code == 409:
                self.counts["sync_409"] += 1
            else:
                response.raise_for_status()
                self.counts["syncs"] += 1

        return sync_receipts


def soak(minutes: float) -> dict[str, Any]:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        database_url = stack.enter_context(temporary_postgres_database())
        migrate.upgrade(database_url)
        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
        gsim = stack.enter_context(gmail_simulator_process(workdir))
        key = generate_key()
        google = {"GOOGLE_CLIENT_ID": CLIENT_ID, "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
                  "GOOGLE_AUTH_URI": gsim.auth_uri, "GOOGLE_TOKEN_URI": gsim.token_uri,
                  "GMAIL_API_ENDPOINT": gsim.base_url, "ENCRYPTION_KEYS": key,
                  "LOG_LEVEL": "WARNING"}  # fmt: skip
        running = stack.enter_context(
            campaign_stack(
                database_url, REDIS_TEST_URL, workdir, workers=2, cps=50, extra_env=google
            )
        )
        running.sim.scenario(default={"ring_s": 0.2, "talk_s": 1.0})
        db = Database(database_url)
        business = make_business(db, "Soak Co", limit=5)
        box = secret_box(Settings(encryption_keys=key))
        with db.session() as session:
            session.add(PhoneNumber(business_id=business.id, number_e164=NUMBER))
            session.add(GmailConnection(business_id=business.id, email="owner@example.com",
                                        refresh_token_encrypted=box.encrypt(
                                            gsim.issue_refresh_token())))  # fmt: skip
            session.commit()
        stop = threading.Event()
        load = Load(running, business, stop)
        threads = [load.every(30, load.campaign), load.every(0, load.streams),
                   load.every(20, load.sync(gsim))]  # fmt: skip
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        end = started + minutes * 60
        while time.monotonic() < end:
            samples.append({"t": round(time.monotonic() - started), **_sample(running)})
            print(f"  t={samples[-1]['t']:>4} s  " + "  ".join(
                f"{k} {v['rss_mb']:.0f}MB/{v['fds']:.0f}fd" for k, v in samples[-1].items()
                if k != "t"), flush=True)  # fmt: skip
            time.sleep(min(SAMPLE_EVERY_S, max(0.0, end - time.monotonic())))
        samples.append({"t": round(time.monotonic() - started), **_sample(running)})
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        db.dispose()
    return _verdict(samples, load, minutes)


def _window(samples: list[dict[str, Any]], name: str, key: str, start: float,
            stop: float) -> float:  # fmt: skip
    """The median of one figure over a slice of the run: open streams and in-flight calls move
    single samples by dozens of descriptors, medians see the trend."""
    n = len(samples)
    chosen = samples[int(n * start) : max(int(n * stop), int(n * start) + 1)]
    return float(statistics.median(s[name][key] for s in chosen))


def _verdict(samples: list[dict[str, Any]], load: Load, minutes: float) -> dict[str, Any]:
    rows, failed = [], []
    for name in (k for k in samples[-1] if k != "t"):
        # After warm-up (the second fifth of the run) against the end (the last fifth).
        rss_warm = _window(samples, name, "rss_mb", 0.2, 0.4)
        rss_end = _window(samples, name, "rss_mb", 0.8, 1.0)
        fds_warm = _window(samples, name, "fds", 0.2, 0.4)
        fds_end = _window(samples, name, "fds", 0.8, 1.0)
        rss_bound = max(RSS_BOUND_MB, rss_warm * RSS_BOUND_SHARE)
        ok = rss_end - rss_warm <= rss_bound and fds_end - fds_warm <= FD_BOUND
        rows.append({"process": name, "rss_mb_after_warmup": rss_warm, "rss_mb_end": rss_end,
                     "rss_growth_mb": round(rss_end - rss_warm, 1),
                     "rss_bound_mb": round(rss_bound, 1), "fds_after_warmup": fds_warm,
                     "fds_end": fds_end, "fd_growth": fds_end - fds_warm, "ok": ok})  # fmt: skip
        if not ok:
            failed.append(name)
    return {"minutes": minutes, "load": load.counts, "errors": load.errors[:20], "rows": rows,
            "failed": failed, "samples": samples, "command": COMMAND}  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    """docs/benchmarks.md's section: growth per process against its bound."""
    load = result["load"]
    rows = [
        [r["process"], f"{r['rss_mb_after_warmup']:.0f} → {r['rss_mb_end']:.0f} MB",
         f"{r['rss_growth_mb']:+.1f} MB ({r['rss_bound_mb']:.0f})",
         f"{r['fds_after_warmup']:.0f} → {r['fds_end']:.0f} (+{FD_BOUND})",
         "ok" if r["ok"] else "**grew**"]
        for r in result["rows"]
    ]  # fmt: skip
    header = ["process", "RSS after warm-up → end", "growth (bound)",
              "descriptors after warm-up → end (bound)", ""]  # fmt: skip
    return f"""## Soak

`{result["command"]}` (= `.venv/bin/python -m bench.soak --minutes {result["minutes"]:g}`, not in
`make bench`): the whole stack (api, calls, two workers, scheduler, Twilio and Gmail simulators;
PostgreSQL and Redis) under mixed load: a 30-lead campaign started every 30 s, 10 concurrent
inbound media streams of 5 s each back to back, 20 new Gmail messages and a sync every 20 s.
Each service's processes are sampled every 10 s; growth is the median of the run's second fifth
(after warm-up) against the median of its last fifth. Bound: RSS +{RSS_BOUND_MB:g} MB or
+{RSS_BOUND_SHARE:.0%} (the larger), +{FD_BOUND} file descriptors; a dropped stream or a load
error fails it too. This run: {load["runs"]} runs, {load["streams"]:,} media streams
({load["streams_failed"]} dropped), {load["syncs"]} syncs, {len(result["errors"])} errors.

{table(header, rows, "lrrrl")}
"""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=15.0)
    args = parser.parse_args()
    print(f"soak for {args.minutes:g} min ({COMMAND})", flush=True)
    result = soak(args.minutes)
    print(f"\nload: {result['load']}; errors: {len(result['errors'])}")
    for row in result["rows"]:
        print(f"  {row['process']:>10}: RSS {row['rss_mb_after_warmup']:.0f} → "
              f"{row['rss_mb_end']:.0f} MB (+{row['rss_growth_mb']:.1f}, bound "
              f"{row['rss_bound_mb']:.0f}), fds {row['fds_after_warmup']:.0f} → "
              f"{row['fds_end']:.0f} (bound +{FD_BOUND})  "
              f"{'ok' if row['ok'] else 'GROWING'}")  # fmt: skip
    for error in result["errors"]:
        print("  error:", error)
    write_result("soak", result)  # stamped with when it was measured, like every benchmark
    broken = result["failed"] or result["load"]["streams_failed"] or result["errors"]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
