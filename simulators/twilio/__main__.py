"""Run the simulator: python -m simulators.twilio --port 5080 (credentials from the environment)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from werkzeug.serving import WSGIRequestHandler, make_server

from simulators.twilio.app import create_app

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "simulator-auth-token"


class KeepAlive(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # A log line per request (werkzeug's default) was a tenth of the simulator's CPU under
        # the dialer benchmark; Twilio keeps no such log. Refusals and errors are still logged.
        if str(code).isdigit() and int(code) >= 400:
            super().log_request(code, size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.twilio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5080)
    parser.add_argument("--cps", type=float, default=float(os.environ.get("SIM_CPS", "1")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s sim %(levelname)s %(message)s")
    account = os.environ.get("TWILIO_ACCOUNT_SID", DEFAULT_ACCOUNT_SID)
    token = os.environ.get("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN)
    app = create_app(account, token)
    app.extensions["network"].scenario.cps = args.cps
    # A threaded server in one process: the ledger is this process's memory. HTTP/1.1, so the
    # dialer's pooled client keeps its connections (as Twilio's API does): a new TCP connection
    # per request would make the simulator, not Switchboard, what a benchmark measures.
    server = make_server(args.host, args.port, app, threaded=True, request_handler=KeepAlive)
    # shutdown() waits for serve_forever() to return: called from the handler, which runs on
    # the serving thread, it would wait for itself. Another thread asks it instead.
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()
    )
    print(f"twilio simulator on http://{args.host}:{args.port} (account {account})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    app.extensions["network"].stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
