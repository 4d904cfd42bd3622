"""Starting the real services as processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

from libs.common.settings import ROOT
from tests.support import secret_scan
from tests.support.services import free_port


def service_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL")
    }
    env.update(PYTHONUNBUFFERED="1", APP_ENV="test")
    env.update(overrides)
    return env


@contextmanager
def running(
    argv: list[str], env: Mapping[str, str], log_path: Path, ready_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process (in its own group) until the block ends; wait for ``ready_url`` first."""
    secret_scan.watch(log_path)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, env=dict(env), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            if ready_url:
                wait_for_http(ready_url, process, log_path)
            yield process
        finally:
            stop_group(process)


def stop_group(process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=5)


def wait_for_http(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url}: process exited\n{log_path.read_text()[-4000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout_s}s\n{log_path.read_text()[-4000:]}")


def gunicorn_argv(service: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", f"services/{service}/gunicorn_conf.py"]


def switchboard_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "libs.cli", *args]


#: The ports `switchboard run` is given, in the order start_switchboard_run returns them.
RUN_PORT_OPTIONS = ("--api-port", "--calls-port", "--worker-metrics-port",
                    "--scheduler-metrics-port", "--simulator-port", "--gmail-simulator-port",
                    "--console-port", "--media-port", "--realtime-simulator-port")  # fmt: skip


def start_switchboard_run(
    env: Mapping[str, str], log_path: Path
) -> tuple[subprocess.Popen[bytes], list[int]]:
    """`switchboard run` (the embedded stack) on free ports, its output to ``log_path``; the
    caller stops it (SIGINT, as Ctrl-C). Ports in RUN_PORT_OPTIONS order."""
    ports = [free_port() for _ in RUN_PORT_OPTIONS]
    argv = [*switchboard_argv("run")]
    for option, port in zip(RUN_PORT_OPTIONS, ports, strict=True):
        argv += [option, str(port)]
    secret_scan.watch(log_path)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, env=dict(env), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    return process, ports
