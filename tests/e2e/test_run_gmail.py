"""`switchboard run` with no Google client configured: the Gmail simulator stands in for Google,
the browser's consent round trip comes back through the console to the api and on to the SPA,
and the worker it starts consumes the `receipts` queue (a sync finishes)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.processes import (
    service_env,
    start_switchboard_run,
    switchboard_argv,
    wait_for_http,
)

pytestmark = pytest.mark.e2e


def _switchboard(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        switchboard_argv(*args), env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


def test_connect_and_sync_against_the_embedded_gmail_simulator(tmp_path: Path) -> None:
    env = service_env(SWITCHBOARD_VAR_DIR=str(tmp_path))
    env.pop("APP_ENV")
    for name in ("GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET", "PUBLIC_BASE_URL"):
        env.pop(name, None)
    log_path = tmp_path / "run.log"
    process, ports = start_switchboard_run(env, log_path)
    try:
        site = f"http://127.0.0.1:{ports[0]}"
        # The SPA's origin, passing /api/ on (nginx in production): Google sends the browser
        # back there, and the api sends it on to the SPA's /receipts page.
        console = f"http://127.0.0.1:{ports[6]}"
        wait_for_http(f"{site}/readyz", process, log_path, timeout_s=90)
        wait_for_http(f"{console}/", process, log_path, timeout_s=30)
        cli_env = service_env(SWITCHBOARD_VAR_DIR=str(tmp_path))
        business_id = _switchboard(cli_env, "business", "create", "--name", "Acme").split()[1]
        token = _switchboard(cli_env, "token", "create", "--business-id", business_id)
        auth = {"Authorization": f"Bearer {token}"}

        browser = requests.Session()  # the consent is bound to the browser that asked (a cookie)
        url = browser.get(f"{site}/api/gmail/connect", headers=auth, timeout=10).json()["url"]
        assert url.startswith(f"http://127.0.0.1:{ports[5]}/o/oauth2/v2/auth?")
        google = requests.get(url, allow_redirects=False, timeout=10)
        callback = google.headers["Location"]
        assert callback.startswith(f"{console}/api/gmail/callback?"), callback
        back = browser.get(callback, allow_redirects=False, timeout=30)
        assert back.status_code == 302, back.text
        assert back.headers["Location"] == f"{console}/receipts?gmail=connected"
        assert "<html" in requests.get(back.headers["Location"], timeout=10).text.lower()
        [connection] = requests.get(
            f"{site}/api/gmail/connections", headers=auth, timeout=10
        ).json()["items"]
        assert connection["email"] == "owner@example.com"

        queued = requests.post(f"{site}/api/receipts/sync", headers=auth, timeout=10)
        assert queued.status_code == 202, queued.text
        job_url = f"{site}/api/jobs/{queued.json()['job']['id']}"
        deadline = time.monotonic() + 90
        job = queued.json()["job"]
        while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = requests.get(job_url, headers=auth, timeout=10).json()
        assert job["status"] == "succeeded", (job, log_path.read_text()[-3000:])
        receipts = requests.get(f"{site}/api/receipts", headers=auth, timeout=10).json()
        assert receipts["total"] > 0
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    assert code == 0, log_path.read_text()[-3000:]
