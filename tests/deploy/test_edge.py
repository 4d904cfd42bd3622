"""What a client meets before Flask, from outside: the real nginx config and the dev console of
`switchboard run` in front of the api's real gunicorn (tests/support/edge.py).

- Private paths: the same list of dot-segment and encoded paths against nginx and against the
  dev console gives the same answers, and never the api's metrics or health (issue 24, item 4).
- Errors: every error a client can meet under /api/ is the JSON error shape, also when gunicorn,
  nginx or the console's HTTP server answers it before Flask runs (item 7).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from libs.web.errors import error_code
from probe.paths import PRIVATE_PATH_PROBES, serves_private
from tests.support.edge import Edge, RawResponse, raw_exchange, raw_get, running_edge


@pytest.fixture(scope="module")
def edge(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    with running_edge(database_url, redis_url, tmp_path_factory.mktemp("edge")) as running:
        yield running


def _assert_json_error(response: RawResponse, status: int, where: str) -> None:
    assert response.status == status, (where, response.status, response.body[:200])
    assert response.content_type.startswith("application/json"), (where, response.content_type)
    error = json.loads(response.body)["error"]
    assert error["code"] == error_code(status), (where, error)
    assert isinstance(error["message"], str) and error["message"], (where, error)


def test_the_api_really_has_private_paths_to_leak(edge: Edge) -> None:
    # Behind the proxies, the api serves them: what the probes below must never reach.
    assert serves_private(raw_get(edge.gunicorn, "/metrics").body)
    assert serves_private(raw_get(edge.gunicorn, "/readyz").body)


@pytest.mark.parametrize(("path", "status"), PRIVATE_PATH_PROBES)
def test_nginx_and_the_dev_console_route_the_same_normalised_path(
    edge: Edge, path: str, status: int
) -> None:
    for name, base in (("nginx", edge.nginx), ("dev console", edge.console)):
        response = raw_get(base, path)
        assert not serves_private(response.body), (name, path, response.body[:200])
        if status == 200:
            assert response.status == 200 and b"<h1>Switchboard</h1>" in response.body, name
        else:
            _assert_json_error(response, status, f"{name} {path}")


def _get(base: str, path: str, headers: dict[str, str] | None = None) -> RawResponse:
    response = requests.get(base + path, headers=headers, timeout=10)
    return RawResponse(response.status_code, response.headers.get("Content-Type", ""),
                       response.content)  # fmt: skip


LONG_QUERY = "/api/me?q=" + "x" * 6 * 1024
HUGE_AUTHORIZATION = {"Authorization": "Bearer " + "x" * 9 * 1024}
MANY_HEADERS = {f"X-Probe-{i}": "1" for i in range(120)}
MALFORMED = b"GET /api/me HTTP/1.1 extra\r\nHost: x\r\n\r\n"


def test_gunicorn_s_own_refusals_are_json(edge: Edge) -> None:
    """What the issue saw as HTML: a 6 KB query string (414), a 9 KB Authorization (431)."""
    _assert_json_error(_get(edge.gunicorn, LONG_QUERY), 414, "6 KB query")
    _assert_json_error(_get(edge.gunicorn, "/api/me", HUGE_AUTHORIZATION), 431, "9 KB header")
    _assert_json_error(_get(edge.gunicorn, "/api/me", MANY_HEADERS), 431, "120 headers")
    _assert_json_error(raw_exchange(edge.gunicorn, MALFORMED), 400, "malformed request line")
    # The service's own errors are unchanged.
    _assert_json_error(_get(edge.gunicorn, "/api/nothing-here"), 404, "unknown path")


def test_every_error_nginx_answers_itself_is_json(edge: Edge) -> None:
    # Through nginx to gunicorn's refusals (nginx's limits are 8 KB a line).
    _assert_json_error(_get(edge.nginx, LONG_QUERY), 414, "6 KB query, from gunicorn")
    _assert_json_error(_get(edge.nginx, "/api/me", MANY_HEADERS), 431, "120 headers")
    # nginx's own refusals.
    _assert_json_error(_get(edge.nginx, "/api/me?q=" + "x" * 9 * 1024), 414, "9 KB query")
    _assert_json_error(_get(edge.nginx, "/api/me", HUGE_AUTHORIZATION), 431, "9 KB header")
    _assert_json_error(raw_exchange(edge.nginx, MALFORMED), 400, "malformed request line")
    _assert_json_error(_get(edge.nginx, "/metrics"), 404, "private path")
    big = requests.post(f"{edge.nginx}/api/leads/import", data=b"x" * (11 * 1024 * 1024),
                        headers={"Content-Type": "text/csv"}, timeout=30)  # fmt: skip
    _assert_json_error(RawResponse(big.status_code, big.headers["Content-Type"], big.content), 413,
                       "11 MB body")  # fmt: skip
    method = requests.request("PROPFIND", f"{edge.nginx}/", timeout=10)
    _assert_json_error(RawResponse(method.status_code, method.headers["Content-Type"],
                                   method.content), 405, "PROPFIND on the SPA")  # fmt: skip
    # The calls service is down here: nginx's 502 for Twilio's paths is JSON too.
    down = requests.post(f"{edge.nginx}/webhook/twilio/status", data={"CallSid": "x"}, timeout=10)
    _assert_json_error(RawResponse(down.status_code, down.headers["Content-Type"], down.content),
                       502, "webhook, service down")  # fmt: skip
    _assert_json_error(_get(edge.nginx, "/ws/media"), 502, "media stream, service down")
    # nginx's JSON errors keep the security headers.
    headers = requests.get(f"{edge.nginx}/metrics", timeout=10).headers
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"


def test_every_error_the_dev_console_meets_under_api_is_json(edge: Edge) -> None:
    _assert_json_error(_get(edge.console, LONG_QUERY), 414, "6 KB query, from gunicorn")
    _assert_json_error(_get(edge.console, "/api/me", HUGE_AUTHORIZATION), 431, "9 KB header")
    # The console's own HTTP server refuses more than 100 headers and 64 KB request lines.
    _assert_json_error(_get(edge.console, "/api/me", MANY_HEADERS), 431, "120 headers")
    _assert_json_error(_get(edge.console, "/api/me?q=" + "x" * 70_000), 414, "70 KB query")
    _assert_json_error(raw_exchange(edge.console, MALFORMED), 400, "malformed request line")


def test_nginx_names_each_status_as_the_services_do() -> None:
    conf = (Path(__file__).parents[2] / "deploy/nginx/nginx.conf").read_text()
    block = conf.split("map $status $json_error_code {", 1)[1].split("}", 1)[0]
    names = dict(line.strip().rstrip(";").split() for line in block.strip().splitlines())
    for status, code in names.items():
        if status != "default":
            assert code == error_code(int(status)), status
