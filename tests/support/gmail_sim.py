"""The Gmail simulator in-process (a thread) for tests, with helpers for its /_sim/ controls."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from werkzeug.serving import make_server

from simulators.gmail.app import create_app
from tests.support import secret_scan
from tests.support.processes import running, service_env
from tests.support.services import free_port

CLIENT_ID = "test-client.apps.googleusercontent.com"
CLIENT_SECRET = secret_scan.remember("test-client-secret")
EMAIL = "owner@example.com"
SCOPE = "https://www.googleapis.com/auth/gmail.readonly"


@dataclass
class GmailSimulator:
    base_url: str

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def auth_uri(self) -> str:
        return f"{self.base_url}/o/oauth2/v2/auth"

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.post(f"{self.base_url}/_sim/{path}", json=body or {}, timeout=30)
        response.raise_for_status()
        return response.json()

    def generate(
        self,
        count: int,
        receipt_ratio: float = 0.4,
        attachment_ratio: float = 0.5,
        seed: int = 1,
        email: str = EMAIL,
        start: str | None = None,
    ) -> dict[str, Any]:
        """Deterministic mail (same seed and start, same mail); returns the new historyId."""
        body = {"count": count, "receipt_ratio": receipt_ratio, "seed": seed, "email": email}
        body |= {"attachment_ratio": attachment_ratio} | ({"start": start} if start else {})
        data: dict[str, Any] = self._post("mailbox/generate", body)
        return data

    def add_messages(self, messages: list[dict[str, Any]], email: str = EMAIL) -> list[str]:
        """Deliver ``messages`` ({from, subject, text, html?, date?, attachments?}); their ids."""
        ids: list[str] = self._post("messages", {"email": email, "messages": messages})["ids"]
        return ids

    def ground_truth(self, email: str = EMAIL) -> dict[str, Any]:
        url = f"{self.base_url}/_sim/ground_truth"
        response = requests.get(url, params={"email": email}, timeout=10)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def counts(self) -> dict[str, Any]:
        data: dict[str, Any] = requests.get(f"{self.base_url}/_sim/counts", timeout=10).json()
        return data

    def reset_counts(self) -> None:
        self._post("counts/reset")

    def expire_history(self, email: str | None = None) -> None:
        self._post("history/expire", {"email": email} if email else {})

    def revoke(self) -> None:
        """Revoke every refresh token (and its access tokens)."""
        self._post("tokens/revoke")

    def expire_access_tokens(self) -> None:
        self._post("tokens/expire_access")

    def scenario(self, **raw: Any) -> None:
        self._post("scenario", raw)

    def issue_refresh_token(self, email: str = EMAIL, scope: str = SCOPE) -> str:
        """A connected account's refresh token, without the consent round trip."""
        token: str = self._post("tokens/issue", {"email": email, "scope": scope})["refresh_token"]
        return token

    def reset(self) -> None:
        self._post("reset")

    def credentials(self, refresh_token: str) -> Credentials:
        """What the app stores for a connected account: no access token until the first call."""
        return Credentials(  # type: ignore[no-untyped-call]
            token=None,
            refresh_token=refresh_token,
            token_uri=self.token_uri,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
        )

    def service(self, credentials: Credentials) -> Any:
        """The real googleapiclient Gmail service, pointed at this simulator."""
        return build(
            "gmail",
            "v1",
            credentials=credentials,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": self.base_url},
        )


@contextmanager
def gmail_simulator_thread() -> Iterator[GmailSimulator]:
    app = create_app(CLIENT_ID, CLIENT_SECRET)
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    # A short poll interval: shutdown() waits up to one poll, once per test.
    serve = {"poll_interval": 0.05}
    thread = threading.Thread(target=server.serve_forever, kwargs=serve, daemon=True)
    thread.start()
    try:
        yield GmailSimulator(f"http://127.0.0.1:{port}")
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def gmail_simulator_process(log_dir: Path) -> Iterator[GmailSimulator]:
    """The simulator in its own process, as benchmarks need it: its work must not share the
    measuring process's GIL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "simulators.gmail", "--port", str(port), "--demo-messages", "0"]
    env = service_env(GOOGLE_CLIENT_ID=CLIENT_ID, GOOGLE_CLIENT_SECRET=CLIENT_SECRET)
    with running(argv, env, log_dir / "gmail-sim.log", f"{url}/_sim/healthz"):
        yield GmailSimulator(url)
