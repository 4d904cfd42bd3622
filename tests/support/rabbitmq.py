"""RabbitMQ for the tests: a virtual host of the shared server per test session, and a
dedicated node a chaos test may kill and restart.

Several test runs share the machine's RabbitMQ at once, so a session works in a virtual host
of its own (created and deleted through the management API) and never touches another's
queues. A scenario that restarts RabbitMQ gets a node of its own on free ports instead
(``dedicated_rabbitmq``): the shared one is never stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pika
import requests

from tests.support.services import free_port

#: The shared server's AMQP listener and management API (guest is allowed from localhost).
SHARED_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
SHARED_PORT = int(os.environ.get("TEST_RABBITMQ_PORT", "5672"))
MANAGEMENT_URL = os.environ.get("TEST_RABBITMQ_MANAGEMENT_URL", f"http://{SHARED_HOST}:15672")
USER, PASSWORD = "guest", "guest"


def reachable() -> bool:
    """The shared server answers AMQP and its management API (which creates the vhosts)."""
    try:
        parameters = pika.ConnectionParameters(
            SHARED_HOST, SHARED_PORT, credentials=pika.PlainCredentials(USER, PASSWORD),
            socket_timeout=2, stack_timeout=3, connection_attempts=1,
        )  # fmt: skip
        pika.BlockingConnection(parameters).close()
        response = requests.get(f"{MANAGEMENT_URL}/api/overview", auth=(USER, PASSWORD), timeout=3)
        return response.status_code == 200
    except (pika.exceptions.AMQPError, OSError, requests.RequestException):
        return False


@contextmanager
def temporary_vhost() -> Iterator[str]:
    """An AMQP URL on a new virtual host of the shared server; the vhost is deleted after."""
    name = f"switchboard-test-{uuid.uuid4().hex[:10]}"
    path = quote(name, safe="")
    auth = (USER, PASSWORD)
    requests.put(f"{MANAGEMENT_URL}/api/vhosts/{path}", auth=auth, timeout=10).raise_for_status()
    try:
        requests.put(
            f"{MANAGEMENT_URL}/api/permissions/{path}/{USER}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
            auth=auth,
            timeout=10,
        ).raise_for_status()
        yield f"amqp://{USER}:{PASSWORD}@{SHARED_HOST}:{SHARED_PORT}/{path}"
    finally:
        requests.delete(f"{MANAGEMENT_URL}/api/vhosts/{path}", auth=auth, timeout=30)


class DedicatedRabbitmq:
    """A RabbitMQ node of its own (name, ports, data directory), started with the machine's
    ``rabbitmq-server``. Its data directory outlives a kill, so durable queues and persistent
    messages come back with the node, as on a real restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.dist_port = free_port()
        self.name = f"sb{uuid.uuid4().hex[:8]}@localhost"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://{USER}:{PASSWORD}@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        config = self.directory / "rabbitmq.conf"
        config.write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            # A shared 2-core machine: the default 40 % memory watermark is fine, but the disk
            # alarm (50 MB free by default) must not block publishers when /tmp is busy.
            "disk_free_limit.absolute = 1MB\n"
        )
        (self.directory / "enabled_plugins").write_text("[].\n")
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(config.with_suffix("")),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.directory / "rabbitmq.pid"),
            "ERL_CRASH_DUMP": str(self.directory / "erl_crash.dump"),
            # Erlang's distribution on the node's own port range, not the shared node's.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-kernel inet_dist_listen_min "
            f"{self.dist_port} -kernel inet_dist_listen_max {self.dist_port}",
        }

    def start(self, timeout_s: float = 90) -> None:
        """Start (again) on the same ports and data directory."""
        log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(
            [rabbitmq_server_binary() or "rabbitmq-server"], env=self._env(), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=self.directory,
        )  # fmt: skip
        parameters = pika.URLParameters(self.url)
        parameters.connection_attempts, parameters.socket_timeout = 1, 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: {self.log()}")
            try:
                pika.BlockingConnection(parameters).close()
                return
            except (pika.exceptions.AMQPError, OSError):
                time.sleep(0.25)
        raise RuntimeError(f"RabbitMQ on port {self.port} not ready after {timeout_s}s")

    def kill(self) -> None:
        """SIGKILL of the whole node (beam and epmd-less children): no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


#: Debian's server script itself: ``/usr/sbin/rabbitmq-server`` is a wrapper that switches to
#: the rabbitmq user, who could not write the node's temporary directory.
DEBIAN_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def rabbitmq_server_binary() -> str | None:
    if os.access(DEBIAN_SERVER, os.X_OK):
        return DEBIAN_SERVER
    return shutil.which("rabbitmq-server")


@contextmanager
def dedicated_rabbitmq() -> Iterator[DedicatedRabbitmq]:
    if rabbitmq_server_binary() is None:
        raise FileNotFoundError("no rabbitmq-server binary")
    directory = Path(tempfile.mkdtemp(prefix="sb-rmq-"))
    node = DedicatedRabbitmq(directory)
    try:
        node.start()
        yield node
    finally:
        node.kill()
        shutil.rmtree(directory, ignore_errors=True)
