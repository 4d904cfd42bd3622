"""The whole system as real processes: api, calls, N workers, scheduler, Twilio simulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from libs.common import repositories
from libs.common.db import Database
from libs.common.models import TokenRole
from tests.support import secret_scan
from tests.support.processes import (
    gunicorn_argv,
    running,
    service_env,
    stop_group,
    switchboard_argv,
    wait_for_http,
)
from tests.support.services import free_port
from tests.support.twilio_sim import ACCOUNT_SID, AUTH_TOKEN, Simulator


@dataclass(frozen=True)
class ServiceSpec:
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready_url: str


@dataclass
class Stack:
    api: str
    calls: str
    sim: Simulator
    env: dict[str, str]
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    scheduler_metrics: str = ""
    #: Each worker's Prometheus endpoint, by index.
    worker_metrics: list[str] = field(default_factory=list)
    #: The other processes (simulator, api, calls, scheduler) by name.
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: How each of those is started, so a test can kill one and start it again.
    specs: dict[str, ServiceSpec] = field(default_factory=dict)
    #: Processes started by ``start_service``: stopped when the stack ends.
    restarted: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, index: int, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start worker ``index`` (again); ``wait=False`` returns before it serves, so a test
        can go on while it boots (``wait_for_worker`` later)."""
        port = free_port()
        secret_scan.watch(self.log_dir / f"worker{index}.log")
        log = (self.log_dir / f"worker{index}.log").open("ab")
        process = subprocess.Popen(
            switchboard_argv("worker", "--processes", "1", "--threads", "4",
                             "--metrics-port", str(port)),
            env={**self.env, "dramatiq_prom_db": str(self.log_dir / f"prom{index}"),
                 "PROMETHEUS_MULTIPROC_DIR": str(self.log_dir / f"prom{index}")},
            cwd=Path(__file__).resolve().parents[2], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/metrics"
        if index < len(self.workers):
            self.workers[index], self.worker_metrics[index] = process, url
        else:
            self.workers.append(process)
            self.worker_metrics.append(url)
        if wait:
            self.wait_for_worker(index)
        return process

    def wait_for_worker(self, index: int) -> None:
        wait_for_http(
            self.worker_metrics[index], self.workers[index], self.log_dir / f"worker{index}.log"
        )

    def kill_worker(self, index: int) -> None:
        """SIGKILL the worker's whole process group: no cleanup code runs."""
        process = self.workers[index]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def kill_service(self, name: str) -> None:
        """SIGKILL a service's whole process group (a gunicorn master and its workers)."""
        process = self.services[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def start_service(self, name: str) -> subprocess.Popen[bytes]:
        """Start a killed service again, on the same port, appending to the same log."""
        spec = self.specs[name]
        with spec.log.open("ab") as log:
            process = subprocess.Popen(
                spec.argv, env=spec.env, cwd=Path(__file__).resolve().parents[2], stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.services[name] = process
        self.restarted.append(process)
        wait_for_http(spec.ready_url, process, spec.log)
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.log_dir.glob("*.log"))
        )


@dataclass(frozen=True)
class Business:
    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_business(db: Database, name: str, limit: int = 3) -> Business:
    with db.session() as session:
        business = repositories.create_business(session, name, "UTC", limit)
        _, token = repositories.create_token(session, TokenRole.BUSINESS, business.id)
        session.commit()
        return Business(business.id, token)


@contextmanager
def campaign_stack(
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    workers: int = 2,
    cps: float = 50,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    ports = {name: free_port() for name in ("api", "calls", "media", "sim", "scheduler")}
    api, calls = f"http://127.0.0.1:{ports['api']}", f"http://127.0.0.1:{ports['calls']}"
    sim_url = f"http://127.0.0.1:{ports['sim']}"
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SWITCHBOARD_VAR_DIR=str(tmp_path),
        PUBLIC_BASE_URL=calls,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_API_BASE=sim_url,
        TWILIO_CPS=str(cps),
        API_BIND=f"127.0.0.1:{ports['api']}",
        CALLS_BIND=f"127.0.0.1:{ports['calls']}",
        # The calls service's media server: Twilio streams here (no nginx in front).
        CALLS_MEDIA_BIND=f"127.0.0.1:{ports['media']}",
        MEDIA_STREAM_URL=f"ws://127.0.0.1:{ports['media']}/ws/media",
        SCHEDULER_TICK_S="1",
        SCHEDULER_LOCK_TTL_S="2",
        DIALING_TIMEOUT_S="5",
        CALL_MAX_DURATION_S="20",
        LOG_LEVEL="INFO",
    )
    env.update(extra_env or {})
    specs = {
        "simulator": ServiceSpec(
            [sys.executable, "-m", "simulators.twilio", "--port", str(ports["sim"]),
             "--cps", str(cps)], env, tmp_path / "sim.log", f"{sim_url}/_sim/healthz"),
        "api": ServiceSpec(gunicorn_argv("api"), {**env, "SERVICE_ROLE": "api"},
                           tmp_path / "api.log", f"{api}/readyz"),
        "calls": ServiceSpec(gunicorn_argv("calls"), {**env, "SERVICE_ROLE": "calls"},
                             tmp_path / "calls.log", f"{calls}/readyz"),
        "media": ServiceSpec(gunicorn_argv("calls/media"), {**env, "SERVICE_ROLE": "calls"},
                             tmp_path / "media.log",
                             f"http://127.0.0.1:{ports['media']}/readyz"),
        "scheduler": ServiceSpec(
            switchboard_argv("scheduler", "--metrics-port", str(ports["scheduler"])), env,
            tmp_path / "scheduler.log", f"http://127.0.0.1:{ports['scheduler']}/metrics"),
    }  # fmt: skip
    with ExitStack() as stack:
        services = {
            name: stack.enter_context(running(spec.argv, spec.env, spec.log, spec.ready_url))
            for name, spec in specs.items()
        }
        result = Stack(
            api,
            calls,
            Simulator(sim_url),
            env,
            tmp_path,
            scheduler_metrics=f"http://127.0.0.1:{ports['scheduler']}/metrics",
            services=services,
            specs=specs,
        )
        try:
            for index in range(workers):
                result.start_worker(index)
            yield result
        finally:
            for process in [*result.workers, *result.restarted]:
                stop_group(process)


def wait_for_runs(
    stack: Stack, runs: list[tuple[Business, int]], timeout_s: float = 120
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bodies = [
            requests.get(f"{stack.api}/api/runs/{run_id}", headers=b.headers, timeout=5).json()
            for b, run_id in runs
        ]
        # finished_at, not the status: a canceled run still has its calls in progress to end.
        if all(body["finished_at"] for body in bodies):
            return bodies
        time.sleep(0.25)
    raise AssertionError(f"runs not finished: {bodies}\n{stack.logs()}")
