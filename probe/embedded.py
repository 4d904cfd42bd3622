"""The embedded stack for the probe: `switchboard run` on free ports in a directory of its own
(SQLite, embedded Redis, the Twilio and Gmail simulators), two businesses and an operator made
with the `switchboard` command, its whole output kept for the secrets check."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from libs.common.settings import ROOT
from probe.target import Target
from simulators.twilio.__main__ import DEFAULT_AUTH_TOKEN

#: A's number: the Twilio simulator's calls to it reach business A.
A_NUMBER = "+14155550142"
LABEL = "embedded stack (`switchboard run`: SQLite, embedded Redis, Twilio and Gmail simulators)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "libs.cli", *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return result.stdout.strip()


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"switchboard run exited; see {log}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s:g} s; see {log}")


@contextmanager
def embedded_target(var_dir: Path, log: Path) -> Iterator[Target]:
    var_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "APP_ENV", "PUBLIC_BASE_URL",
                        "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "GOOGLE_CLIENT_ID")}  # fmt: skip
    env.update(SWITCHBOARD_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
    ports = {name: _free_port() for name in ("api", "calls", "worker", "scheduler", "twilio",
                                             "gmail", "console", "media", "realtime")}  # fmt: skip
    argv = [sys.executable, "-m", "libs.cli", "run",
            "--api-port", str(ports["api"]), "--calls-port", str(ports["calls"]),
            "--worker-metrics-port", str(ports["worker"]),
            "--scheduler-metrics-port", str(ports["scheduler"]),
            "--simulator-port", str(ports["twilio"]),
            "--gmail-simulator-port", str(ports["gmail"]),
            "--console-port", str(ports["console"]), "--media-port", str(ports["media"]),
            "--realtime-simulator-port", str(ports["realtime"])]  # fmt: skip
    console, calls = f"http://127.0.0.1:{ports['console']}", f"http://127.0.0.1:{ports['calls']}"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        media = f"http://127.0.0.1:{ports['media']}"
        for url in (f"{console}/", f"http://127.0.0.1:{ports['api']}/readyz", f"{calls}/readyz",
                    f"{media}/readyz"):  # fmt: skip
            _wait(url, process, log)
        tokens = {}
        for name in ("A", "B"):
            business = json.loads(_cli(env, "business", "create", "--name", f"Probe {name}",
                                       "--json"))  # fmt: skip
            tokens[name] = _cli(env, "token", "create", "--business-id", str(business["id"]))
            if name == "A":
                _cli(env, "business", "add-number", "--business-id", str(business["id"]),
                     "--number", A_NUMBER)  # fmt: skip
        operator = _cli(env, "token", "create", "--operator", "--name", "probe")
        yield Target(
            api=console,
            calls=calls,
            business_a=tokens["A"],
            business_b=tokens["B"],
            operator=operator,
            twilio_auth_token=DEFAULT_AUTH_TOKEN,
            a_number=A_NUMBER,
            logs=[log],
            may_place_calls=True,
            label=LABEL,
            stream_url=f"ws://127.0.0.1:{ports['media']}/ws/media",
        )
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C: `switchboard run` stops its children
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
