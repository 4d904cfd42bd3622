"""Run the simulator: python -m simulators.gmail --port 5090 (client credentials from the env)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from werkzeug.serving import make_server

from simulators.gmail.app import create_app
from simulators.gmail.oauth import DEFAULT_ACCOUNT

DEFAULT_CLIENT_ID = "simulator-client.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "simulator-client-secret"
#: Enough mail for a developer's first sync to find something, small enough to read through.
DEMO_MESSAGES = 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.gmail")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5090)
    parser.add_argument("--demo-messages", type=int, default=DEMO_MESSAGES)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s sim %(levelname)s %(message)s")
    client_id = os.environ.get("GOOGLE_CLIENT_ID", DEFAULT_CLIENT_ID)
    client_secret = os.environ.get("GOOGLE_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
    app = create_app(client_id, client_secret)
    demo = {"count": args.demo_messages, "receipt_ratio": 0.4, "seed": 1, "span_days": 60}
    app.extensions["gmail"].generate({**demo, "email": DEFAULT_ACCOUNT})
    # A threaded server in one process: mailboxes and tokens are this process's memory.
    server = make_server(args.host, args.port, app, threaded=True)
    # shutdown() waits for serve_forever() to return: called from a signal handler on the
    # serving thread itself it would wait forever, so it runs on a thread of its own.
    stop = threading.Thread(target=server.shutdown, daemon=True)

    def on_sigterm(*_: object) -> None:
        if stop.ident is None:  # a second SIGTERM finds shutdown already under way
            stop.start()

    signal.signal(signal.SIGTERM, on_sigterm)
    base = f"http://{args.host}:{args.port}"
    print(
        f"gmail simulator on {base} (client {client_id}; {args.demo_messages} demo messages "
        f"for {DEFAULT_ACCOUNT}; consent at {base}/o/oauth2/v2/auth, token at {base}/token)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
