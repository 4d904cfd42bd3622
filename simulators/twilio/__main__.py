"""Run the simulator: python -m simulators.twilio --port 5080 (credentials from the environment)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from simulators.twilio.app import create_app

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "simulator-auth-token"
#: Idle seconds a client's kept-alive connection stays open: longer than any pause of the
#: dialer between two creates, so the SDK's pooled connections are not opened again and again.
KEEPALIVE_S = 75


class SimulatorServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, one worker process with threads (gthread), started from this module.

    One process, because the ledger is that process's memory; the app (its timeline and
    callback threads) is made in the worker, after the fork. gthread instead of werkzeug's
    threaded server: its HTTP parsing and keep-alive handling cost about a quarter less CPU per
    request, and the simulator shares the cores with what it stands in front of. HTTP/1.1 with
    keep-alive, so the dialer's pooled client keeps its connections (as Twilio's API does)."""

    def __init__(self, host: str, port: int, cps: float, account: str, token: str) -> None:
        self._cps, self._account, self._token = cps, account, token
        self._app: Flask | None = None
        self._options: dict[str, Any] = {
            "bind": f"{host}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": 16,
            "keepalive": KEEPALIVE_S,
            "graceful_timeout": 5,
            "loglevel": "warning",
            "errorlog": "-",
            "worker_exit": self._stop,
        }
        super().__init__(prog="python -m simulators.twilio")

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        self._app = create_app(self._account, self._token)
        self._app.extensions["network"].scenario.cps = self._cps
        return self._app

    def _stop(self, _server: Any, _worker: Any) -> None:
        if self._app is not None:
            self._app.extensions["network"].stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.twilio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5080)
    parser.add_argument("--cps", type=float, default=float(os.environ.get("SIM_CPS", "1")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s sim %(levelname)s %(message)s")
    account = os.environ.get("TWILIO_ACCOUNT_SID", DEFAULT_ACCOUNT_SID)
    token = os.environ.get("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN)
    print(f"twilio simulator on http://{args.host}:{args.port} (account {account})", flush=True)
    # gunicorn reads sys.argv for its own options: it is given none.
    sys.argv = sys.argv[:1]
    SimulatorServer(args.host, args.port, args.cps, account, token).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
