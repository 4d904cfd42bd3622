"""Real nginx: `nginx -t` on the repository's config, and nginx in front of real services."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from libs.common.db import Database
from libs.common.telephony.twilio_signature import sign
from tests.support.nginx import nginx_binary, render
from tests.support.processes import gunicorn_argv, running, service_env
from tests.support.services import free_port

AUTH_TOKEN = "nginx-test-auth-token"


def test_nginx_accepts_the_repository_config(tmp_path: Path) -> None:
    conf = render(tmp_path, {"api": free_port(), "calls": free_port()}, free_port(), free_port())
    result = subprocess.run(
        [nginx_binary(), "-t", "-c", str(conf), "-p", str(tmp_path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@dataclass
class Proxy:
    base: str
    tls: str


@pytest.fixture
def proxy(
    database_url: str, redis_url: str, redis_client: redis.Redis, db: Database, tmp_path: Path
) -> Iterator[Proxy]:
    ports = {name: free_port() for name in ("api", "calls", "http", "https")}
    public = f"http://127.0.0.1:{ports['http']}"
    conf = render(tmp_path, {"api": ports["api"], "calls": ports["calls"]}, ports["http"],
                  ports["https"])  # fmt: skip
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SWITCHBOARD_VAR_DIR=str(tmp_path),
        PUBLIC_BASE_URL=public,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        API_BIND=f"127.0.0.1:{ports['api']}",
        CALLS_BIND=f"127.0.0.1:{ports['calls']}",
    )
    nginx = [nginx_binary(), "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"]
    with (
        running(gunicorn_argv("api"), {**env, "SERVICE_ROLE": "api"}, tmp_path / "api.log",
                f"http://127.0.0.1:{ports['api']}/healthz"),
        running(gunicorn_argv("calls"), {**env, "SERVICE_ROLE": "calls"}, tmp_path / "calls.log",
                f"http://127.0.0.1:{ports['calls']}/healthz"),
        running(nginx, env, tmp_path / "nginx.log", f"{public}/api/healthz"),
    ):  # fmt: skip
        yield Proxy(public, f"https://127.0.0.1:{ports['https']}")


def test_api_through_nginx(proxy: Proxy) -> None:
    response = requests.get(f"{proxy.base}/api/healthz", timeout=5)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["Server"] == "nginx"  # server_tokens off: no version
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Request-ID"]
    assert requests.get(f"{proxy.base}/api/me", timeout=5).status_code == 401
    tls = requests.get(f"{proxy.tls}/api/healthz", timeout=5, verify=False)
    assert tls.status_code == 200 and "max-age" in tls.headers["Strict-Transport-Security"]


def test_internal_endpoints_are_not_public(proxy: Proxy) -> None:
    for path in ("/metrics", "/healthz", "/readyz"):
        assert requests.get(f"{proxy.base}{path}", timeout=5).status_code == 404, path


def test_the_spa_is_served_with_history_fallback(proxy: Proxy) -> None:
    index = requests.get(f"{proxy.base}/", timeout=5)
    deep = requests.get(f"{proxy.base}/runs/12/calls", timeout=5)
    assert index.status_code == deep.status_code == 200
    assert "<h1>Switchboard</h1>" in deep.text and deep.text == index.text


def test_a_signed_webhook_is_validated_through_nginx(proxy: Proxy, db: Database) -> None:
    url = f"{proxy.base}/webhook/twilio/status?job=1&attempt=1"
    params = {"CallSid": "CA" + uuid.uuid4().hex, "CallStatus": "ringing"}
    good = requests.post(url, data=params, timeout=5,
                         headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, params)})  # fmt: skip
    assert good.status_code == 204, good.text
    signature = {"X-Twilio-Signature": sign(AUTH_TOKEN, url, params)}
    forged = requests.post(url, data={**params, "CallStatus": "completed"}, headers=signature,
                           timeout=5)  # fmt: skip
    assert forged.status_code == 403
    # Signed for the internal address rather than the public one: refused too.
    internal = url.replace(proxy.base, "http://calls:5050")
    internal_signature = {"X-Twilio-Signature": sign(AUTH_TOKEN, internal, params)}
    moved = requests.post(url, data=params, headers=internal_signature, timeout=5)
    assert moved.status_code == 403


def test_oversized_bodies_are_refused_by_nginx(proxy: Proxy) -> None:
    response = requests.post(f"{proxy.base}/api/leads/import", data=b"x" * (11 * 1024 * 1024),
                             headers={"Content-Type": "text/csv"}, timeout=30)  # fmt: skip
    assert response.status_code == 413


def test_gixy_finds_nothing(tmp_path: Path) -> None:
    import shutil as _shutil
    import sys

    conf = render(tmp_path, {"api": 5000, "calls": 5050}, 8080, 8443)
    gixy = _shutil.which("gixy") or str(Path(sys.executable).parent / "gixy")
    result = subprocess.run([gixy, str(conf)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Total issues:" in result.stdout
    for severity in ("Unspecified", "Low", "Medium", "High"):
        assert f"{severity}: 0" in result.stdout, result.stdout


def test_websocket_upgrade_through_nginx(tmp_path: Path) -> None:
    """The /ws/ route upgrades and relays frames both ways. The calls service's own media-stream
    endpoint arrives with its issue; until then a flask-sock echo server stands behind the
    `calls` upstream, which is what this exercises: nginx's upgrade handling."""
    import threading

    import simple_websocket
    from flask import Flask, request
    from flask_sock import Sock
    from werkzeug.serving import make_server

    seen: dict[str, str] = {}
    echo = Flask("echo")
    sock = Sock(echo)

    @sock.route("/ws/echo")
    def relay(ws: simple_websocket.Server) -> None:
        seen["proto"] = request.headers.get("X-Forwarded-Proto", "")
        while True:
            ws.send(ws.receive())

    upstream_port, http_port = free_port(), free_port()
    server = make_server("127.0.0.1", upstream_port, echo, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conf = render(tmp_path, {"api": free_port(), "calls": upstream_port}, http_port, free_port())
    nginx = [nginx_binary(), "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"]
    try:
        with running(
            nginx, service_env(), tmp_path / "nginx.log", f"http://127.0.0.1:{http_port}/"
        ):
            client = simple_websocket.Client.connect(f"ws://127.0.0.1:{http_port}/ws/echo")
            try:
                for frame in ('{"event": "connected"}', '{"event": "media"}'):
                    client.send(frame)
                    assert client.receive(timeout=5) == frame
            finally:
                client.close()
    finally:
        server.shutdown()
    assert seen["proto"] == "http"
