"""A Redis master, its replica and a Sentinel watching them, on free ports, for a failover
test: ``redis+sentinel://`` clients follow the master Sentinel names."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.support.dedicated import redis_server_binary
from tests.support.services import free_port

SERVICE = "switchboard"


@dataclass
class SentinelSetup:
    master_port: int
    replica_port: int
    sentinel_port: int

    @property
    def url(self) -> str:
        """What ``REDIS_URL`` is set to."""
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel_port, socket_timeout=2, decode_responses=True)

    def master_port_now(self) -> int:
        _, port = self.sentinel().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def failover(self, timeout_s: float = 30) -> None:
        """Promote the replica (Sentinel's FAILOVER); returns once Sentinel names the new
        master and it accepts writes."""
        before = self.master_port_now()
        self.sentinel().execute_command("SENTINEL", "FAILOVER", SERVICE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self.master_port_now()
            if port != before:
                role = redis.Redis(port=port, socket_timeout=2).execute_command("ROLE")
                if role[0] in (b"master", "master"):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"no failover after {timeout_s}s")


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _wait(port: int, timeout_s: float = 15) -> None:
    client = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            client.ping()
            return
        except (redis.RedisError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


@contextmanager
def sentinel_setup() -> Iterator[SentinelSetup]:
    binary = redis_server_binary()
    if binary is None:
        raise FileNotFoundError("no redis-server binary")
    directory = Path(tempfile.mkdtemp(prefix="sb-sentinel-"))
    setup = SentinelSetup(free_port(), free_port(), free_port())
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)]
    config = directory / "sentinel.conf"
    config.write_text(
        f"port {setup.sentinel_port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {setup.master_port} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 10000\n"
    )
    with ExitStack() as stack:
        processes = []
        master = _start([binary, "--port", str(setup.master_port), *common], directory / "m.log")
        processes.append(master)
        _wait(setup.master_port)
        replica = _start(
            [binary, "--port", str(setup.replica_port), *common,
             "--replicaof", "127.0.0.1", str(setup.master_port)], directory / "r.log",
        )  # fmt: skip
        processes.append(replica)
        _wait(setup.replica_port)
        processes.append(_start([binary, str(config), "--sentinel"], directory / "s.log"))
        _wait(setup.sentinel_port)
        stack.callback(lambda: [p.kill() for p in processes])
        # Sentinel must have met the replica before it can promote it.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            replicas = setup.sentinel().execute_command("SENTINEL", "REPLICAS", SERVICE)
            if replicas:
                break
            time.sleep(0.2)
        yield setup
