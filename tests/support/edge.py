"""What a client meets in front of Flask: the api's gunicorn, the real nginx config in front of
it, and the dev console of `switchboard run` in front of it too. The calls service is left
down, so nginx's own 502 is reachable under /webhook/ and /ws/."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from probe.raw import RawResponse, raw_exchange, raw_get
from tests.support.nginx import nginx_binary, render
from tests.support.processes import gunicorn_argv, running, service_env
from tests.support.services import free_port

__all__ = ["Edge", "RawResponse", "raw_exchange", "raw_get", "running_edge"]


@dataclass(frozen=True)
class Edge:
    #: Base URLs: the api's gunicorn directly, nginx, the dev console.
    gunicorn: str
    nginx: str
    console: str
    log_dir: Path


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
    console_argv = [sys.executable, "-m", "devtools.dev_console",
                    "--port", str(ports["console"]), "--api", api]  # fmt: skip
    with ExitStack() as stack:
        stack.enter_context(running(gunicorn_argv("api"), env, tmp / "api.log", f"{api}/healthz"))
        stack.enter_context(
            running([nginx_binary(), "-c", str(conf), "-p", str(tmp), "-g", "daemon off;"], env,
                    tmp / "nginx.log", f"{nginx}/api/healthz")
        )  # fmt: skip
        stack.enter_context(running(console_argv, env, tmp / "console.log", f"{console}/"))
        yield Edge(api, nginx, console, tmp)
