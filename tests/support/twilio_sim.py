"""The Twilio simulator in-process (a thread) for unit tests, or as a process for e2e tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from werkzeug.serving import make_server

from libs.common.settings import Settings
from simulators.twilio.app import create_app
from tests.support import secret_scan
from tests.support.services import free_port

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = secret_scan.remember("test-auth-token-0123456789")


@dataclass
class Simulator:
    base_url: str

    def scenario(self, **raw: Any) -> None:
        response = requests.post(f"{self.base_url}/_sim/scenario", json=raw, timeout=5)
        response.raise_for_status()

    def ledger(self) -> dict[str, Any]:
        data: dict[str, Any] = requests.get(f"{self.base_url}/_sim/ledger", timeout=10).json()
        return data

    def reset(self) -> None:
        requests.post(f"{self.base_url}/_sim/reset", timeout=5).raise_for_status()


@contextmanager
def simulator_thread(cps: float = 100.0) -> Iterator[Simulator]:
    app = create_app(ACCOUNT_SID, AUTH_TOKEN)
    app.extensions["network"].scenario.cps = cps
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Simulator(f"http://127.0.0.1:{port}")
    finally:
        server.shutdown()
        app.extensions["network"].stop()


def peak_concurrency(calls: list[dict[str, Any]]) -> int:
    """Most calls live at once on the provider side (from start to end), over the ledger."""
    edges = []
    for call in calls:
        if call["ended_at"] is None:
            edges += [(call["start_at"], 1)]
        else:
            edges += [(call["start_at"], 1), (call["ended_at"], -1)]
    peak = live = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        live += step
        peak = max(peak, live)
    return peak


def worker_settings_with_simulator(settings: Settings, sim: Simulator) -> Settings:
    """A worker's settings whose Twilio client talks to ``sim``; callbacks go nowhere."""
    return settings.with_overrides(
        service_role="worker",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_api_base=sim.base_url,
        public_base_url="http://127.0.0.1:9",  # nothing listens: callbacks are not under test
        twilio_cps=1000,
    )
