"""What a client meets in front of Flask: the api's gunicorn, the real nginx config in front of
it, and the dev console of `switchboard run` in front of it too. The calls service is left
down, so nginx's own 502 is reachable under /webhook/ and /ws/."""

from __future__ import annotations

import http.client
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.nginx import nginx_binary, render
from tests.support.processes import gunicorn_argv, running, service_env
from tests.support.services import free_port


@dataclass(frozen=True)
class Edge:
    #: Base URLs: the api's gunicorn directly, nginx, the dev console.
    gunicorn: str
    nginx: str
    console: str
    log_dir: Path


@dataclass(frozen=True)
class RawResponse:
    status: int
    content_type: str
    body: bytes


@contextmanager
def running_edge(database_url: str, redis_url: str, tmp: Path) -> Iterator[Edge]:
    ports = {name: free_port() for name in ("api", "calls", "http", "https", "console")}
    api = f"http://127.0.0.1:{ports['api']}"
    conf = render(tmp, {"api": ports["api"], "calls": ports["calls"]}, ports["http"],
                  ports["https"])  # fmt: skip
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SWITCHBOARD_VAR_DIR=str(tmp),
        API_BIND=f"127.0.0.1:{ports['api']}",
        SERVICE_ROLE="api",
    )
    nginx = f"http://127.0.0.1:{ports['http']}"
    console = f"http://127.0.0.1:{ports['console']}"
    console_argv = [sys.executable, "-m", "libs.common.dev_console",
                    "--port", str(ports["console"]), "--api", api]  # fmt: skip
    with ExitStack() as stack:
        stack.enter_context(running(gunicorn_argv("api"), env, tmp / "api.log", f"{api}/healthz"))
        stack.enter_context(
            running([nginx_binary(), "-c", str(conf), "-p", str(tmp), "-g", "daemon off;"], env,
                    tmp / "nginx.log", f"{nginx}/api/healthz")
        )  # fmt: skip
        stack.enter_context(running(console_argv, env, tmp / "console.log", f"{console}/"))
        yield Edge(api, nginx, console, tmp)


def raw_get(base: str, target: str, headers: dict[str, str] | None = None) -> RawResponse:
    """GET ``target`` exactly as written: no client resolves its dots or re-encodes it."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return RawResponse(response.status, response.getheader("Content-Type") or "",
                           response.read())  # fmt: skip
    finally:
        connection.close()
