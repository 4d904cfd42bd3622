"""`switchboard run`: the embedded stack comes up on a fresh directory and stops cleanly."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.processes import service_env, start_switchboard_run, wait_for_http

pytestmark = pytest.mark.e2e


def test_run_serves_both_services_and_ctrl_c_leaves_no_orphans(tmp_path: Path) -> None:
    env = service_env(SWITCHBOARD_VAR_DIR=str(tmp_path))
    env.pop("APP_ENV")
    log_path = tmp_path / "run.log"
    process, ports = start_switchboard_run(env, log_path)
    try:
        for port in (*ports[:2], ports[7]):
            wait_for_http(f"http://127.0.0.1:{port}/readyz", process, log_path, timeout_s=90)
        deadline = time.monotonic() + 30
        while "Press Ctrl-C to stop." not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        output = log_path.read_text()
        assert f"http://127.0.0.1:{ports[0]}/api" in output
        assert "embedded (unix://" in output
        assert f"simulator at http://127.0.0.1:{ports[4]}" in output
        assert f"gmail      simulator at http://127.0.0.1:{ports[5]}" in output
        # The console: the SPA with /api/ passed on, at the URL printed first.
        assert f"console    http://127.0.0.1:{ports[6]}/" in output
        assert f"model      realtime simulator at ws://127.0.0.1:{ports[8]}/v1" in output
        console = requests.get(f"http://127.0.0.1:{ports[6]}/runs/1", timeout=5)
        assert console.status_code == 200 and "<h1>Switchboard</h1>" in console.text
        assert "default-src 'self'" in console.headers["Content-Security-Policy"]
        assert requests.get(f"http://127.0.0.1:{ports[6]}/api/me", timeout=5).status_code == 401
        assert (tmp_path / "switchboard.db").exists()
        descendants = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in descendants)
        for part in ("redis-server", "services/api/gunicorn_conf.py", "calls/gunicorn_conf.py",
                     "dramatiq", "services.worker.scheduler", "simulators.twilio",
                     "simulators.gmail", "devtools.dev_console", "calls/media/gunicorn_conf.py",
                     "simulators.realtime"):  # fmt: skip
            assert part in names, part
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    assert code == 0, log_path.read_text()[-3000:]
    time.sleep(0.5)
    alive = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"orphans: {[p.cmdline() for p in alive]}"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{ports[0]}/healthz", timeout=2)
    assert os.path.exists(tmp_path / "redis")
