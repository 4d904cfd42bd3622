"""Real nginx: `nginx -t` on the repository's config, and nginx in front of real services."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis
import requests
import simple_websocket
from sqlalchemy import select

from libs.common.db import Database
from libs.common.models import Business, Call, PhoneNumber
from libs.telephony.twilio_signature import sign
from simulators.twilio.media_client import StreamResult, Target, run_stream
from tests.support import secret_scan
from tests.support.nginx import nginx_binary, render
from tests.support.processes import gunicorn_argv, running, service_env
from tests.support.services import free_port
from tests.support.waiting import wait_until

AUTH_TOKEN = secret_scan.remember("nginx-test-auth-token")


def test_nginx_accepts_the_repository_config(tmp_path: Path) -> None:
    conf = render(tmp_path, {"api": free_port(), "calls": free_port(),
                             "calls:5060": free_port()}, free_port(), free_port())  # fmt: skip
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
    ports = {name: free_port() for name in ("api", "calls", "media", "http", "https")}
    public = f"http://127.0.0.1:{ports['http']}"
    conf = render(
        tmp_path,
        {"api": ports["api"], "calls": ports["calls"], "calls:5060": ports["media"]},
        ports["http"],
        ports["https"],
    )
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SWITCHBOARD_VAR_DIR=str(tmp_path),
        PUBLIC_BASE_URL=public,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        API_BIND=f"127.0.0.1:{ports['api']}",
        CALLS_BIND=f"127.0.0.1:{ports['calls']}",
        CALLS_MEDIA_BIND=f"127.0.0.1:{ports['media']}",
    )
    nginx = [nginx_binary(), "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"]
    with (
        running(gunicorn_argv("api"), {**env, "SERVICE_ROLE": "api"}, tmp_path / "api.log",
                f"http://127.0.0.1:{ports['api']}/healthz"),
        running(gunicorn_argv("calls"), {**env, "SERVICE_ROLE": "calls"}, tmp_path / "calls.log",
                f"http://127.0.0.1:{ports['calls']}/healthz"),
        running(gunicorn_argv("calls/media"), {**env, "SERVICE_ROLE": "calls"},
                tmp_path / "media.log", f"http://127.0.0.1:{ports['media']}/healthz"),
        running(nginx, env, tmp_path / "nginx.log", f"{public}/api/healthz"),
    ):  # fmt: skip
        yield Proxy(public, f"https://127.0.0.1:{ports['https']}")


def test_nginx_drops_idle_upstream_connections_before_gunicorn_does() -> None:
    # Otherwise a request nginx sends on a connection gunicorn is closing fails with 502
    # (seen in the webhook benchmark); nginx does not retry a POST on another connection.
    import re

    conf = (Path(__file__).parents[2] / "deploy/nginx/nginx.conf").read_text()
    upstreams = dict(re.findall(r"upstream (\w+) \{(.*?)\}", conf, re.S))
    assert set(upstreams) == {"api", "calls", "calls_media"}
    # The media server's connections are WebSockets, held for a call: no keepalive pool.
    assert "keepalive" not in upstreams.pop("calls_media")
    for service, block in upstreams.items():
        gunicorn_conf = Path(__file__).parents[2] / f"services/{service}/gunicorn_conf.py"
        [gunicorn_s] = re.findall(r"^keepalive = (\d+)$", gunicorn_conf.read_text(), re.M)
        [nginx_s] = re.findall(r"keepalive_timeout (\d+)s;", block)
        assert int(nginx_s) < int(gunicorn_s), service


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


def test_a_media_stream_through_nginx(proxy: Proxy, db: Database) -> None:
    """Twilio's side of an inbound call, through nginx to the real calls service: the voice
    webhook's TwiML names the public wss URL, the upgrade signed against it is relayed (its
    Upgrade headers, the public host for the signature check), frames flow both ways."""
    with db.session() as session:
        business = Business(name="Through nginx", timezone="UTC")
        session.add(business)
        session.flush()
        session.add(PhoneNumber(business_id=business.id, number_e164="+14155550000"))
        session.commit()
    target = Target(ws_url="", voice_url=f"{proxy.base}/webhook/twilio/voice",
                    auth_token=AUTH_TOKEN, to="+14155550000")  # fmt: skip

    async def one_call() -> StreamResult:
        async with aiohttp.ClientSession() as session:
            return await run_stream(session, target, 0, seconds=1.0)

    result = asyncio.run(one_call())
    assert result.ok, result.error
    # The whole greeting (1 s) and its mark came back through nginx.
    assert (result.sent, result.received_media, result.received_marks) == (50, 50, 1)
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.provider_call_sid == result.call_sid)).one()
    assert call.stream_sid and call.status == "completed" and call.duration_s == 1

    ws_url = proxy.base.replace("http://", "ws://") + "/ws/media"
    with pytest.raises(simple_websocket.ConnectionError):
        simple_websocket.Client.connect(ws_url, headers={"X-Twilio-Signature": "bm90IGl0"})


def test_the_oauth_callbacks_code_stays_out_of_the_access_log(proxy: Proxy, tmp_path: Path) -> None:
    code = "4/0" + uuid.uuid4().hex * 2
    requests.get(f"{proxy.base}/api/gmail/callback?code={code}&state=s", timeout=5)
    requests.get(f"{proxy.base}/api/me?probe={code[3:]}", timeout=5)
    # nginx writes a request's line when it finalizes the request, which can be just after the
    # client has read the response: wait for the probe's line, written after the callback's.
    log_file = tmp_path / "nginx.log"
    assert wait_until(lambda: f"probe={code[3:]}" in log_file.read_text(), timeout_s=5)
    log = log_file.read_text()
    assert "GET /api/gmail/callback HTTP/1.1" in log
    assert code not in log
