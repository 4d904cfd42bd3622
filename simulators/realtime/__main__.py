"""Run the realtime model simulator: python -m simulators.realtime --port 5070."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from simulators.realtime.app import create_app

#: The key `switchboard run` gives the calls service for the simulator (it accepts any).
DEFAULT_API_KEY = "sk-simulator"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.realtime")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5070)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s realtime-sim %(message)s")
    print(f"realtime model simulator on ws://{args.host}:{args.port}/v1/realtime", flush=True)
    web.run_app(create_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
